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
