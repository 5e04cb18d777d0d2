"""Measured tables in the docs come from files a run wrote: each carries a marker
`<!-- numbers from: docs/....csv -->` on the line above it, and every number in each of its
rows is a value of the matching row of that file (as it is, or x100 for a share), rounded as
printed. A table retyped by hand, or a file regenerated without its table, fails here."""

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- numbers from: (\S+) -->")
NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?!\w)")  # not the 0 of s0 or the 8 of int8
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


def marked_tables(path: Path):
    """(source file, header cells, rows of cells) of every marked table in `path`."""
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
        yield m.group(1), rows[0], [r for r in rows[2:]]


def _matches(text: str, values) -> bool:
    """`text` (a printed number) equals a value, or 100x a value, at its printed decimals."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    x = float(text.replace(",", ""))
    for v in values:
        for scaled in (v, 100 * v):
            if abs(round(scaled, decimals) - x) <= 10**-decimals / 2 + 1e-9:
                return True
    return False


def _source_row(source: pd.DataFrame, cells: list) -> pd.Series:
    """The file's row that the table row names best (its text fields found in the row), and
    among those the one most of the row's numbers come from (a seed, a sparsity)."""
    text = " | ".join(cells)
    printed = [n for c in cells for n in NUMBER.findall(c)]

    def score(row):
        named = sum(isinstance(v, str) and v in text for v in row.values)
        values = [float(v) for v in row.values if pd.api.types.is_number(v) and pd.notna(v)]
        return 1000 * named + sum(_matches(n, values) for n in printed)

    return source.loc[source.apply(score, axis=1).idxmax()]


TABLES = [(doc, *t) for doc in DOCS for t in marked_tables(doc)]


def test_the_results_tables_are_marked():
    """The measured tables these tests hold to their files."""
    named = {src for _, src, _, _ in TABLES}
    assert {"docs/population/pie.csv", "docs/results/int8_loss.csv"} <= named, named


@pytest.mark.parametrize("doc, source, header, rows", TABLES, ids=[f"{d.name}:{s}" for d, s, _, _ in TABLES])
def test_every_number_of_a_marked_table_is_in_its_file(doc, source, header, rows):
    path = ROOT / source
    assert path.exists(), f"{doc.relative_to(ROOT)}: the table's file {source} is missing"
    data = pd.read_csv(path)
    for cells in rows:
        row = _source_row(data, cells)
        values = [float(v) for v in row.values if pd.api.types.is_number(v) and pd.notna(v)]
        # numbers inside the file's own text fields are names ("200 train images"), not measurements
        named = {n for v in row.values if isinstance(v, str) for n in NUMBER.findall(v)}
        for cell in cells:
            for number in set(NUMBER.findall(cell)) - named:
                assert _matches(number, values), (
                    f"{doc.relative_to(ROOT)}: {number!r} in row {cells[:2]} is not in {source}'s row"
                )


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
