"""Stage `make_table`: the thesis' tables (4.1-4.8) for this run, mean over seeds with its
95 % t-interval (`<col>_ci95`, the half-width), standard deviation (`<col>_std`) and
`n_seeds`, with the thesis' published numbers beside (`thesis_*` columns).
Every table is a function `(summary, bench, per_class, thesis) -> DataFrame` named in
report_entries.py, so tests feed them small frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pqgrid.core import report_entries
from pqgrid.core.io import atomic_path, write_text
from pqgrid.core.pruning_methods import method_of
from pqgrid.evaluate.stats import CELL, MB, ci_halfwidth, is_unpruned
from pqgrid.evaluate.summary import (
    BENCH_COLUMNS,
    DEVICE_EVAL_COLUMNS,
    ENERGY_COLUMNS,
    PERCENT_COLUMNS,
    mobilenet_v3,
    read_long_tables,
    readable,
    to_markdown,
)
from pqgrid.report.pages import page

NOTE = "Mean over seeds; `± x`: half-width of the 95 % Student-t interval (n_seeds >= 2)."


def make_table(*, name, inputs, thesis_dir, out_csv, out_md, out_html):
    t = read_long_tables(inputs)
    per_class = t["per_class"] if t["per_class"] is not None else pd.DataFrame()
    summary = t["summary"] if t["summary"] is not None else pd.DataFrame()
    df = TABLES[name](summary, t["bench"], per_class, thesis_tables(thesis_dir))
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    shown = fmt_pm(readable(df))
    write_text(out_md, f"# {name}\n\n{NOTE}\n\n" + to_markdown(shown))
    title = f"{name}: {report_entries.resolve(name)[0].caption}"
    write_text(out_html, page(title, shown, notes=(NOTE.replace("`", ""),)))


def thesis_tables(folder) -> dict:
    """The thesis' published tables (resources/thesis/*.csv), by file stem; {} if absent."""
    folder = Path(folder) if folder else None
    if not folder or not folder.is_dir():
        return {}
    return {p.stem: pd.read_csv(p) for p in sorted(folder.glob("table_*.csv"))}


def mean_std(df: pd.DataFrame, keys, values) -> pd.DataFrame:
    """Mean over seeds, plus `<col>_ci95` (half-width of the 95 % t-interval), `<col>_std`
    and `n_seeds`."""
    g = df.groupby(keys, sort=False)
    mean = g[values].mean()
    ci = g[values].agg(ci_halfwidth).add_suffix("_ci95")
    std = g[values].std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, ci, std], axis=1)
    out["n_seeds"] = g.size()
    return out.reset_index()


def _unit(column: str) -> tuple:
    """'top1_ci95 (%)' -> ('top1_ci95', ' (%)'): readable() puts the unit after the name."""
    name, _, unit = column.partition(" (")
    return name, f" ({unit}" if unit else ""


def fmt_pm(df: pd.DataFrame, digits=4) -> pd.DataFrame:
    """For Markdown: `value ± half-width of its 95 % t-interval` where several seeds were
    run (`n_seeds` stays a column)."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        base, unit = _unit(c)
        if base.endswith(("_std", "_ci95")):
            continue
        ci = next((df[o] for o in df.columns if _unit(o) == (f"{base}_ci95", unit)), None)
        if ci is not None and pd.api.types.is_numeric_dtype(df[c]) and ci.notna().any():
            out[c] = [
                f"{v:.{digits}g} ± {s:.2g}" if pd.notna(s) else f"{v:.{digits}g}"
                for v, s in zip(df[c], ci, strict=True)
            ]
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


def table_4_1_training(summary, bench, per_class, thesis):
    d = summary[is_unpruned(summary)].drop_duplicates(["arch", "seed"])
    d = d.rename(
        columns={
            "keras_top1_train": "top1_train",
            "keras_top3_train": "top3_train",
            "keras_top1_test": "top1_test",
            "keras_top3_test": "top3_test",
        }
    )
    out = mean_std(d, ["arch"], ["params", "top1_train", "top3_train", "top1_test", "top3_test"])
    return _with_thesis(out, thesis, "table_4_1_training", ["top1_test", "top3_test", "params"])


def _device_table(summary, bench, quant):
    s = summary[is_unpruned(summary) & (summary.quant == quant)].copy()
    s["file_mb"] = s.file_bytes / MB
    s["gzip_mb"] = s.gzip_bytes / MB
    if bench.empty:
        s["device"] = "(no device)"
        merged = s.assign(ram_delta_mb=np.nan, latency_us=np.nan)
    else:
        merged = s.merge(bench[[*CELL, "device", "ram_delta_mb", "latency_us"]], on=CELL, how="inner")
    return mean_std(
        merged, ["device", "arch"], ["params", "top1", "top3", "file_mb", "gzip_mb", "ram_delta_mb", "latency_us"]
    )


def table_4_2_fp32_device(summary, bench, per_class, thesis):
    out = _device_table(summary, bench, "fp32")
    return _with_thesis(out, thesis, "table_4_2_fp32_on_pi4", ["file_mb", "ram_delta_mb", "inference_us"])


def table_4_3_int8_device(summary, bench, per_class, thesis):
    out = _device_table(summary, bench, "int8")
    return _with_thesis(out, thesis, "table_4_3_int8_on_pi4", ["top1_test", "file_mb", "ram_delta_mb", "inference_us"])


def table_4_4_depthwise(summary, bench, per_class, thesis):
    d = summary[is_unpruned(summary)].drop_duplicates(["arch"])
    out = d[["arch", "params", "depthwise_params", "depthwise_share"]].reset_index(drop=True)
    return _with_thesis(out, thesis, "table_4_4_depthwise", ["params", "depthwise_params", "depthwise_share"])


def table_4_5_pruned_fp32(summary, bench, per_class, thesis):
    s = summary[summary.quant == "fp32"].copy()
    s["file_mb"], s["gzip_mb"] = s.file_bytes / MB, s.gzip_bytes / MB
    if not bench.empty:
        s = s.merge(bench[[*CELL, "device", "ram_delta_mb", "latency_us"]], on=CELL, how="left")
    else:
        s = s.assign(device="(no device)", ram_delta_mb=np.nan, latency_us=np.nan)
    s["target_sparsity"] = s.sparsity.astype(str)
    out = mean_std(
        s,
        ["device", "arch", "target_sparsity"],
        [
            "top1",
            "zero_fraction",
            "conv_dense_sparsity",
            "depthwise_sparsity",
            "tflite_kernel_sparsity",
            "file_mb",
            "gzip_mb",
            "ram_delta_mb",
            "latency_us",
        ],
    )
    out = out.rename(columns=lambda c: c.replace("zero_fraction", "exact_sparsity"))
    t = thesis.get("table_4_5_pruned_fp32_on_pi4")
    if t is not None:
        t = t.rename(columns={"architecture": "arch"}).assign(target_sparsity=lambda x: x.target_sparsity.astype(str))
        t = t[["arch", "target_sparsity", "exact_sparsity", "inference_us"]].rename(
            columns={"exact_sparsity": "thesis_exact_sparsity", "inference_us": "thesis_inference_us"}
        )
        out = out.merge(t, on=["arch", "target_sparsity"], how="left")
    return out


def table_4_6_per_class(summary, bench, per_class, thesis):
    """Per-class top-1 (mean over seeds, `_ci95` columns with its 95 % t-interval): one
    column per arch x (fp32 at each sparsity, and each quantization mode unpruned)."""
    if per_class.empty:
        return pd.DataFrame(columns=["class"])
    pc = per_class.copy()
    pc["sparsity"] = pc.sparsity.astype(str)
    keep = (pc.quant == "fp32") | (pc.sparsity == "0")
    pc = pc[keep]
    pc["column"] = np.where(pc.quant == "fp32", pc.arch + "_s" + pc.sparsity, pc.arch + "_" + pc.quant)
    g = pc.groupby(["class", "column"], sort=False).accuracy
    wide = g.mean().unstack("column")
    ci = g.agg(ci_halfwidth).unstack("column").add_suffix("_ci95")
    wide = pd.concat([wide, ci], axis=1).reset_index()
    wide["n_seeds"] = pc.seed.nunique() if "seed" in pc else 1
    t = thesis.get("table_4_6_per_class_top1")
    if t is not None:  # the thesis' per-class top-1 beside the same columns of this run
        wide = wide.merge(t.add_prefix("thesis_").rename(columns={"thesis_class": "class"}), on="class", how="left")
    wide.attrs[PERCENT_COLUMNS] = [c for c in wide.columns if c not in ("class", "n_seeds")]  # top-1 fractions
    return wide


def _minimalistic(summary, bench, thesis, quant):
    """MobileNetV3 variants (full and minimalistic) in one mode, with the thesis' Table
    4.7 (fp32) or 4.8 (int8) beside."""
    out = _device_table(summary[summary.arch.isin(mobilenet_v3(summary))], bench, quant)
    t = thesis.get("table_4_7_4_8_minimalistic")
    if t is not None and not out.empty:
        t = t[t.quantization == quant].drop(columns="quantization")
        out = _with_thesis(out, {"t": t}, "t", ["top1_test", "top3_test", "file_mb", "ram_delta_mb", "inference_us"])
    return out


def table_4_7_minimalistic_fp32(summary, bench, per_class, thesis):
    return _minimalistic(summary, bench, thesis, "fp32")


def table_4_8_minimalistic_int8(summary, bench, per_class, thesis):
    return _minimalistic(summary, bench, thesis, "int8")


def table_remedies(summary, bench, per_class, thesis):
    """Per architecture and sparsity where a remedy ran: top-1 of fp32, int8 PTQ, int16x8
    and QAT (.tflite and Keras), the kernel zeros before and after (P)QAT, and the thesis'
    int8 top-1 (Table 4.3, unpruned) beside."""
    modes = {"fp32": "fp32_top1", "int8": "int8_top1", "int16x8": "int16x8_top1", "qat": "qat_top1"}
    s = summary[summary.quant.isin(list(modes))]
    remedy_models = s[s.quant.isin(["int16x8", "qat"])][["arch", "sparsity"]].drop_duplicates()
    if remedy_models.empty:
        return pd.DataFrame(columns=["arch", "sparsity", *modes.values()])
    s = s.merge(remedy_models, on=["arch", "sparsity"])
    wide = s.pivot_table(index=["arch", "sparsity", "seed"], columns="quant", values="top1").rename(columns=modes)
    q = s[s.quant == "qat"].set_index(["arch", "sparsity", "seed"])
    for col, src in (
        ("qat_keras_top1", "keras_qat_top1"),
        ("kernel_sparsity_before_qat", "kernel_sparsity_before_qat"),
        ("kernel_sparsity_after_qat", "tflite_kernel_sparsity"),
    ):
        if src in q.columns:
            wide[col] = q[src]
    wide = wide.reset_index()
    values = [c for c in wide.columns if c not in ("arch", "sparsity", "seed")]
    out = mean_std(wide, ["arch", "sparsity"], values)
    t = thesis.get("table_4_3_int8_on_pi4")
    if t is not None:
        t = t.rename(columns={"architecture": "arch", "top1_test": "thesis_int8_top1"})[["arch", "thesis_int8_top1"]]
        out = out.merge(t, on="arch", how="left")
        out.loc[~is_unpruned(out), "thesis_int8_top1"] = np.nan  # the thesis quantized unpruned models
    return out


def table_widths(summary, bench, per_class, thesis):
    """The MobileNet study's table (seed 003): per device and architecture - width (alpha) and
    input size readable in `label` - top-1 in fp32 and int8, latency and file size of the
    unpruned models. Power and energy per device: table_devices."""
    s = summary[is_unpruned(summary) & summary.quant.isin(["fp32", "int8"])].copy()
    if s.empty:
        return pd.DataFrame(columns=["device", "arch", "label", "input_px", "params"])
    s["file_mb"] = s.file_bytes / MB
    if bench.empty:
        s = s.assign(device="(no device)", latency_us=np.nan)
    else:
        s = s.merge(bench[[*CELL, "device", "latency_us"]], on=CELL, how="inner")
    wide = s.pivot_table(
        index=["device", "arch", "label", "input_px", "params", "seed"],
        columns="quant",
        values=["top1", "latency_us", "file_mb"],
    )
    wide.columns = [f"{quant}_{value}" for value, quant in wide.columns]
    values = [f"{q}_{v}" for q in ("fp32", "int8") for v in ("top1", "latency_us", "file_mb")]
    wide = wide.reindex(columns=values).reset_index()  # a column even where nothing was measured
    return mean_std(wide, ["device", "arch", "label", "input_px", "params"], values)


DEVICE_VALUES = [
    *("latency_us", "p50_us", "p90_us", "ram_delta_mb", "power_idle_w", "power_load_w", "energy_mj_per_inference"),
    *("energy_net_mj_per_inference", "top1", "top1_device", "top1_host_diff_pp", "answers_differing_from_host"),
    *("confidence_max_abs_diff", "throttled_share"),
]


def table_devices(summary, bench, per_class, thesis):
    """Boards side by side (the MobileNet study's device comparison, seed 003): per device and
    cell - latency, memory, power idle and under load, energy per inference (with how power
    was known), host and on-device top-1 and their difference, and the share of seeds whose
    timing ran while the board throttled; the instruction set each ran and whether under an
    emulator (`emulated`: its latency and memory are no hardware figure). Empty where a
    device did not measure it."""
    keys = ["device", "cpu_model", "machine", "emulated", "arch", "label", "sparsity", "quant", "energy_method"]
    if bench.empty or summary.empty:
        return pd.DataFrame(columns=[*keys, *DEVICE_VALUES])
    # a bench table without a column (an older run, or no energy/accuracy) still reads
    columns = list(dict.fromkeys([*bench.columns, *BENCH_COLUMNS, *ENERGY_COLUMNS, *DEVICE_EVAL_COLUMNS]))
    s = summary[[*CELL, "label", "top1"]].merge(bench.reindex(columns=columns), on=CELL, how="inner")
    s = s.assign(
        throttled_share=s.throttled.map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0}),
        energy_method=s.energy_method.astype(object).fillna("not measured"),
        cpu_model=s.cpu_model.astype(object).fillna(""),
        machine=s.machine.astype(object).fillna(""),
        # an emulated board's latency and memory are no hardware's (tests/arm_board.py)
        emulated=s.emulated.astype(object).fillna(False).astype(str).str.lower().eq("true"),
    )
    s = s.reindex(columns=[*keys, "seed", *DEVICE_VALUES])
    s[DEVICE_VALUES] = s[DEVICE_VALUES].apply(pd.to_numeric, errors="coerce")
    return mean_std(s, keys, DEVICE_VALUES)


METHOD_VALUES = [
    *("fp32_top1", "int8_top1", "fp32_file_mb", "int8_file_mb", "macs_m", "nonzero_macs_m"),
    *("fp32_p50_us", "int8_p50_us", "fp32_p50_vs_dense", "int8_p50_vs_dense", "macs_vs_dense", "nonzero_macs_vs_dense"),
]


def table_methods(summary, bench, per_class, thesis):
    """Pruning methods side by side (pruning.methods), per device and architecture: for each
    method and sparsity, top-1 and file size in fp32 and int8, multiply-accumulates read back
    from the fp32 .tflite (all, and those with a non-zero weight: the cost model), p50
    latency, and each as a ratio to the dense model (sparsity 0) of the same seed and mode -
    how much of the theoretical saving (MACs) the device realises (latency)."""
    keys = ["device", "arch", "method", "sparsity"]
    if summary.empty:
        return pd.DataFrame(columns=[*keys, *METHOD_VALUES])
    s = summary[summary.quant.isin(["fp32", "int8"])].copy()
    s["method"] = np.where(is_unpruned(s), "dense", s.sparsity.map(method_of))
    s = s.reindex(columns=list(dict.fromkeys([*s.columns, "tflite_macs", "tflite_macs_nonzero"])))
    s["file_mb"] = s.file_bytes / MB
    if bench.empty:
        s = s.assign(device="(no device)", p50_us=np.nan)
    else:
        s = s.merge(bench[[*CELL, "device", "p50_us"]], on=CELL, how="inner")
    dense = s[s.method == "dense"].set_index(["device", "arch", "seed", "quant"])
    for col in ("p50_us", "tflite_macs", "tflite_macs_nonzero"):
        s[f"{col}_dense"] = [dense[col].get((r.device, r.arch, r.seed, r.quant), np.nan) for r in s.itertuples()]
    s["p50_vs_dense"] = s.p50_us / s.p50_us_dense
    wide = s.pivot_table(index=[*keys, "seed"], columns="quant", values=["top1", "file_mb", "p50_us", "p50_vs_dense"])
    wide.columns = [f"{quant}_{value}" for value, quant in wide.columns]
    fp32 = s[s.quant == "fp32"].set_index([*keys, "seed"])
    wide = wide.join(
        pd.DataFrame(
            {
                "macs_m": fp32.tflite_macs / 1e6,
                "nonzero_macs_m": fp32.tflite_macs_nonzero / 1e6,
                "macs_vs_dense": fp32.tflite_macs / fp32.tflite_macs_dense,
                "nonzero_macs_vs_dense": fp32.tflite_macs_nonzero / fp32.tflite_macs_dense,
            }
        )
    )
    wide = wide.reindex(columns=METHOD_VALUES).reset_index()
    wide[METHOD_VALUES] = wide[METHOD_VALUES].apply(pd.to_numeric, errors="coerce")
    return mean_std(wide, keys, METHOD_VALUES)


TABLES = {
    "table_4_1_training": table_4_1_training,
    "table_4_2_fp32_device": table_4_2_fp32_device,
    "table_4_3_int8_device": table_4_3_int8_device,
    "table_4_4_depthwise": table_4_4_depthwise,
    "table_4_5_pruned_fp32": table_4_5_pruned_fp32,
    "table_4_6_per_class": table_4_6_per_class,
    "table_4_7_minimalistic_fp32": table_4_7_minimalistic_fp32,
    "table_4_8_minimalistic_int8": table_4_8_minimalistic_int8,
    "table_remedies": table_remedies,
    "table_widths": table_widths,
    "table_devices": table_devices,
    "table_methods": table_methods,
}
