"""One row per grid cell, from the evaluation JSONs."""

from __future__ import annotations

import logging
import re
import statistics

import pandas as pd

from pqgrid.core.catalog import builder_name, has_keras_model
from pqgrid.core.grid import arch_label
from pqgrid.core.io import atomic_path, damaged, read_csv, read_json, read_predictions, write_text
from pqgrid.core.pruning_methods import method_of
from pqgrid.core.report_entries import LONG_TABLES
from pqgrid.core.sanity import collapsed

log = logging.getLogger("pqgrid")

# accuracy may be empty (NaN) for a class without test images; the counts never are
PER_CLASS_COLUMNS = ("class", "support", "correct")
# Parameter statistics of the Keras model, copied into each cell (evaluate.py writes them).
SPARSITY_KEYS = (
    "params",
    "depthwise_params",
    "depthwise_share",
    "zero_fraction",
    "conv_dense_sparsity",
    "depthwise_sparsity",
)
BENCH_COLUMNS = [
    *("arch", "seed", "sparsity", "quant", "device", "latency_us", "latency_std_us", "p50_us", "p90_us"),
    "session_p50_us",
    *("ram_delta_mb", "process_peak_rss_mb", "tool", "threads", "cpu_model", "throttled", "cooldown_timed_out"),
    *("machine", "emulated"),
]
# From the energy JSONs (devices with a `power` source; empty elsewhere, never 0).
ENERGY_COLUMNS = [
    *("energy_method", "power_idle_w", "power_load_w"),
    *("energy_mj_per_inference", "energy_net_mj_per_inference", "energy_throttled"),
]
# From the on-device accuracy JSONs (devices with `accuracy: true`).
DEVICE_EVAL_COLUMNS = [
    *("top1_device", "top3_device", "top1_host", "top1_host_diff_pp", "answers_differing_from_host"),
    "confidence_max_abs_diff",
]
# What the .tflite's own weights say (read back by tflite_weights.py); absent for some modes.
TFLITE_KEYS = (
    *("tflite_kernel_sparsity", "tflite_conv_dense_sparsity", "tflite_depthwise_sparsity"),
    *("tflite_sparse_encoded_tensors", "m_by_n", "m_by_n_layers_eligible", "m_by_n_layers_ok"),
    *("tflite_macs", "tflite_macs_nonzero"),
)
# Only some cells have these (float_ops: calibrated modes; the rest: qat cells).
OPTIONAL_KEYS = ("float_ops", "keras_qat_top1", "qat_tflite_minus_keras", "kernel_sparsity_before_qat")
# Copied from each cell's metrics JSON as they are.
EVAL_KEYS = (
    *("top1", "top3", "file_bytes", "gzip_bytes", *SPARSITY_KEYS),
    *("input_dtype", "output_dtype", "test_images", "tflite_sha256", "keras_top1_test"),
)
CELL_KEYS = ("arch", "seed", "sparsity", "quant")
COLUMNS = [
    *CELL_KEYS,
    *("method", "builder", "label", "input_px"),
    *("top1", "top3", "keras_top1_test", "keras_top1_train", "keras_top3_train", "keras_top3_test"),
    *("file_bytes", "gzip_bytes", "gzip_ratio", *SPARSITY_KEYS, *TFLITE_KEYS, *OPTIONAL_KEYS),
    *("input_dtype", "output_dtype", "test_images", "worst_class", "worst_class_top1"),
    *("chance_top1", "parent_top1", "collapsed", "gained_vs_fp32", "lost_vs_fp32", "tflite_sha256"),
]


def summarize(
    *,
    eval_jsons,
    keras_jsons,
    per_class_csvs,
    out_csv,
    out_md,
    out_per_class=None,
    device_eval_jsons=(),
    prediction_npzs=(),
) -> pd.DataFrame:
    """Stage `summarize_grid`: one row per cell (summary.csv/.md) and one per cell and class.
    Where devices measured accuracy, each adds `top1_on_<device>` and `top1_diff_pp_<device>`
    (on-device minus host top-1, percentage points). With each cell's predictions (in the
    order of `eval_jsons`), `gained_vs_fp32` / `lost_vs_fp32`: test images the cell answers
    right and the unpruned fp32 .tflite of its architecture and seed wrong, and the reverse
    - the discordant pairs a one-seed comparison rests on (findings.py, McNemar)."""
    keras = {}
    for p in keras_jsons:
        k = read_json(p)
        keras[_model_key(k["cell"])] = k
    evals = [read_json(p) for p in eval_jsons]
    for e in evals:  # a .tflite architecture's parent: its fp32 file
        if not has_keras_model(e["settings"]["architecture"]) and e["cell"]["quant"] == "fp32":
            keras.setdefault(_model_key(e["cell"]), {"top1_test": e["top1"]})
    rows, long = [], []
    for e, pc in zip(evals, per_class_csvs, strict=True):
        classes = read_csv(pc, PER_CLASS_COLUMNS)
        if classes.support.sum() != e["test_images"]:  # whole rows lost: cut at a line end
            raise damaged(pc, f"{classes.support.sum()} of {e['test_images']} test images")
        long.append(classes.assign(**{k: e["cell"][k] for k in CELL_KEYS}))
        rows.append(_row(e, keras, classes))
    df = _with_discordance(pd.DataFrame(rows, columns=COLUMNS), eval_jsons, prediction_npzs)
    df = _with_device_accuracy(df, device_eval_jsons).sort_values(["arch", "seed", "sparsity", "quant"], key=_natural)
    for r in df[df["collapsed"]].itertuples():
        log.warning(
            "%s seed%s s%s %s collapsed to chance: top-1 %.3f (chance %.3f) while its trained model scores %.3f",
            r.arch,
            r.seed,
            r.sparsity,
            r.quant,
            r.top1,
            r.chance_top1,
            r.parent_top1,
        )
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    write_text(out_md, summary_markdown(df))
    if out_per_class:
        pcs = pd.concat(long, ignore_index=True)[
            ["arch", "seed", "sparsity", "quant", "class", "support", "correct", "accuracy"]
        ]
        with atomic_path(out_per_class) as tmp:
            pcs.to_csv(tmp, index=False)
    return df


def _with_discordance(df, eval_jsons, prediction_npzs) -> pd.DataFrame:
    if not len(prediction_npzs):
        return df
    right = {}
    for p, e in zip(prediction_npzs, eval_jsons, strict=True):
        pred = read_predictions(p)
        c = read_json(e)["cell"]
        right[(c["arch"], str(c["seed"]), str(c["sparsity"]), c["quant"])] = pred["label"] == pred["true"]
    gained, lost = [], []
    for r in df.itertuples():
        cell, ref = (
            right.get((r.arch, str(r.seed), str(r.sparsity), r.quant)),
            right.get((r.arch, str(r.seed), "0", "fp32")),
        )
        ok = cell is not None and ref is not None and len(cell) == len(ref)
        gained.append(int((cell & ~ref).sum()) if ok else None)
        lost.append(int((~cell & ref).sum()) if ok else None)
    return df.assign(gained_vs_fp32=pd.array(gained, dtype="Int64"), lost_vs_fp32=pd.array(lost, dtype="Int64"))


def _with_device_accuracy(df, device_eval_jsons) -> pd.DataFrame:
    if not device_eval_jsons:
        return df
    rows = [_device_eval_row(read_json(p)) for p in device_eval_jsons]
    wide = pd.DataFrame(rows).pivot(
        index=list(CELL_KEYS), columns="device", values=["top1_device", "top1_host_diff_pp"]
    )
    wide.columns = [("top1_on_" if v == "top1_device" else "top1_diff_pp_") + d for v, d in wide.columns]
    return df.merge(wide.reset_index(), on=list(CELL_KEYS), how="left")


def _device_eval_row(d: dict) -> dict:
    return {
        **d["cell"],
        "device": d["device_name"],
        "top1_device": d["top1"],
        "top3_device": d["top3"],
        "top1_host": d["host_top1"],
        "top1_host_diff_pp": d["top1_host_diff_pp"],
        "answers_differing_from_host": d["answers_differing_from_host"],
        "confidence_max_abs_diff": d.get("confidence_max_abs_diff"),
    }


def _model_key(cell) -> tuple:
    return cell["arch"], str(cell["seed"]), str(cell["sparsity"])


def _row(e: dict, keras: dict, classes: pd.DataFrame) -> dict:
    """One summary row: the cell's metrics, its Keras model's, and the collapse guard."""
    c = e["cell"]
    # A `.tflite` architecture has no Keras model: its fp32 file is the parent, read into
    # `keras` by summarize as (arch, seed, "0") with the fp32 cell's top-1.
    k = keras.get(_model_key(c), {})
    worst = classes.loc[classes["accuracy"].idxmin()]
    # The parent is the trained (unpruned) Keras model of the same architecture and seed.
    parent = keras.get((c["arch"], str(c["seed"]), "0"), {}).get("top1_test", float("nan"))
    return {
        **{key: c[key] for key in CELL_KEYS},
        "method": method_of(c["sparsity"]),
        # older metrics JSONs lack input_px: the thesis' 32 px
        "builder": builder_name(e["settings"]["architecture"]),
        "label": arch_label(e["settings"]["architecture"], e.get("input_px", 32)),
        "input_px": e.get("input_px", 32),
        **{key: e[key] for key in EVAL_KEYS},
        **{key: e.get(key) for key in (*TFLITE_KEYS, *OPTIONAL_KEYS)},
        "keras_top1_train": k.get("top1_train"),
        "keras_top3_train": k.get("top3_train"),
        "keras_top3_test": k.get("top3_test"),
        "gzip_ratio": e["gzip_bytes"] / e["file_bytes"],
        "worst_class": worst["class"],
        "worst_class_top1": float(worst["accuracy"]),
        "chance_top1": 1 / len(classes),
        "parent_top1": parent,
        "collapsed": collapsed(e["top1"], parent, len(classes), e["test_images"]),
    }


def _natural(col):
    if col.name in ("seed", "sparsity"):  # numeric order; patterns ("2:4") and methods ("ch50") after
        number = pd.to_numeric(col, errors="coerce")
        other = col.astype(str).str.extract(r"(\d+)$")[0].astype(float)
        return number.fillna(1000 + other.fillna(0))
    return col


# What a reader sees of a fraction or a byte count in a Markdown table (the CSV keeps the raw
# value): percent and MB, the units in the header, as in the README and the figures.
_PERCENT = re.compile(
    r"(top[13]|accuracy|fraction|_sparsity|share|chance)(_before_qat|_after_qat|_test|_train|_host|_device)?(_ci95|_std)?$"
)
# Columns a table names as fractions though their name does not say so (table_4_6: one per cell).
PERCENT_COLUMNS = "percent_columns"
NUMBER_FORMAT = ".4g"  # every table's one format for non-integer numbers (Markdown and HTML)
_MEGABYTES = re.compile(r"_bytes(_ci95|_std)?$")


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """Fractions as percent and bytes as MB (10^6), the unit in the column name."""
    out = df.copy()
    fractions = set(df.attrs.get(PERCENT_COLUMNS, ()))
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            continue
        if _PERCENT.search(c) or c in fractions:
            out[c] = 100 * df[c]
            out = out.rename(columns={c: f"{c} (%)"})
        elif _MEGABYTES.search(c):
            out[c] = df[c] / 1e6
            out = out.rename(columns={c: c.replace("_bytes", "") + " (MB)"})
    return out


def whole_numbers_as_int(df: pd.DataFrame) -> pd.DataFrame:
    """Float columns whose values are all whole numbers (a parameter count averaged over
    seeds) as integers, so a count reads 221114 in every table, never 2.211e+05."""
    out = df.copy()
    for c in df.columns:
        v = df[c]
        if pd.api.types.is_float_dtype(v) and v.notna().any() and (v.dropna() % 1 == 0).all() and v.abs().max() < 1e15:
            out[c] = v.astype("Int64")
    return out


def to_markdown(df: pd.DataFrame, floatfmt=NUMBER_FORMAT) -> str:
    """A GitHub table (tabulate, through pandas); empty cells stay empty, never `nan`."""
    df = whole_numbers_as_int(df)
    cells = df.astype(object).where(df.notna(), None)  # tabulate writes None as missingval, NaN as "nan"
    return cells.to_markdown(index=False, floatfmt=floatfmt, missingval="") + "\n"


# The columns of summary.md: what a reader compares (summary.csv keeps every column).
SUMMARY_MD = ["arch", "seed", "sparsity", "quant", "top1", "top3", "keras_top1_test", "file_bytes", "gzip_bytes",
              "zero_fraction", "collapsed"]  # fmt: skip


def summary_markdown(df: pd.DataFrame) -> str:
    return to_markdown(readable(df[[c for c in SUMMARY_MD if c in df.columns]]))


def collect_bench(*, bench_jsons, out_csv, energy_jsons=(), device_eval_jsons=()):
    """Stage `collect_bench`: all device measurements as one long table, one row per cell
    and device: latency and memory, energy and on-device accuracy where measured."""
    df = load_bench(bench_jsons)
    key = [*CELL_KEYS, "device"]
    extra = [
        (pd.DataFrame([_energy_row(read_json(p)) for p in energy_jsons]), ENERGY_COLUMNS),
        (pd.DataFrame([_device_eval_row(read_json(p)) for p in device_eval_jsons]), DEVICE_EVAL_COLUMNS),
    ]
    for part, columns in extra:
        if len(part):
            df = df.merge(part[[*key, *columns]], on=key, how="left")
        else:
            df = df.assign(**{c: pd.NA for c in columns})
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)


def _energy_row(e: dict) -> dict:
    return {
        **e["cell"],
        "device": e["device_name"],
        **{c: e.get(c) for c in ENERGY_COLUMNS},
        "energy_throttled": e.get("throttled"),
    }


def concat_csvs(*, pairs):
    """For each (input CSVs, output CSV): the inputs stacked into one long table (their
    columns united; an input without rows adds none)."""
    for inputs, out in pairs:
        frames = [read_csv(p) for p in inputs]
        df = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else frames[0]
        with atomic_path(out) as tmp:
            df.to_csv(tmp, index=False)


def session_p50s(value) -> list:
    """bench.csv's `session_p50_us` (each timing session's p50, ";"-joined) as floats."""
    if value is None or pd.isna(value) or str(value).strip() == "":
        return []
    return [float(x) for x in str(value).split(";") if x.strip()]


def load_bench(paths) -> pd.DataFrame:
    """bench.csv: one row per cell and device, from the benchmark JSONs (one per timing
    session). A cell's latency is the median over its sessions (one disturbed session moves
    nothing), its memory the largest, its flags set when any session's is; each session's
    p50 is kept in `session_p50_us` for the latency findings."""
    sessions = {}
    for p in sorted(paths):
        b = read_json(p)
        sessions.setdefault((tuple(sorted(b["cell"].items())), b["device_name"]), []).append(b)
    return pd.DataFrame([_bench_row(runs) for runs in sessions.values()], columns=BENCH_COLUMNS)


def _median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _largest(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return max(values) if values else None


def _any_flag(runs, key):
    """True when a session says so, False when all that can tell say not, else None."""
    known = [r[key] for r in runs if r.get(key) is not None]
    return any(known) if known else None


def _bench_row(runs: list) -> dict:
    first = runs[0]
    return {
        **first["cell"],
        "device": first["device_name"],
        "latency_us": _median(runs, "avg_us"),
        "latency_std_us": _median(runs, "std_us"),
        "p50_us": _median(runs, "p50_us"),
        "p90_us": _median(runs, "p90_us"),
        "session_p50_us": ";".join(f"{r['p50_us']:.3f}" for r in runs if r.get("p50_us") is not None),
        "ram_delta_mb": _largest(runs, "ram_delta_mb"),
        "process_peak_rss_mb": _largest(runs, "process_peak_rss_mb"),
        "tool": first["tool"],
        "threads": first.get("threads"),
        "cpu_model": (first.get("device") or {}).get("cpu_model"),
        "throttled": _any_flag(runs, "throttled"),
        "cooldown_timed_out": _any_flag(runs, "cooldown_timed_out"),
        "machine": (first.get("device") or {}).get("machine"),
        "emulated": any(bool(r.get("emulated", False)) for r in runs),
    }


def mobilenet_v3(summary) -> list:
    """Config names of the MobileNetV3 architectures (Large or Small, full or minimalistic) in
    a summary: known by builder, never by the config name (`v3_like_mine` is not one)."""
    return list(dict.fromkeys(summary.arch[summary.builder.astype(str).str.startswith("MobileNetV3")]))


def read_long_tables(inputs) -> dict:
    """{'summary', 'per_class', 'layer_error': df or None, 'bench': df} from a rule's named
    inputs (a dict or Snakemake's namedlist); an empty bench table where no device ran."""
    get = inputs.get if hasattr(inputs, "get") else lambda k, d=None: getattr(inputs, k, d)
    out = {}
    for name in LONG_TABLES:
        path = get(name, None)
        out[name] = read_csv(path) if path else None
    if out["bench"] is None:
        out["bench"] = pd.DataFrame(columns=BENCH_COLUMNS)
    return out
