"""Stage `choose_ship`: what to ship on a device. Per architecture, among its compressed
cells (every sparsity, method and mode but the unpruned fp32 model it is measured against),
the one with the best objective (p50 latency, file or gzip size, peak memory, energy) whose
top-1 drop is within the budget at its 95 % upper bound - and, when `max_class_drop` is set,
whose every class's drop is too. "No cell qualifies" is an answer too: the closest cell and
what it misses by.

The drop is the findings' paired comparison (report/claims.paired_delta_in: the seeds'
t-interval widened to the pooled per-image interval, McNemar with one seed), so a verdict
here and a finding never disagree on the same cells. A class's drop: the pooled correct
counts over the seeds against the fp32 model's (Newcombe's interval, stats.independent_interval:
the per-class tables keep counts, not per-image answers, so it is the wider unpaired one).
Across architectures, one line: the qualifying cell with the best objective whose top-1 is
within the budget of the best fp32 model of the grid (Newcombe on pooled images again: other
architectures' answers are not paired in the tables).

Where no cell of an architecture qualified, its repair candidates (pqgrid/ship/search.py,
repair.py) join its cells here and are judged by the same rules; the answer then says why
they were made and what each keeps out of int8."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pqgrid.core.io import atomic_path, read_json, write_text
from pqgrid.evaluate.stats import independent_interval, t_interval
from pqgrid.evaluate.summary import session_p50s
from pqgrid.report.claims import paired_delta_in

REFERENCE = ("0", "fp32")
# objective -> (table, column, label, unit); every objective is better smaller
OBJECTIVES = {
    "p50_us": ("bench", "p50_us", "p50 latency", "µs"),
    "peak_rss_mb": ("bench", "process_peak_rss_mb", "peak memory", "MB"),
    "energy_mj": ("bench", "energy_mj_per_inference", "energy per inference", "mJ"),
    "file_bytes": ("summary", "file_bytes", ".tflite size", "bytes"),
    "gzip_bytes": ("summary", "gzip_bytes", "gzip -9 size", "bytes"),
}
WORST_CLASSES = 3  # classes named per cell, the largest drops first


def objective_per_cell(summary, bench, device, objective) -> pd.DataFrame:
    """Per (arch, sparsity, quant): the objective's mean over seeds - for p50 latency over
    every seed's timing sessions - and its t-interval (NaN below 2 values or without spread)."""
    table, column, _, _ = OBJECTIVES[objective]
    df = summary if table == "summary" else bench[bench.device == device]
    if df.empty or column not in df or df[column].isna().all():
        return pd.DataFrame(columns=["arch", "sparsity", "quant", "objective", "objective_lo", "objective_hi"])
    df = df.assign(sparsity=df.sparsity.astype(str))
    rows = []
    for (arch, sp, q), g in df.groupby(["arch", "sparsity", "quant"], sort=False):
        v = g[column].dropna().to_numpy(float)
        sessions = [x for s in g.get("session_p50_us", []) for x in session_p50s(s)]
        if column == "p50_us" and sessions:  # latency: over every seed's timing sessions
            v = np.array(sessions)
        if not len(v):
            continue
        lo, hi = t_interval(v)
        lo = max(lo, 0.0) if not np.isnan(lo) else lo  # two sessions' t(1) interval reaches below 0; no objective does
        rows.append(
            {"arch": arch, "sparsity": sp, "quant": q, "objective": v.mean(), "objective_lo": lo, "objective_hi": hi}
        )
    return pd.DataFrame(rows)


def class_drops(per_class, arch, cell) -> pd.DataFrame:
    """Per class of `arch`: top-1 of the fp32 model minus `cell`'s, pooled over the seeds
    both have (pp), with the 95 % upper bound of that drop; largest drop first."""
    pc = per_class[per_class.arch == arch].assign(sparsity=lambda x: x.sparsity.astype(str))

    def pooled(c):
        g = pc[(pc.sparsity == c[0]) & (pc.quant == c[1])]
        return g.groupby(["class", "seed"])[["correct", "support"]].sum()

    ref, new = pooled(REFERENCE), pooled(cell)
    both = ref.index.intersection(new.index)
    if not len(both):
        return pd.DataFrame(columns=["class", "drop_pp", "drop_high_pp"])
    ref, new = ref.loc[both].groupby(level="class").sum(), new.loc[both].groupby(level="class").sum()
    rows = []
    for cls in ref.index:
        k1, n1, k2, n2 = (
            ref.loc[cls, "correct"],
            ref.loc[cls, "support"],
            new.loc[cls, "correct"],
            new.loc[cls, "support"],
        )
        lo, _ = independent_interval(k1, n1, k2, n2)  # of new - ref
        rows.append({"class": cls, "drop_pp": 100 * (k1 / n1 - k2 / n2), "drop_high_pp": -100 * lo})
    return pd.DataFrame(rows).sort_values("drop_pp", ascending=False, kind="stable").reset_index(drop=True)


def candidates(summary, per_class, bench, device, objective, max_top1_drop, max_class_drop=None) -> pd.DataFrame:
    """Every cell with its top-1, drop against its architecture's fp32 model (mean and
    95 % interval), worst classes, objective, and whether it qualifies."""
    s = summary.assign(sparsity=summary.sparsity.astype(str))
    obj = objective_per_cell(s, bench, device, objective)
    rows, without_reference = [], []
    for arch, g in s.groupby("arch", sort=False):
        if not ((g.sparsity == REFERENCE[0]) & (g.quant == REFERENCE[1])).any():
            without_reference.append(arch)
            continue
        for cell in dict.fromkeys(zip(g.sparsity, g.quant, strict=True)):
            d = paired_delta_in(g, REFERENCE, cell)
            if arch not in d.index:  # no fp32 model of the same seeds to compare with
                continue
            r = d.loc[arch]
            classes = class_drops(per_class, arch, cell) if per_class is not None else pd.DataFrame()
            cells = g[(g.sparsity == cell[0]) & (g.quant == cell[1])]
            rows.append(
                {
                    "arch": arch,
                    "sparsity": cell[0],
                    "quant": cell[1],
                    "reference": cell == REFERENCE,
                    "seeds": int(r["n"]),
                    "top1_pct": 100 * float(cells.top1.mean()),
                    "test_images": int(cells.test_images.iloc[0]),
                    "drop_pp": -r["mean"],
                    "drop_low_pp": -r["hi"],
                    "drop_high_pp": -r["lo"],
                    "worst_class_drop_high_pp": float(classes.drop_high_pp.max()) if len(classes) else np.nan,
                    "worst_classes": "; ".join(
                        f"{c.class_} {c.drop_pp:+.1f} pp (up to {c.drop_high_pp:.1f})"
                        for c in classes.rename(columns={"class": "class_"}).head(WORST_CLASSES).itertuples()
                    ),
                }
            )
    df = pd.DataFrame(rows)
    df.attrs["without_reference"] = without_reference  # set again below: a merge drops attrs
    if df.empty:
        return df
    df = df.merge(obj, on=["arch", "sparsity", "quant"], how="left")
    within = df.drop_high_pp <= max_top1_drop  # NaN (no interval) never qualifies
    if max_class_drop is not None:
        within &= df.worst_class_drop_high_pp <= max_class_drop
    df["qualifies"] = within & ~df.reference & df.objective.notna()
    # how far a cell misses: the larger excess of its two bounds over their budgets
    miss = df.drop_high_pp.fillna(np.inf) - max_top1_drop
    if max_class_drop is not None:
        miss = np.maximum(miss, df.worst_class_drop_high_pp.fillna(np.inf) - max_class_drop)
    df["misses_by_pp"] = miss.clip(lower=0)
    df.attrs["without_reference"] = without_reference
    return df


def choose(c, device, objective, max_top1_drop, max_class_drop=None) -> dict:
    """The answer for one device from its `candidates`: per architecture the choice (or
    none, with the closest cell), the runners-up, the fp32 model's objective beside; one
    choice across the grid."""
    answer = {"device": device, "objective": objective, "max_top1_drop": max_top1_drop,
              "max_class_drop": max_class_drop, "architectures": {}, "overall": None}  # fmt: skip
    for arch in c.attrs.get("without_reference", []):
        answer["architectures"][arch] = {"reference": None, "chosen": None, "runners_up": [], "closest": None}
    if c.empty:
        return answer
    for arch, g in c.groupby("arch", sort=False):
        ref = g[g.reference]
        ok = g[g.qualifies].sort_values("objective", kind="stable")
        entry = {
            "reference": _record(ref.iloc[0]) if len(ref) else None,
            "chosen": None,
            "runners_up": [],
            "closest": None,
        }
        if len(ok):
            entry["chosen"] = _record(ok.iloc[0])
            entry["runners_up"] = [_record(r) for _, r in ok.iloc[1:4].iterrows()]
        else:
            rest = g[~g.reference & g.objective.notna()].sort_values(["misses_by_pp", "objective"], kind="stable")
            entry["closest"] = _record(rest.iloc[0]) if len(rest) else None
        answer["architectures"][arch] = entry
    answer["overall"] = _overall(c, max_top1_drop)
    return answer


def _overall(c, budget) -> dict | None:
    """Across architectures: the best fp32 model of the grid and, among the qualifying
    cells, the best objective whose top-1 is within the budget of that model's."""
    refs = c[c.reference]
    if refs.empty:
        return None
    best = refs.sort_values("top1_pct", ascending=False, kind="stable").iloc[0]
    out = {"best_fp32": _record(best), "chosen": None}
    n = best.test_images * best.seeds
    for _, r in c[c.qualifies].sort_values("objective", kind="stable").iterrows():
        if r.arch == best.arch:  # its own fp32 model: the paired drop already qualified
            high = r.drop_high_pp
        else:
            m = r.test_images * r.seeds
            lo, _ = independent_interval(round(best.top1_pct / 100 * n), n, round(r.top1_pct / 100 * m), m)
            high = -100 * lo
        if high <= budget:
            out["chosen"] = {**_record(r), "drop_vs_best_fp32_high_pp": float(high)}
            break
    return out


def _record(r) -> dict:
    keep = ["arch", "sparsity", "quant", "seeds", "top1_pct", "drop_pp", "drop_low_pp", "drop_high_pp",
            "worst_class_drop_high_pp", "worst_classes", "objective", "objective_lo", "objective_hi", "misses_by_pp"]  # fmt: skip
    return {k: _plain(r[k]) for k in keep if k in r}


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    return v


# ---------------------------------------------------------------- the answer as text
def _cell(r) -> str:
    return f"{r['arch']} s{r['sparsity']} {r['quant']}"


def _objective_text(r, objective) -> str:
    _, _, label, unit = OBJECTIVES[objective]
    v = r.get("objective")
    if v is None:
        return f"{label} not measured"
    text = f"{label} {v:,.1f} {unit}" if unit != "bytes" else f"{label} {v:,.0f} bytes"
    if r.get("objective_lo") is not None:
        text += f" [{r['objective_lo']:,.1f}, {r['objective_hi']:,.1f}]"
    return text


def _drop_text(r) -> str:
    if r.get("drop_high_pp") is None:
        return f"drop {r['drop_pp'] + 0.0:+.1f} pp (no interval: 1 seed without per-image answers)"
    # + 0.0: a drop of -0.0 reads as 0.0
    return f"drop {r['drop_pp'] + 0.0:+.1f} pp [{r['drop_low_pp'] + 0.0:+.1f}, {r['drop_high_pp'] + 0.0:+.1f}], {r['seeds']} seed(s)"


def markdown(answer) -> str:
    obj, budget = answer["objective"], answer["max_top1_drop"]
    rule = f"top-1 drop at most {budget:g} pp (95 % upper bound, against the architecture's fp32 model)"
    if answer["max_class_drop"] is not None:
        rule += f", no class losing more than {answer['max_class_drop']:g} pp (upper bound)"
    lines = [f"# What to ship on {answer['device']}", "", f"Smallest {OBJECTIVES[obj][2]} with {rule}.", ""]
    o = answer["overall"]
    if o and o["chosen"]:
        lines += [f"**Ship {_cell(o['chosen'])}**: {o['chosen']['top1_pct']:.2f} % top-1, "
                  f"{_objective_text(o['chosen'], obj)}; within {budget:g} pp of the grid's best fp32 model "
                  f"({_cell(o['best_fp32'])}, {o['best_fp32']['top1_pct']:.2f} %).", ""]  # fmt: skip
    elif o:
        lines += [f"**No compressed cell is within {budget:g} pp of the grid's best fp32 model** "
                  f"({_cell(o['best_fp32'])}, {o['best_fp32']['top1_pct']:.2f} %); per architecture below.", ""]  # fmt: skip
    else:
        lines += [
            "**Nothing to choose from**: no architecture has an fp32 model and compressed cells measured here.",
            "",
        ]
    lines += ["| architecture | answer | cell | top-1 (%) | drop vs fp32 | objective | fp32 objective | classes it loses most |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for arch, e in answer["architectures"].items():
        ref = _objective_text(e["reference"], obj) if e["reference"] else "-"
        rows = [("chosen", e["chosen"])] + [("runner-up", r) for r in e["runners_up"]] if e["chosen"] else []
        if e["reference"] is None:
            rows = [("no unpruned fp32 cell to measure drops against: add fp32 to quantization.modes", None)]
        elif not e["chosen"]:
            rows = [(f"no cell qualifies; closest (misses by {e['closest']['misses_by_pp']:.1f} pp)", e["closest"])] if e["closest"] else [("no compressed cell measured", None)]  # fmt: skip
        for what, r in rows:
            if r is None:
                lines.append(f"| {arch} | {what} | - | - | - | - | {ref} | - |")
                continue
            lines.append(f"| {arch} | {what} | {_cell(r)} | {r['top1_pct']:.2f} | {_drop_text(r)} | "
                         f"{_objective_text(r, obj)} | {ref} | {r['worst_classes'] or '-'} |")  # fmt: skip
    if OBJECTIVES[obj][0] == "bench":
        lines += ["", "Latency: the mean over every seed's timing sessions (`repeats` per cell, each its own job) "
                  "with its 95 % interval; two cells whose intervals overlap are no measured difference "
                  "(results/findings.md, findings 9-11)."]  # fmt: skip
    lines += _repair_markdown(answer.get("repair") or {}, obj)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the figure
def plot(candidates_df, answer, out_png, style="whitegrid") -> None:
    """The objective against top-1, every cell; the budget as a line below each
    architecture's fp32 model; the qualifying cells filled, the choice circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style=style)
    obj = answer["objective"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    c = candidates_df[candidates_df.objective.notna()] if len(candidates_df) else candidates_df
    if len(c):
        sns.scatterplot(data=c, x="objective", y="top1_pct", hue="arch", style="qualifies",
                        markers={True: "o", False: "X"}, s=70, ax=ax)  # fmt: skip
        for _, g in c.groupby("arch", sort=False):
            ref = g[g.reference]
            if len(ref):
                ax.axhline(ref.top1_pct.iloc[0] - answer["max_top1_drop"], ls="--", lw=0.8, color="grey")
        for e in answer["architectures"].values():
            if e["chosen"]:
                r = e["chosen"]
                ax.scatter([r["objective"]], [r["top1_pct"]], s=260, facecolors="none", edgecolors="black", lw=1.5)
                ax.annotate(f"ship: {_cell(r)}", (r["objective"], r["top1_pct"]), xytext=(6, 6), textcoords="offset points", fontsize=8)  # fmt: skip
        ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "nothing measured to choose from", ha="center", transform=ax.transAxes)
    _, _, label, unit = OBJECTIVES[obj]
    ax.set(xlabel=f"{label} on {answer['device']} ({unit}, log)", ylabel="top-1 (%)",
           title=f"What to ship on {answer['device']}: dashed = fp32 top-1 - {answer['max_top1_drop']:g} pp")  # fmt: skip
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


# ---------------------------------------------------------------- repair candidates
def with_rows(grid: pd.DataFrame, more: pd.DataFrame | None) -> pd.DataFrame:
    """`grid` with the rows of `more` whose keys it lacks (a grid cell's own row wins)."""
    if more is None or not len(more):
        return grid
    keys = [k for k in ("arch", "seed", "sparsity", "quant", "class", "device") if k in grid and k in more]
    both = pd.concat([grid.astype({"sparsity": str}), more.astype({"sparsity": str})], ignore_index=True)
    return both.drop_duplicates(subset=keys, keep="first").reset_index(drop=True)


def repair_section(c: pd.DataFrame, plan: dict, records: dict) -> dict:
    """Per architecture repaired: why, and each candidate's numbers and what it keeps out of
    int8 (the ops, as float or int16)."""
    out = {}
    for arch, why in (plan or {}).get("why", {}).items():
        order = [p["token"] for p in plan.get("candidates", []) if p["arch"] == arch]
        rows = c[(c.arch == arch) & c.quant.isin(order)] if len(c) else c
        rows = rows.sort_values("quant", key=lambda q: q.map(order.index), kind="stable")
        tried = []
        for _, r in rows.iterrows():
            kept = [
                records[k] for k in sorted(records) if records[k]["arch"] == arch and records[k]["token"] == r.quant
            ]
            rec = (
                kept[0] if kept else {"describes": r.quant, "kept_ops": [], "kept_mac_share": None, "kept_as": "float"}
            )
            tried.append({**_record(r), "qualifies": bool(r.qualifies),
                          **{k: rec[k] for k in ("describes", "kept_ops", "kept_mac_share", "kept_as")}})  # fmt: skip
        out[arch] = {"why": why, "int16": (plan.get("int16") or {}).get(arch), "candidates": tried}
    return out


def read_repairs(summary_csv, per_class_csv, bench_csv, plan_json, record_jsons) -> dict:
    """The candidates' tables (summarize_repair's), the plan and each candidate's record,
    keyed 'arch seedN token'."""
    records = {}
    for p in record_jsons:
        r = read_json(p)
        records[f"{r['arch']} seed{r['seed']} {r['token']}"] = r
    return {"summary": pd.read_csv(summary_csv), "per_class": pd.read_csv(per_class_csv),
            "bench": pd.read_csv(bench_csv), "plan": read_json(plan_json), "records": records}  # fmt: skip


def _repair_markdown(section: dict, objective) -> list:
    lines = []
    for arch, e in section.items():
        int16 = any(r["kept_as"] == "int16" for r in e["candidates"])
        header = "kept float or at int16" if int16 else "kept float"
        lines += ["", f"## Repair of int8: {arch}", "", f"{e['why']}; candidates made from each seed's unpruned fp32 .tflite:", "",
                  f"| candidate | what it is | top-1 (%) | drop vs fp32 | objective | qualifies | {header} |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in e["candidates"]:
            share = (
                f"{len(r['kept_ops'])} ops{' at int16' if r['kept_as'] == 'int16' else ''}, "
                f"{100 * r['kept_mac_share']:.1f} % of MACs"
                if r["kept_mac_share"] is not None
                else "-"
            )
            ops = "; ".join(op.split(";")[0] for op in r["kept_ops"][:4])
            kept = f"{share}: {ops}" if r["kept_ops"] else "nothing"
            lines.append(f"| {r['quant']} | {r['describes']} | {r['top1_pct']:.2f} | {_drop_text(r)} | "
                         f"{_objective_text(r, objective)} | {'yes' if r['qualifies'] else 'no'} | {kept} |")  # fmt: skip
        if not e["candidates"]:
            lines.append("| - | no candidate measured | - | - | - | - | - |")
        if e.get("int16"):
            lines += ["", f"int16 candidates (int8x<k>): {'planned' if int16 else 'none'}; {e['int16']}."]
    return lines


# ---------------------------------------------------------------- the stage
def choose_ship(
    *, summary_csv, per_class_csv, bench_csv, device, settings, out_json, out_md, out_png, style="whitegrid",
    plan_json=None, repair_summary_csv=None, repair_per_class_csv=None, repair_bench_csv=None, record_jsons=(),
):  # fmt: skip
    """Stage `choose_ship`; the repair_* tables and records (summarize_repair's, repair_tflite's)
    add the candidates the plan made, judged with the grid's cells by the same rules."""
    summary = pd.read_csv(summary_csv)
    per_class = pd.read_csv(per_class_csv) if per_class_csv else None
    bench = pd.read_csv(bench_csv) if bench_csv else pd.DataFrame(columns=["device"])
    repairs = {}
    if plan_json:
        repairs = read_repairs(repair_summary_csv, repair_per_class_csv, repair_bench_csv, plan_json, record_jsons)
    summary = with_rows(summary, repairs.get("summary"))
    per_class = with_rows(per_class, repairs.get("per_class")) if per_class is not None else None
    bench = with_rows(bench, repairs.get("bench"))
    args = dict(objective=settings["objective"], max_top1_drop=settings["max_top1_drop"], max_class_drop=settings.get("max_class_drop"))  # fmt: skip
    c = candidates(summary, per_class, bench, device, **args)
    answer = choose(c, device, **args)
    answer["repair"] = repair_section(c, repairs.get("plan"), repairs.get("records", {}))
    plot(c, answer, out_png, style)
    write_text(out_md, markdown(answer))
    with atomic_path(out_json) as tmp:
        tmp.write_text(
            json.dumps({**answer, "cells": json.loads(c.to_json(orient="records")) if len(c) else []}, indent=1)
        )
