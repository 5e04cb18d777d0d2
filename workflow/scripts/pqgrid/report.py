"""The report stage's rule functions: read the long tables, call analysis/figures, write."""

from __future__ import annotations

import pandas as pd

from .analysis import TABLES, collapsed_cells, findings, findings_markdown, fmt_pm, thesis_tables
from .io import atomic_path, write_text
from .summary import to_markdown


def read_tables(inputs) -> dict:
    """{'summary': df, 'per_class': df, 'bench': df or None} from a rule's named inputs."""
    get = inputs.get if hasattr(inputs, "get") else lambda k, d=None: getattr(inputs, k, d)
    out = {}
    for name in ("summary", "per_class", "bench"):
        path = get(name, None)
        out[name] = pd.read_csv(path) if path else None
    if out["bench"] is None:
        out["bench"] = pd.DataFrame(columns=["arch", "seed", "sparsity", "quant", "device", "latency_us", "ram_mb"])
    return out


def make_table(name, inputs, thesis_dir, out_csv, out_md):
    t = read_tables(inputs)
    df = TABLES[name](t["summary"], t["bench"], t["per_class"] if t["per_class"] is not None else pd.DataFrame(),
                      thesis_tables(thesis_dir))
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    write_text(out_md, f"# {name}\n\n" + to_markdown(fmt_pm(df)))


def plot_figure(name, inputs, settings, out_png):
    from .figures import render

    render(name, read_tables(inputs), settings, out_png)


def check_findings(inputs, context, out_md, out_csv):
    t = read_tables(inputs)
    df = findings(t["summary"], t["bench"], t["per_class"])
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    write_text(out_md, findings_markdown(df, context, collapsed_cells(t["summary"])))
