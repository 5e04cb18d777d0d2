"""Claims about the pruning methods that are meant to pay on a device (pruning.methods):
channel pruning lowers latency (20); pruning for XNNPACK's sparse inference lowers latency
where the runtime takes its sparse path (21). Each compares a method's cell with the dense
model (sparsity 0) of the same architecture, seed and device, measured in the same run."""

from __future__ import annotations

import pandas as pd

from pqgrid.core.config import method_of
from pqgrid.report.claims import NotMeasured, claim

# What "pays" means: the goal, p50 at most 0.6 x the dense model's.
RATIO = 0.6


def method_latency(run, method: str, quants) -> pd.DataFrame:
    """One row per measured cell of `method` (its quant in `quants`) with the dense model's
    p50/p90 on the same device, in the same mode (sparsity 0): the method's effect alone."""
    b = run.methods_timing
    if b.empty or not (b.sparsity.map(method_of) == method).any():
        raise NotMeasured(f"no {method} cell measured on a device")
    if "p90_us" not in b or b.p90_us.isna().all():
        raise NotMeasured("no p50/p90 latency in bench.csv (rerun the device stage)")
    cells = b[(b.sparsity.map(method_of) == method) & b.quant.isin(quants)].copy()
    if cells.empty:
        raise NotMeasured(f"no {method} cell in {' or '.join(quants)} measured")
    dense = run.timing[run.timing.sparsity.astype(str) == "0"]
    if dense.empty:
        raise NotMeasured("no dense cell (sparsity 0) measured on the same device")
    key = ["device", "arch", "seed", "quant"]
    d = dense[[*key, "p50_us", "p90_us"]].rename(columns={"p50_us": "dense_p50", "p90_us": "dense_p90"})
    cells["seed"], d["seed"] = cells.seed.astype(str), d.seed.astype(str)
    out = cells.merge(d, on=key, how="inner")
    if out.empty:
        raise NotMeasured(f"no {method} cell with its dense model on the same device, seed and mode")
    out["pct"] = out.sparsity.astype(str).str.extract(r"(\d+)$")[0].astype(float)
    out["ratio"] = out.p50_us / out.dense_p50
    # the most-pruned cell of each (device, arch, seed, quant): the method's best case
    return out.sort_values("pct").groupby(key, as_index=False).last()


def _verdict(rows: pd.DataFrame) -> tuple:
    text = "; ".join(
        f"{r.device}/{r.arch} seed{r.seed} {r.sparsity} {r.quant}: p50 {r.p50_us:.0f} vs dense {r.dense_p50:.0f} µs "
        f"({r.ratio:.2f}x)"
        for r in rows.itertuples()
    )
    # faster beyond the timing noise (its p90 below the dense p50) and by the goal's margin
    pays = (rows.ratio <= RATIO) & (rows.p90_us < rows.dense_p50)
    per_device = pays.groupby(rows.device).any()
    return text, bool(per_device.all())


@claim(
    20,
    "channel pruning lowers latency",
    f"on every device, a most-pruned channels cell's p50 <= {RATIO} x the dense model's (same mode, architecture, "
    "seed, run) and its p90 below the dense p50",
    "channels cells and the dense model measured on a device",
)
def _channels_faster(run):
    return _verdict(method_latency(run, "channels", ["fp32", "fp32_sparse", "int8", "int8_full", "fp16"]))


@claim(
    21,
    "pruning for XNNPACK's sparse inference lowers latency (float, sparse-encoded)",
    f"on every device, a most-pruned xnnpack_sparse fp32_sparse cell's p50 <= {RATIO} x the dense model's "
    "(sparsity 0, same mode) and its p90 below the dense p50",
    "xnnpack_sparse cells in fp32_sparse (or fp32) and the dense model measured on a device",
)
def _xnnpack_faster(run):
    rows = method_latency(run, "xnnpack_sparse", ["fp32_sparse", "fp32"])
    if (rows.quant == "fp32_sparse").any():  # XNNPACK's sparse path reads sparse-encoded weights only
        rows = rows[rows.quant == "fp32_sparse"]
    return _verdict(rows)
