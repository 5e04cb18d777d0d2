"""Claims about the pruning methods that are meant to pay on a device (pruning.methods):
channel pruning lowers latency (20); pruning for XNNPACK's sparse inference lowers latency
where the runtime takes its sparse path (21). Each compares a method's cell with the dense
model (sparsity 0) of the same architecture, seed and device, measured in the same run."""

from __future__ import annotations

import pandas as pd

from pqgrid.core.pruning_methods import method_of
from pqgrid.evaluate.stats import ratio_interval
from pqgrid.evaluate.summary import session_p50s
from pqgrid.report.claims import NotMeasured, claim

# What "pays" means: p50 at most 0.6 x the dense model's.
RATIO = 0.6


def method_latency(run, method: str, quants) -> pd.DataFrame:
    """One row per measured cell of `method` (its quant in `quants`) with the dense model's
    p50/p90 on the same device, in the same mode (sparsity 0): the method's effect alone."""
    b = run.methods_timing
    if b.empty or not (b.sparsity.map(method_of) == method).any():
        raise NotMeasured(f"no {method} cell measured on a device")
    if "p50_us" not in b or b.p50_us.isna().all():
        raise NotMeasured("no p50 latency in bench.csv (rerun the device stage)")
    cells = b[(b.sparsity.map(method_of) == method) & b.quant.isin(quants)].copy()
    if cells.empty:
        raise NotMeasured(f"no {method} cell in {' or '.join(quants)} measured")
    dense = run.timing[run.timing.sparsity.astype(str) == "0"]
    if dense.empty:
        raise NotMeasured("no dense cell (sparsity 0) measured on the same device")
    key = ["device", "arch", "seed", "quant"]
    if "session_p50_us" not in cells:
        cells["session_p50_us"], dense = "", dense.assign(session_p50_us="")
    d = dense[[*key, "p50_us", "session_p50_us"]].rename(
        columns={"p50_us": "dense_p50", "session_p50_us": "dense_sessions"}
    )
    cells["seed"], d["seed"] = cells.seed.astype(str), d.seed.astype(str)
    out = cells.merge(d, on=key, how="inner")
    if out.empty:
        raise NotMeasured(f"no {method} cell with its dense model on the same device, seed and mode")
    out["pct"] = out.sparsity.astype(str).str.extract(r"(\d+)$")[0].astype(float)
    out["ratio"] = out.p50_us / out.dense_p50
    # the most-pruned cell of each (device, arch, seed, quant): the method's best case
    return out.sort_values("pct").groupby(key, as_index=False).last()


def _verdict(rows: pd.DataFrame) -> tuple:
    """Pays on a device when, for one (architecture, mode), the upper end of the interval of
    the most-pruned cells' p50 over the dense model's is at most RATIO, every seed's timing
    sessions together (stats.ratio_interval; seeds are repeats of one choice, so "one seed
    paid" would hold by chance). A device offers k (architecture, mode) choices, each may pay: the
    intervals are Bonferroni's (1 - 0.05 / k), so that k chances keep the claim's 5 %. Holds
    when every device pays; no verdict when one does not but its interval still holds RATIO
    (or a cell has < 2 sessions); else does not hold."""
    choices = []
    for (device, arch, quant), g in rows.groupby(["device", "arch", "quant"], sort=False):
        cell = [x for v in g.session_p50_us for x in session_p50s(v)]
        dense = [x for v in g.dense_sessions for x in session_p50s(v)]
        choices.append({"device": device, "arch": arch, "quant": quant, "cell": cell, "dense": dense,
                        "sparsity": "/".join(dict.fromkeys(g.sparsity.astype(str))), "seeds": len(g)})  # fmt: skip
    c = pd.DataFrame(choices)
    c["k"] = c.device.map(c.groupby("device").size())
    bounds = [
        ratio_interval(r.dense, r.cell, 1 - 0.05 / r.k) if min(len(r.dense), len(r.cell)) >= 2 else (float("nan"),) * 3
        for r in c.itertuples()
    ]
    c["ratio"], c["lo"], c["hi"] = zip(*bounds, strict=True)
    text = "; ".join(
        f"{r.device}/{r.arch} {r.sparsity} {r.quant} ({r.seeds} seeds): p50 {r.ratio:.2f}x the dense model's "
        f"[{r.lo:.2f}, {r.hi:.2f}]"
        for r in c.itertuples()
    )
    if c.hi.isna().any():
        raise NotMeasured(f"fewer than 2 timing sessions in a cell (set the device's `repeats` to 2 or more): {text}")
    c["pays"], c["open"] = c.hi <= RATIO, (c.lo <= RATIO) & (c.hi > RATIO)
    per_device = c.groupby("device").agg(pays=("pays", "any"), open=("open", "any"))
    if per_device.pays.all():
        return text, True
    if per_device.open[~per_device.pays].all():
        raise NotMeasured(f"cannot tell from the timing sessions whether it reaches {RATIO}x: {text}")
    return text, False


@claim(
    20,
    "channel pruning lowers latency",
    f"on every device, for one architecture and mode, the most-pruned channels cells' p50 over the dense model's "
    f"(every seed's timing sessions; same mode and architecture) at most {RATIO}x at the upper end of its "
    "95 % interval (Bonferroni over the choices)",
    "channels cells and the dense model measured on a device",
)
def _channels_faster(run):
    return _verdict(method_latency(run, "channels", ["fp32", "fp32_sparse", "int8", "int8_full", "fp16"]))


@claim(
    21,
    "pruning for XNNPACK's sparse inference lowers latency (float, sparse-encoded)",
    f"on every device, for one architecture, the most-pruned xnnpack_sparse fp32_sparse cells' p50 over the dense "
    f"model's (every seed's timing sessions; sparsity 0, same mode) at most {RATIO}x at the upper end of "
    "its 95 % interval (Bonferroni over the choices)",
    "xnnpack_sparse cells in fp32_sparse (or fp32) and the dense model measured on a device",
)
def _xnnpack_faster(run):
    rows = method_latency(run, "xnnpack_sparse", ["fp32_sparse", "fp32"])
    if (rows.quant == "fp32_sparse").any():  # XNNPACK's sparse path reads sparse-encoded weights only
        rows = rows[rows.quant == "fp32_sparse"]
    return _verdict(rows)
