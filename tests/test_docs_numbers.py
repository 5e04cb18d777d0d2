"""Measured tables in the docs come from files a run wrote: each carries a marker on the
line above it naming its file and, for each of its columns, the file's column it shows:

    <!-- numbers from: docs/results/x.csv | =arch | =variant | top1 % | ci_low, ci_high -->

`=col`: the row's key (the cell's text is that column's value, `-` for an empty one); `col`:
every number printed in the cell is that column's value of the row, rounded as printed (`%`:
x100); several columns: the cell's numbers in that order (`-` for an empty value). So a number
retyped by hand, swapped with its neighbour or left behind by a regenerated file fails here.

A number in prose carries its source right after it:

    a relative SD of 6.6 %<!-- number: docs/results/x.csv | model=a, seeds=3 | relsd % -->

the number just before the marker is that column's value in the one row whose keys match."""

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- numbers from: (\S+)((?: \|[^|>]+)*) -->")
# a number (not the 0 of s0 or the 8 of int8), or a lone "-" standing for an empty value
NUMBER = re.compile(r"(?<![\w.])(?:[-+]?\d[\d,]*(?:\.\d+)?|-)(?![\w.\d])")
PROSE = re.compile(r"<!-- number: (\S+) \| ([^|>]*) \| ([^|>]+?) -->")
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


def marked_tables(path: Path):
    """(source file, column specs, header cells, rows of cells) of every marked table."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        m = MARKER.search(line)
        if not m:
            continue
        rows = []
        for row in lines[i + 1 :]:
            if not row.startswith("|"):
                break
            rows.append([c.strip() for c in row.strip("|").split("|")])
        specs = [c.strip() for c in m.group(2).split("|")[1:]]
        yield m.group(1), specs, rows[0], rows[2:]


def _printed_equals(text: str, value) -> bool:
    """`text` (a printed number, or "-") equals `value` at its printed decimals."""
    if text == "-":
        return value is None or pd.isna(value)
    if value is None or isinstance(value, str) or pd.isna(value):
        return False
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(round(float(value), decimals) - float(text.replace(",", ""))) <= 10**-decimals / 2 + 1e-9


def _key_equals(text: str, value) -> bool:
    if text == "-":
        return value is None or pd.isna(value)
    if isinstance(value, str):
        return text == value
    try:
        return float(text) == float(value)
    except ValueError:
        return False


def table_errors(source: pd.DataFrame, specs: list, header: list, rows: list) -> list:
    """What in a marked table is not its file's: each row found by its keys, each number in
    its column."""
    if len(specs) != len(header):
        return [f"the marker names {len(specs)} columns, the table has {len(header)}"]
    missing = (
        {c.strip().lstrip("=").removesuffix(" %") for spec in specs for c in spec.split(",")}
        - set(source.columns)
        - {""}
    )
    if missing:
        return [f"no column {sorted(missing)} in the file"]
    errors = []
    for cells in rows:
        keys = [(spec[1:], cell) for spec, cell in zip(specs, cells, strict=True) if spec.startswith("=")]
        match = source
        for col, cell in keys:
            match = match[[_key_equals(cell, v) for v in match[col]]]
        if len(match) != 1:
            errors.append(f"row {cells[:3]}: {len(match)} rows of the file have its keys")
            continue
        row = match.iloc[0]
        for spec, head, cell in zip(specs, header, cells, strict=True):
            if spec.startswith("=") or not spec:
                continue
            cols = [c.strip() for c in spec.split(",")]
            printed = NUMBER.findall(cell)
            if len(printed) != len(cols):
                errors.append(f"row {cells[:3]}, {head!r}: {cell!r} has {len(printed)} numbers for {cols}")
                continue
            for text, col in zip(printed, cols, strict=True):
                name, pct = col.removesuffix(" %"), col.endswith(" %")
                value = row[name] * 100 if pct and pd.notna(row[name]) else row[name]
                if not _printed_equals(text, value):
                    errors.append(f"row {cells[:3]}, {head!r}: {text} is not {name} ({row[name]!r})")
    return errors


TABLES = [(doc, *t) for doc in DOCS for t in marked_tables(doc)]


def test_the_results_tables_are_marked():
    """The measured tables these tests hold to their files, each with a column per column."""
    named = {src for _, src, _, _, _ in TABLES}
    assert {"docs/population/pie.csv", "docs/results/int8_loss.csv", "docs/results/methods.csv"} <= named, named
    for doc, src, specs, header, _ in TABLES:
        assert len(specs) == len(header), f"{doc.relative_to(ROOT)}: {src}'s marker names no column for each column"


@pytest.mark.parametrize("doc, source, specs, header, rows", TABLES, ids=[f"{d.name}:{s}" for d, s, *_ in TABLES])
def test_every_number_of_a_marked_table_is_in_its_file(doc, source, specs, header, rows):
    path = ROOT / source
    assert path.exists(), f"{doc.relative_to(ROOT)}: the table's file {source} is missing"
    errors = table_errors(pd.read_csv(path), specs, header, rows)
    assert not errors, f"{doc.relative_to(ROOT)} ({source}):\n" + "\n".join(errors)


def _changed(rows, how):
    """The table's rows with its first number changed as `how` says (None: nothing to change)."""
    for i, cells in enumerate(rows):
        for j, cell in enumerate(cells):
            nums = [m for m in NUMBER.finditer(cell) if m.group(0) != "-"]
            if how == "last digit" and nums:
                m = nums[0]
                digit = str((int(m.group(0)[-1]) + 3) % 10)
                new = cell[: m.end() - 1] + digit + cell[m.end() :]
            elif how == "swap in cell" and len(nums) >= 2 and float(nums[0].group(0)) != float(nums[1].group(0)):
                a, b = nums[0], nums[1]
                new = cell[: a.start()] + b.group(0) + cell[a.end() : b.start()] + a.group(0) + cell[b.end() :]
            else:
                continue
            return [*rows[:i], [*cells[:j], new, *cells[j + 1 :]], *rows[i + 1 :]]
    return None


def _swapped_columns(specs, rows):
    """Two numeric cells of a row whose values differ, exchanged (a number in the wrong column)."""
    for i, cells in enumerate(rows):
        numeric = [j for j, s in enumerate(specs) if s and not s.startswith("=") and cells[j] != "-"]
        for a in numeric:
            for b in numeric:
                if a < b and NUMBER.findall(cells[a]) != NUMBER.findall(cells[b]):
                    swapped = list(cells)
                    swapped[a], swapped[b] = cells[b], cells[a]
                    return [*rows[:i], swapped, *rows[i + 1 :]]
    return None


@pytest.mark.parametrize("doc, source, specs, header, rows", TABLES, ids=[f"{d.name}:{s}" for d, s, *_ in TABLES])
def test_a_changed_or_swapped_number_fails(doc, source, specs, header, rows):
    """The check above catches each edit a hand or a stale file makes: one digit changed, two
    numbers of a cell exchanged ("30.3 / 50.1"), two columns of a row exchanged."""
    data = pd.read_csv(ROOT / source)
    edits = {"last digit": _changed(rows, "last digit"), "swap in cell": _changed(rows, "swap in cell"),
             "swapped columns": _swapped_columns(specs, rows)}  # fmt: skip
    assert edits["last digit"] is not None and edits["swapped columns"] is not None
    for how, edited in edits.items():
        if edited is not None:
            assert table_errors(data, specs, header, edited), f"{doc.name}: {how} passes"


def test_the_thesis_mobilenet_table_is_the_runs_files_beside_the_thesis(tmp_path):
    """benchmarks/thesis_mobilenet.py on a run folder of known numbers: each cell's top-1,
    sizes and latency are the run's, the thesis' are its published ones; a folder with no
    run gets one line naming the missing file."""
    import subprocess
    import sys

    run = tmp_path / "run"
    (run / "results/tables").mkdir(parents=True)
    models = run / "results/models/mobilenet/seed0"
    models.mkdir(parents=True)
    cells = [(0, "fp32", 0.731, 12_850_000), (0, "int8", 0.728, 3_620_000), (90, "fp32", 0.652, 12_850_000), (90, "int8", 0.649, 3_620_000)]  # fmt: skip
    pd.DataFrame(
        [{"arch": "mobilenet", "seed": 0, "sparsity": s, "quant": q, "top1": t, "top3": t + 0.2, "tflite_kernel_sparsity": s / 100 * 0.97,
          "file_bytes": b, "gzip_bytes": b // (10 if s else 2), "test_images": 10000} for s, q, t, b in cells]
        + [{"arch": "other", "seed": 0, "sparsity": 0, "quant": "fp32", "top1": 0.1}]
    ).to_csv(run / "results/tables/summary.csv", index=False)  # fmt: skip
    pd.DataFrame(
        [{"arch": "mobilenet", "seed": 0, "sparsity": s, "quant": q, "device": "local", "p50_us": 100.0 + i} for i, (s, q, _, _) in enumerate(cells)]
    ).to_csv(run / "results/tables/bench.csv", index=False)  # fmt: skip
    for name, n in (("trained", 3), ("pruned_90", 2)):
        pd.DataFrame({"epoch": range(1, n + 1), "seconds": 1.0, "loss": 1.0, "accuracy": 0.5, "top3": 0.8,
                      "val_loss": 1.2, "val_accuracy": 0.4, "val_top3": 0.7}).to_csv(models / f"{name}.history.csv", index=False)  # fmt: skip
    script = ROOT / "benchmarks/thesis_mobilenet.py"
    subprocess.run([sys.executable, str(script), str(run), str(tmp_path / "out")], check=True, capture_output=True)
    t = pd.read_csv(tmp_path / "out/thesis_mobilenet.csv").set_index(["sparsity", "quant"])
    assert list(t.index) == [(0, "fp32"), (0, "int8"), (90, "fp32"), (90, "int8")]
    assert t.loc[(0, "fp32"), "top1_pct"] == 73.1 and t.loc[(90, "int8"), "gzip_mb"] == 0.362
    assert t.loc[(0, "int8"), "p50_us_local"] == 101.0 and t.loc[(90, "fp32"), "zero_fraction_pct"] == 87.3
    assert t.loc[(0, "fp32"), "thesis_top1_pct"] == 72.77 and t.loc[(0, "int8"), "thesis_top1_pct"] == 74.01
    assert t.loc[(90, "fp32"), "thesis_top1_pct"] == 67.0 and t.loc[(90, "fp32"), "thesis_zero_fraction_pct"] == 86.18
    assert t.loc[(90, "int8"), "thesis_gzip_mb"] == 0.9 and t.loc[(0, "fp32"), "thesis_pi4_us"] == 11803
    h = pd.read_csv(tmp_path / "out/thesis_mobilenet_history.csv")
    assert list(h.stage) == ["training"] * 3 + ["pruning to 90 %"] * 2
    assert (tmp_path / "out/figures/thesis_mobilenet_history.png").stat().st_size > 10_000
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "none"), str(tmp_path / "out2")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "summary.csv is missing: run the preset first" in proc.stderr.splitlines()[-1]
    assert not (tmp_path / "out2").exists()


def prose_numbers(path: Path):
    """(line number, the number printed before the marker, source, keys, column) of every
    prose marker of a document."""
    for no, line in enumerate(path.read_text().splitlines(), 1):
        for m in PROSE.finditer(line):
            before = NUMBER.findall(PROSE.sub("", line[: m.start()]))
            keys = dict(k.strip().split("=", 1) for k in m.group(2).split(",") if k.strip())
            yield no, before[-1] if before else None, m.group(1), keys, m.group(3).strip()


def prose_error(printed, source: pd.DataFrame, keys: dict, column: str):
    """What is wrong with one prose number (None: it is its file's)."""
    if printed is None:
        return "no number before the marker"
    match = source
    for col, value in keys.items():
        if col not in match:
            return f"no column {col!r} in the file"
        match = match[[_key_equals(value, v) for v in match[col]]]
    if len(match) != 1:
        return f"{len(match)} rows of the file have the keys {keys}"
    name, pct = column.removesuffix(" %"), column.endswith(" %")
    if name not in match:
        return f"no column {name!r} in the file"
    value = match.iloc[0][name] * (100 if pct else 1)
    return None if _printed_equals(printed, value) else f"{printed} is not {column} ({match.iloc[0][name]!r})"


PROSE_NUMBERS = [(doc, *n) for doc in DOCS for n in prose_numbers(doc)]


def test_prose_numbers_are_their_files():
    """Every marked prose number is the value its marker names; the marked ones include the
    claims' error rates and the latency drift."""
    sources = {src for _, _, _, src, _, _ in PROSE_NUMBERS}
    assert {"docs/results/claim_rates.csv", "docs/results/latency_drift_summary.csv"} <= sources, sources
    errors = []
    for doc, line, printed, src, keys, column in PROSE_NUMBERS:
        error = prose_error(printed, pd.read_csv(ROOT / src), keys, column)
        if error:
            errors.append(f"{doc.relative_to(ROOT)}:{line}: {error}")
    assert not errors, "\n".join(errors)


def test_a_changed_prose_number_fails():
    """One digit changed in each marked prose number is caught."""
    for doc, line, printed, src, keys, column in PROSE_NUMBERS:
        changed = printed[:-1] + str((int(printed[-1]) + 3) % 10)
        assert prose_error(changed, pd.read_csv(ROOT / src), keys, column), f"{doc.name}:{line}: {changed} passes"
