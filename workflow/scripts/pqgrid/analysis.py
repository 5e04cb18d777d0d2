"""The thesis' tables (4.1-4.8), per-class changes with Welch's t-test across seeds, and the
automatic verdicts on the thesis' claims. Inputs are the workflow's long tables:

  summary.csv    one row per cell (arch, seed, sparsity, quant, accuracy, sizes, sparsity)
  bench.csv      one row per cell and device (latency, peak memory)
  per_class.csv  one row per cell and class (top-1 of that class)

Every function takes DataFrames and returns a DataFrame, so tests feed them small frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

MB = 1024 * 1024
CELL = ["arch", "seed", "sparsity", "quant"]


# ---------------------------------------------------------------- loading
def load_bench(paths) -> pd.DataFrame:
    rows = []
    for p in paths:
        b = json.loads(Path(p).read_text())
        ram = b.get("peak_memory_mb", b.get("peak_rss_mb"))
        rows.append({**b["cell"], "device": b["device_name"], "latency_us": b["avg_us"], "latency_std_us": b.get("std_us"),
                     "p50_us": b.get("p50_us"), "ram_mb": ram, "tool": b["tool"], "threads": b.get("threads"),
                     "cpu_model": (b.get("device") or {}).get("cpu_model")})
    cols = [*CELL, "device", "latency_us", "latency_std_us", "p50_us", "ram_mb", "tool", "threads", "cpu_model"]
    return pd.DataFrame(rows, columns=cols)


def load_per_class(cells_and_paths) -> pd.DataFrame:
    frames = []
    for cell, p in cells_and_paths:
        df = pd.read_csv(p)
        frames.append(df.assign(**cell))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*CELL, "class", "accuracy"])


def thesis_tables(folder) -> dict:
    """The thesis' published tables (shared/thesis/*.csv), by file stem; {} if absent."""
    folder = Path(folder) if folder else None
    if not folder or not folder.is_dir():
        return {}
    return {p.stem: pd.read_csv(p) for p in sorted(folder.glob("table_*.csv"))}


# ---------------------------------------------------------------- helpers
def _sparsity_num(s):
    return pd.to_numeric(s.astype(str).str.replace("2of4|2:4", "50", regex=True), errors="coerce")


def mean_std(df: pd.DataFrame, keys, values) -> pd.DataFrame:
    """Mean over seeds, plus `<col>_std` and `n_seeds`."""
    g = df.groupby(keys, sort=False)
    mean = g[values].mean()
    std = g[values].std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)
    out["n_seeds"] = g.size()
    return out.reset_index()


def fmt_pm(df: pd.DataFrame, digits=4) -> pd.DataFrame:
    """For Markdown: `value ± std` where several seeds were run."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if c.endswith("_std") or c == "n_seeds":
            continue
        std = df.get(f"{c}_std")
        if std is not None and pd.api.types.is_numeric_dtype(df[c]) and std.notna().any():
            out[c] = [f"{v:.{digits}g} ± {s:.2g}" if pd.notna(s) else f"{v:.{digits}g}" for v, s in zip(df[c], std)]
        else:
            out[c] = df[c]
    return out


def _with_thesis(df, thesis, name, cols):
    t = thesis.get(name)
    if t is None or df.empty:
        return df
    t = t.rename(columns={"architecture": "arch"})[["arch", *[c for c in cols if c in t.columns]]]
    t = t.rename(columns={c: f"thesis_{c}" for c in cols})
    return df.merge(t, on="arch", how="left")


# ---------------------------------------------------------------- tables
def table_4_1_training(summary, bench, per_class, thesis):
    d = summary[(summary.sparsity.astype(str) == "0")].drop_duplicates(["arch", "seed"])
    d = d.rename(columns={"keras_top1_train": "top1_train", "keras_top3_train": "top3_train",
                          "keras_top1_test": "top1_test", "keras_top3_test": "top3_test"})
    out = mean_std(d, ["arch"], ["params", "top1_train", "top3_train", "top1_test", "top3_test"])
    return _with_thesis(out, thesis, "table_4_1_training", ["top1_test", "top3_test", "params"])


def _device_table(summary, bench, quant):
    s = summary[(summary.sparsity.astype(str) == "0") & (summary.quant == quant)].copy()
    s["file_mb"] = s.file_bytes / MB
    s["gzip_mb"] = s.gzip_bytes / MB
    if bench.empty:
        s["device"] = "(no device)"
        merged = s.assign(ram_mb=np.nan, latency_us=np.nan)
    else:
        merged = s.merge(bench[[*CELL, "device", "ram_mb", "latency_us"]], on=CELL, how="inner")
    return mean_std(merged, ["device", "arch"], ["params", "top1", "top3", "file_mb", "gzip_mb", "ram_mb", "latency_us"])


def table_4_2_fp32_device(summary, bench, per_class, thesis):
    out = _device_table(summary, bench, "fp32")
    return _with_thesis(out, thesis, "table_4_2_fp32_on_pi4", ["file_mb", "ram_mb", "inference_us"])


def table_4_3_int8_device(summary, bench, per_class, thesis):
    out = _device_table(summary, bench, "int8")
    return _with_thesis(out, thesis, "table_4_3_int8_on_pi4", ["top1_test", "file_mb", "ram_mb", "inference_us"])


def table_4_4_depthwise(summary, bench, per_class, thesis):
    d = summary[summary.sparsity.astype(str) == "0"].drop_duplicates(["arch"])
    out = d[["arch", "params", "depthwise_params", "depthwise_share"]].reset_index(drop=True)
    return _with_thesis(out, thesis, "table_4_4_depthwise", ["params", "depthwise_params", "depthwise_share"])


def table_4_5_pruned_fp32(summary, bench, per_class, thesis):
    s = summary[summary.quant == "fp32"].copy()
    s["file_mb"], s["gzip_mb"] = s.file_bytes / MB, s.gzip_bytes / MB
    if not bench.empty:
        s = s.merge(bench[[*CELL, "device", "ram_mb", "latency_us"]], on=CELL, how="left")
    else:
        s = s.assign(device="(no device)", ram_mb=np.nan, latency_us=np.nan)
    s["target_sparsity"] = s.sparsity.astype(str)
    out = mean_std(s, ["device", "arch", "target_sparsity"],
                   ["top1", "zero_fraction", "conv_dense_sparsity", "depthwise_sparsity", "tflite_kernel_sparsity",
                    "file_mb", "gzip_mb", "ram_mb", "latency_us"])
    out = out.rename(columns={"zero_fraction": "exact_sparsity", "zero_fraction_std": "exact_sparsity_std"})
    t = thesis.get("table_4_5_pruned_fp32_on_pi4")
    if t is not None:
        t = t.rename(columns={"architecture": "arch"}).assign(target_sparsity=lambda x: x.target_sparsity.astype(str))
        t = t[["arch", "target_sparsity", "exact_sparsity", "inference_us"]].rename(
            columns={"exact_sparsity": "thesis_exact_sparsity", "inference_us": "thesis_inference_us"})
        out = out.merge(t, on=["arch", "target_sparsity"], how="left")
    return out


def table_4_6_per_class(summary, bench, per_class, thesis):
    """Per-class top-1 (mean over seeds): one column per arch x (fp32 at each sparsity,
    and each quantization mode unpruned)."""
    if per_class.empty:
        return pd.DataFrame(columns=["class"])
    pc = per_class.copy()
    pc["sparsity"] = pc.sparsity.astype(str)
    keep = ((pc.quant == "fp32") | (pc.sparsity == "0"))
    pc = pc[keep]
    pc["column"] = np.where(pc.quant == "fp32", pc.arch + "_s" + pc.sparsity, pc.arch + "_" + pc.quant)
    wide = pc.groupby(["class", "column"]).accuracy.mean().unstack("column")
    return wide.reset_index()


def table_4_7_minimalistic(summary, bench, per_class, thesis):
    """Before/after int8 for every architecture whose name marks a variant (MobileNetV3
    and its minimalistic forms): the thesis' Tables 4.7/4.8."""
    v3 = summary[summary.arch.str.contains("v3")]
    out = pd.concat([_device_table(v3, bench, q).assign(quantization=q) for q in ("fp32", "int8")], ignore_index=True)
    return out


TABLES = {
    "table_4_1_training": table_4_1_training,
    "table_4_2_fp32_device": table_4_2_fp32_device,
    "table_4_3_int8_device": table_4_3_int8_device,
    "table_4_4_depthwise": table_4_4_depthwise,
    "table_4_5_pruned_fp32": table_4_5_pruned_fp32,
    "table_4_6_per_class": table_4_6_per_class,
    "table_4_7_minimalistic": table_4_7_minimalistic,
}


# ---------------------------------------------------------------- per-class significance
def welch_t(a, b):
    """Welch's t-test (unequal variances) p-value; NaN with fewer than 2 values per side."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if np.var(a, ddof=1) == 0 and np.var(b, ddof=1) == 0:
        return 0.0 if np.mean(a) != np.mean(b) else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def per_class_changes(per_class, arch, base, variants, alpha=0.05):
    """Per class: change in percentage points of each variant (sparsity, quant) against the
    base cell, mean over seeds, with Welch's p-value across seeds (Hooker et al. 2020)."""
    pc = per_class[per_class.arch == arch].copy()
    pc["sparsity"] = pc.sparsity.astype(str)
    b = pc[(pc.sparsity == base[0]) & (pc.quant == base[1])]
    rows = []
    for sp, q in variants:
        v = pc[(pc.sparsity == sp) & (pc.quant == q)]
        if v.empty or b.empty:
            continue
        for cls in b["class"].unique():
            x, y = b[b["class"] == cls].accuracy.values, v[v["class"] == cls].accuracy.values
            p = welch_t(x, y)
            rows.append({"variant": f"s{sp} {q}", "class": cls, "delta_pp": 100 * (y.mean() - x.mean()),
                         "p_value": p, "significant": bool(p < alpha) if p == p else False, "n_seeds": len(y)})
        overall = 100 * (v.accuracy.mean() - b.accuracy.mean())
        for r in rows:
            if r["variant"] == f"s{sp} {q}":
                r["overall_delta_pp"] = overall
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- findings
def _unpruned(summary, quant):
    return summary[(summary.sparsity.astype(str) == "0") & (summary.quant == quant)].groupby("arch").mean(numeric_only=True)


ACCURACY_CLAIMS = (2, 6, 7, 8, 11)


def collapsed_cells(summary) -> pd.DataFrame:
    """Cells at chance while their trained model is not (summary.csv's `collapsed`)."""
    if "collapsed" not in summary.columns:
        return summary.iloc[0:0]
    return summary[summary["collapsed"].astype(str).str.lower() == "true"]


def _cell_key(df) -> pd.Series:
    return df[CELL].astype(str).agg("|".join, axis=1)


def _cell_names(cells) -> str:
    return ", ".join(f"{r.arch} seed{r.seed} s{r.sparsity} {r.quant}" for r in cells.itertuples())


def findings(summary, bench, per_class) -> pd.DataFrame:
    """Each claim of the thesis, what this run measured, and a verdict with its threshold.
    Claims about accuracy never use a collapsed cell (a broken model is not a measurement of
    the method): they are judged on the other cells, and say which were left out."""
    broken = collapsed_cells(summary)
    acc_summary = summary
    if len(broken):
        bad = set(_cell_key(broken))
        acc_summary = summary[~_cell_key(summary).isin(bad)]
        if not per_class.empty:
            per_class = per_class[~_cell_key(per_class).isin(bad)]
    rows = []

    def add(no, claim, measured, verdict, threshold):
        rows.append({"no": no, "claim": claim, "measured": measured, "verdict": verdict, "threshold": threshold})

    def nm(no, claim, why, threshold=""):
        add(no, claim, why, "not measured", threshold)

    fp, i8 = _unpruned(summary, "fp32"), _unpruned(summary, "int8")
    both = fp.index.intersection(i8.index)
    fp_a, i8_a = _unpruned(acc_summary, "fp32"), _unpruned(acc_summary, "int8")
    both_a = fp_a.index.intersection(i8_a.index)
    # 1. size
    claim = "int8 PTQ shrinks .tflite files by about 70 %"
    if len(both):
        cut = 100 * (1 - i8.loc[both, "file_bytes"] / fp.loc[both, "file_bytes"])
        add(1, claim, "; ".join(f"{a} {v:.1f} %" for a, v in cut.items()),
            "holds" if cut.between(60, 80).all() else "does not hold", "every architecture 60-80 %")
    else:
        nm(1, claim, "needs fp32 and int8 cells at sparsity 0")
    # 2. accuracy under int8
    claim = "int8 changes top-1 by < 2 pp for MobileNet, V2 and B0; MobileNetV3Large loses much more"
    if len(both_a):
        d = 100 * (i8_a.loc[both_a, "top1"] - fp_a.loc[both_a, "top1"])
        small = [a for a in ("mobilenet", "mobilenet_v2", "efficientnet_b0") if a in d.index]
        ok_small = all(abs(d[a]) < 2 for a in small)
        large = d.get("mobilenet_v3_large")
        verdict = "holds" if small and ok_small and (large is None or large < -2 * max(abs(d[a]) for a in small)) else \
            ("does not hold" if small else "not measured")
        add(2, claim, "; ".join(f"{a} {v:+.1f} pp" for a, v in d.items()), verdict,
            "|Δ| < 2 pp for the three; V3Large loss > 2x their largest |Δ| (when run)")
    else:
        nm(2, claim, "needs fp32 and int8 cells")
    # 3. pruning leaves size (and RAM, latency) unchanged
    claim = "pruning leaves .tflite size, RAM and latency unchanged"
    s = summary[summary.quant == "fp32"]
    if s.sparsity.astype(str).nunique() > 1:
        spread = s.groupby("arch").file_bytes.agg(lambda x: 100 * (x.max() - x.min()) / x.min())
        msg = "size spread " + "; ".join(f"{a} {v:.2f} %" for a, v in spread.items())
        ok = (spread < 1).all()
        if not bench.empty:
            b = bench[bench.quant == "fp32"].groupby(["device", "arch"]).latency_us.agg(lambda x: 100 * (x.max() - x.min()) / x.min())
            msg += "; latency spread " + "; ".join(f"{d}/{a} {v:.1f} %" for (d, a), v in b.items())
            ok = ok and (b < 15).all()
        add(3, claim, msg, "holds" if ok else "does not hold", "size spread < 1 %, latency spread < 15 % across sparsities")
    else:
        nm(3, claim, "needs more than one sparsity")
    # 4. gzip falls with sparsity; prune+int8+gzip smallest, ~92 % below fp32
    claim = "gzip size falls as sparsity rises; pruning + int8 + gzip is smallest, ~92 % below fp32 on average"
    num = summary.assign(sp=_sparsity_num(summary.sparsity))
    uns = num[num.sparsity.astype(str).str.isdigit()]
    num_a = acc_summary.assign(sp=_sparsity_num(acc_summary.sparsity))
    uns_a = num_a[num_a.sparsity.astype(str).str.isdigit()]
    if uns.sp.nunique() > 1 and len(both):
        mono = all(g.sort_values("sp").gzip_bytes.is_monotonic_decreasing
                   for _, g in uns[uns.quant == "fp32"].groupby(["arch", "seed"]))
        top = uns.sp.max()
        best = uns[(uns.sp == top) & (uns.quant == "int8")].groupby("arch").gzip_bytes.mean()
        red = 100 * (1 - best / fp.loc[best.index, "file_bytes"])
        # "smallest": each architecture's smallest file is a most-pruned cell with int8
        # weights (dynamic, int8 or int8_full: pqgrid has more int8 modes than the thesis)
        int8_weights = {"dynamic", "int8", "int8_full"}
        mins = uns.loc[uns.groupby("arch").gzip_bytes.idxmin()]
        smallest = bool(((mins.sp == top) & mins.quant.isin(int8_weights)).all())
        add(4, claim, f"monotone: {mono}; smallest cells: " + ", ".join(f"{r.arch} s{int(r.sp)} {r.quant}" for r in mins.itertuples())
            + f"; reduction at {top:.0f} % + int8 + gzip: " +
            "; ".join(f"{a} {v:.1f} %" for a, v in red.items()) + f"; mean {red.mean():.1f} %",
            "holds" if mono and smallest and abs(red.mean() - 91.65) <= 5 else "does not hold",
            "gzip decreasing in sparsity (fp32), smallest cell most-pruned with int8 weights, mean reduction 91.65 ± 5 %")
    else:
        nm(4, claim, "needs several sparsities and int8")
    # 5. exact sparsity falls short
    claim = "exact sparsity (zeros / all parameters) falls short of the target"
    pr = uns[(uns.sp > 0) & (uns.quant == "fp32")]
    if len(pr):
        short = 100 * (pr.sp / 100 - pr.zero_fraction)
        add(5, claim, "; ".join(f"{r.arch} s{int(r.sp)}: {100 * r.zero_fraction:.1f} %" for r in pr.drop_duplicates(["arch", "sp"]).itertuples()),
            "holds" if (short > 0.5).all() else "does not hold", "every pruned model > 0.5 pp below its target")
    else:
        nm(5, claim, "no pruned cells")
    # 6. 30 % pruning improves top-1; MobileNet best at 90 %
    claim = "30 % pruning improves top-1 for every architecture"
    f30 = uns_a[(uns_a.sp == 30) & (uns_a.quant == "fp32")].groupby("arch").top1.mean()
    f30 = f30[f30.index.isin(fp_a.index)]
    if len(f30):
        d = 100 * (f30 - fp_a.loc[f30.index, "top1"])
        add(6, claim, "; ".join(f"{a} {v:+.1f} pp" for a, v in d.items()), "holds" if (d > 0).all() else "does not hold", "Δ top-1 > 0 for all")
    else:
        nm(6, claim, "no 30 % cells")
    claim = "MobileNet keeps the best top-1 at 90 % sparsity"
    f90 = uns_a[(uns_a.sp == 90) & (uns_a.quant == "fp32")].groupby("arch").top1.mean()
    if "mobilenet" in f90.index and len(f90) > 1:
        add(7, claim, "; ".join(f"{a} {v:.3f}" for a, v in f90.sort_values(ascending=False).items()),
            "holds" if f90.idxmax() == "mobilenet" else "does not hold", "mobilenet has the highest top-1 at 90 %")
    else:
        nm(7, claim, "needs mobilenet and another architecture at 90 %")
    # 8. per-class uneven
    claim = "per-class changes are uneven: the largest class change is several times the overall change"
    if not per_class.empty and len(both_a):
        ratios = []
        for a in per_class.arch.unique():
            base = per_class[(per_class.arch == a) & (per_class.sparsity.astype(str) == "0") & (per_class.quant == "fp32")]
            for (sp, q), v in per_class[per_class.arch == a].groupby([per_class.sparsity.astype(str), "quant"]):
                if (sp, q) == ("0", "fp32") or base.empty:
                    continue
                dc = (v.groupby("class").accuracy.mean() - base.groupby("class").accuracy.mean()).abs()
                overall = abs(v.accuracy.mean() - base.accuracy.mean())
                if overall > 0.005:
                    ratios.append(dc.max() / overall)
        if ratios:
            med = float(np.median(ratios))
            add(8, claim, f"median over variants of max|class Δ| / |overall Δ| = {med:.1f} ({len(ratios)} variants)",
                "holds" if med >= 2 else "does not hold", "median ratio >= 2")
        else:
            nm(8, claim, "no variant changed overall top-1 by more than 0.5 pp")
    else:
        nm(8, claim, "no per-class data")
    # 9-10. device claims
    for no, claim, test in (
        (9, "EfficientNet-B0 is slower than MobileNetV3Large", lambda l: ("efficientnet_b0", "mobilenet_v3_large")),
        (10, "MobileNetV3Small is the fastest and smallest", None),
    ):
        if bench.empty:
            nm(no, claim, "no device configured")
            continue
        lat = bench[(bench.sparsity.astype(str) == "0") & (bench.quant == "fp32")].groupby(["device", "arch"]).latency_us.mean()
        if no == 9:
            res = [(d, lat[d, "efficientnet_b0"], lat[d, "mobilenet_v3_large"]) for d in lat.index.get_level_values(0).unique()
                   if (d, "efficientnet_b0") in lat.index and (d, "mobilenet_v3_large") in lat.index]
            if not res:
                nm(no, claim, "needs both architectures")
                continue
            add(no, claim, "; ".join(f"{d}: B0 {b:.0f} µs vs V3Large {v:.0f} µs" for d, b, v in res),
                "holds" if all(b > v for _, b, v in res) else "does not hold", "B0 latency > V3Large latency on every device")
        else:
            if "mobilenet_v3_small" not in fp.index:
                nm(no, claim, "mobilenet_v3_small not run")
                continue
            fastest = [lat[d].idxmin() for d in lat.index.get_level_values(0).unique()]
            smallest = fp.file_bytes.idxmin()
            add(no, claim, f"fastest: {', '.join(fastest)}; smallest file: {smallest}",
                "holds" if all(f == "mobilenet_v3_small" for f in fastest) and smallest == "mobilenet_v3_small" else "does not hold",
                "lowest fp32 latency on every device and smallest fp32 file (unpruned)")
    # 11. minimalistic
    claim = "minimalistic MobileNetV3 variants are smaller, faster and gain rather than lose accuracy under int8"
    pairs = [(m, m.replace("_min", "")) for m in fp_a.index if m.endswith("_min") and m.replace("_min", "") in fp.index]
    if pairs and len(both_a):
        parts, ok = [], True
        for m, full in pairs:
            smaller = fp.loc[m, "file_bytes"] < fp.loc[full, "file_bytes"]
            gain = (i8_a.loc[m, "top1"] - fp_a.loc[m, "top1"]) >= 0 if m in i8_a.index else False
            ok = ok and smaller and gain
            parts.append(f"{m}: smaller {smaller}, int8 Δ {100 * (i8_a.loc[m, 'top1'] - fp_a.loc[m, 'top1']):+.1f} pp" if m in i8_a.index else f"{m}: no int8")
        add(11, claim, "; ".join(parts), "holds" if ok else "does not hold", "smaller fp32 file and int8 Δ top-1 >= 0 (latency: see table 4.7)")
    else:
        nm(11, claim, "no minimalistic variant next to its full model")
    if len(broken):
        for r in rows:
            if r["no"] in ACCURACY_CLAIMS:
                r["measured"] += f"; left out (collapsed to chance): {_cell_names(broken)}"
    return pd.DataFrame(rows)


def findings_markdown(df: pd.DataFrame, context: str, broken: pd.DataFrame | None = None) -> str:
    lines = ["# Findings: the thesis' claims checked against this run", "", context, ""]
    if broken is not None and len(broken):
        lines += [f"**Warning: {len(broken)} cell(s) collapsed to chance** while their trained model is well above "
                  f"it: {_cell_names(broken)}. They are defects to look at (see the job logs), not measurements; "
                  "the claims about accuracy below leave them out.", ""]
    lines += ["| # | claim | measured | verdict | threshold |", "|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.no} | {r.claim} | {r.measured} | **{r.verdict}** | {r.threshold} |")
    return "\n".join(lines) + "\n"
