"""The findings and each table as an HTML page for Snakemake's report: its viewer shows an
.html result inline, while .md and .csv results are downloads only. Rendered by pandas'
Styler from the frames the Markdown and CSV files are written from, so the three agree."""

from __future__ import annotations

import html

import pandas as pd

from pqgrid.evaluate.summary import NUMBER_FORMAT, whole_numbers_as_int

# The verdict's first words -> the row's colour (a light one: the text stays readable).
VERDICT_COLOURS = {
    "holds": "#dff0d8",
    "does not hold": "#f2dede",
    "cannot tell": "#fcf8e3",
    "not measured": "#eeeeee",
}
STYLE = (
    "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:0.9em}"
    "th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}"
    "th{background:#f5f5f5}p.note{color:#555}"
)


def verdict_colour(verdict: str) -> str:
    """The colour of a verdict: the longest known beginning it starts with; none if unknown."""
    text = str(verdict).strip().lower()
    known = sorted((k for k in VERDICT_COLOURS if text.startswith(k)), key=len, reverse=True)
    return VERDICT_COLOURS[known[0]] if known else ""


def page(title: str, frame: pd.DataFrame, notes=(), verdict_column: str | None = None) -> str:
    """One self-contained HTML page: a title, notes (plain text), the frame as a table; with
    `verdict_column`, each row coloured by its verdict."""
    frame = whole_numbers_as_int(frame)
    styler = frame.style.hide(axis="index")
    if verdict_column is not None and not frame.empty:
        colours = frame[verdict_column].map(verdict_colour)

        def by_verdict(row):
            colour = colours.loc[row.name]
            return [f"background-color: {colour}" if colour else ""] * len(row)

        styler = styler.apply(by_verdict, axis=1)
    styler = styler.format(na_rep="–", escape="html")
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    styler = styler.format(lambda v: format(v, NUMBER_FORMAT), subset=floats, na_rep="–")  # as the Markdown
    body = "".join(f'<p class="note">{html.escape(str(n))}</p>' for n in notes if n)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        f"{styler.to_html()}</body></html>\n"
    )
