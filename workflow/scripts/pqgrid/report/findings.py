"""Stage `check_findings`: each claim of the thesis, what this run measured, and a verdict.

A claim is one small function in CLAIMS, registered with its number, sentence, threshold
and the cells it needs. Claims name architectures by what they are (builder and
`minimalistic`, see `Run.archs`), never by config names: renaming `mobilenet` to `mn1` in
config.yaml changes no verdict. A claim about accuracy never uses a collapsed cell (at chance
while its trained model is not, summary.csv `collapsed`): a broken model is a defect, not a
measurement of the method. Adding a claim = adding one function with `@claim(...)`.

Intervals: a claim about a change of top-1 uses, per architecture, the 95 % Student-t
interval of the per-seed differences (paired: the cells of one seed share their trained
model), and holds only when the whole interval clears the threshold. With one seed there is
no interval; the point value decides and the text says "1 seed"."""

from __future__ import annotations

import pandas as pd

from pqgrid.core.io import atomic_path, write_text
from pqgrid.evaluate.summary import read_long_tables

# imported for their @claim registrations, which fill CLAIMS
from pqgrid.report import claims_accuracy, claims_device, claims_methods, claims_populations, claims_size  # noqa: F401
from pqgrid.report.claims import CLAIMS, FAILS, HOLDS, NOT_MEASURED, NotMeasured, Run, cell_names, collapsed_cells
from pqgrid.report.pages import page


# ---------------------------------------------------------------- verdicts and the stage
def findings(summary, bench, per_class, architectures, pie=None, pie_per_class=None, only=None) -> pd.DataFrame:
    """Each claim (or those numbered in `only`), what this run measured, and a verdict with
    its threshold."""
    run = Run(
        summary,
        bench,
        per_class,
        architectures,
        pie if pie is not None else pd.DataFrame(),
        pie_per_class if pie_per_class is not None else pd.DataFrame(),
    )
    rows = []
    all_near_chance = len(run.near_chance) and set(run.near_chance) >= set(summary.arch)
    for c in sorted(CLAIMS, key=lambda c: c.no):
        if only is not None and c.no not in only:
            continue
        try:
            if c.about_accuracy and all_near_chance:
                raise NotMeasured(
                    f"every trained model is near chance ({', '.join(run.near_chance)}): no accuracy change means anything"
                )
            measured, ok = c.check(run)
            verdict = HOLDS if ok else FAILS
        except NotMeasured as e:
            # one reason per row: the claim's own "needs ..." only where the message names none
            measured, verdict = (str(e) if "needs" in str(e) else f"{e} (needs {c.needs})"), NOT_MEASURED
        if c.about_accuracy and len(run.broken):
            measured += f"; left out (collapsed to chance): {cell_names(run.broken)}"
        if c.about_accuracy and run.near_chance and not all_near_chance:
            measured += f"; left out (trained model near chance): {', '.join(run.near_chance)}"
        rows.append(
            {"no": c.no, "claim": c.sentence, "measured": measured, "verdict": verdict, "threshold": c.threshold}
        )
    return pd.DataFrame(rows)


TITLE = (
    "Findings: the thesis' claims (1-11), pqgrid's remedies (12-14) and what compressed models forget "
    "(15-18, Hooker et al. 2019), the device (19) and pruning methods that pay on it (20-21) checked against "
    "this run"
)
COLUMNS = {"no": "#", "claim": "claim", "measured": "measured", "verdict": "verdict", "threshold": "threshold"}


def _collapsed_warning(broken: pd.DataFrame | None) -> tuple[str, str]:
    """(its bold beginning, the rest) of the warning about collapsed cells; ("", "") if none."""
    if broken is None or not len(broken):
        return "", ""
    return (
        f"Warning: {len(broken)} cell(s) collapsed to chance",
        f" while their trained model is well above it: {cell_names(broken)}. They are defects to look at "
        "(see the job logs), not measurements; the claims about accuracy below leave them out.",
    )


def findings_markdown(df: pd.DataFrame, context: str, broken: pd.DataFrame | None = None) -> str:
    lines = [f"# {TITLE}", "", context, ""]
    head, rest = _collapsed_warning(broken)
    if head:
        lines += [f"**{head}**{rest}", ""]
    lines += ["| # | claim | measured | verdict | threshold |", "|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.no} | {r.claim} | {r.measured} | **{r.verdict}** | {r.threshold} |")
    return "\n".join(lines) + "\n"


def findings_page(df: pd.DataFrame, context: str, broken: pd.DataFrame | None = None) -> str:
    """The findings as the report's HTML page: each row coloured by its verdict."""
    shown = df[list(COLUMNS)].rename(columns=COLUMNS)
    return page(TITLE, shown, notes=(context, "".join(_collapsed_warning(broken))), verdict_column="verdict")


def check_findings(*, inputs, architectures, context, out_md, out_csv, out_html):
    t = read_long_tables(inputs)
    per_class = t["per_class"] if t["per_class"] is not None else pd.DataFrame()
    df = findings(t["summary"], t["bench"], per_class, architectures, t.get("pie"), t.get("pie_per_class"))
    broken = collapsed_cells(t["summary"])
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    write_text(out_md, findings_markdown(df, context, broken))
    write_text(out_html, findings_page(df, context, broken))
