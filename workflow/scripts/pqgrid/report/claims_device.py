"""Claims measured on a device: B0 slower (9), V3Small fastest (10), minimalistic faster
(11), as accurate on the device as on the host (19)."""

from __future__ import annotations

import pandas as pd

from pqgrid.core.stats import (
    is_unpruned,
)
from pqgrid.report.claims import NotMeasured, claim, delta_text, int8_pairs, lower_end, paired_delta


def _unpruned_latency(run) -> pd.DataFrame:
    """p50 and p90 latency (µs) of the unpruned fp32 cells per (device, arch), mean over seeds.

    Timing claims compare a model's typical run with the other's slow ones: A is faster than
    B on a device when A's p90 lies below B's p50, slower when A's p50 lies above B's p90, and
    neither - inside the timing noise - otherwise. Two timings of one model on one CPU differed
    by up to 20 % (docs/devices.md); 50 runs' p50 moves much less, so this rule says
    "equal" for models whose true latencies are equal (tests/test_findings_null.py)."""
    b = run.timing
    if b.empty:
        raise NotMeasured("no device configured (or only emulated ones: their timing is no hardware's)")
    if "p90_us" not in b or b.p90_us.isna().all():
        raise NotMeasured("no p50/p90 latency in bench.csv (rerun the device stage)")
    b = b[is_unpruned(b) & (b.quant == "fp32")]
    return b.groupby(["device", "arch"])[["p50_us", "p90_us"]].mean()


def _compare_latency(lat, device, a, b) -> str:
    """'faster', 'slower' or 'equal' (within the noise): a against b on one device."""
    pa, pb = lat.loc[(device, a)], lat.loc[(device, b)]
    if pa.p90_us < pb.p50_us:
        return "faster"
    if pa.p50_us > pb.p90_us:
        return "slower"
    return "equal"


def _devices(lat) -> list:
    return list(lat.index.get_level_values(0).unique())


@claim(
    9,
    "EfficientNet-B0 is slower than MobileNetV3Large",
    "B0 latency > V3Large latency on every device",
    "fp32 unpruned EfficientNetB0 and MobileNetV3Large on a device",
)
def _b0_slower(run):
    lat = _unpruned_latency(run)
    res = [
        (d, b0, v3, _compare_latency(lat, d, b0, v3))
        for d in _devices(lat)
        for b0 in run.archs("EfficientNetB0")
        for v3 in run.archs("MobileNetV3Large")
        if (d, b0) in lat.index and (d, v3) in lat.index
    ]
    if not res:
        raise NotMeasured("needs both architectures")
    text = "; ".join(
        f"{d}: B0 p50 {lat.loc[(d, b0)].p50_us:.0f} µs vs V3Large {lat.loc[(d, v3)].p50_us:.0f} µs ({c})"
        for d, b0, v3, c in res
    )
    if all(c == "equal" for *_, c in res):
        raise NotMeasured(f"inside the timing noise (p50 of one within p90 of the other): {text}")
    return text, all(c == "slower" for *_, c in res)


@claim(
    10,
    "MobileNetV3Small is the fastest and smallest",
    "fp32 p90 latency below every other architecture's p50 on every device and smallest fp32 file (unpruned), "
    "among the non-minimalistic architectures",
    "fp32 unpruned MobileNetV3Small and others on a device",
)
def _v3small_fastest(run):
    lat = _unpruned_latency(run)
    small = run.archs("MobileNetV3Small")
    # the thesis' five architectures: its minimalistic variants came later (claim 11)
    full = [a for a, cfg in run.architectures.items() if not cfg.get("minimalistic", False)]
    fp = run.unpruned("fp32")
    fp = fp[fp.index.isin(full)]
    if not any(a in fp.index for a in small):
        raise NotMeasured("MobileNetV3Small not run")
    smallest = fp.file_bytes.idxmin()
    parts, ok = [f"smallest file: {smallest}"], smallest in small
    for d in _devices(lat):
        here = [a for a in lat.loc[d].index if a in full]
        mine = [a for a in small if a in here]
        if not mine or len(here) < 2:
            continue
        s = min(mine, key=lambda a: lat.loc[(d, a)].p50_us)
        verdicts = {o: _compare_latency(lat, d, s, o) for o in here if o != s}
        parts.append(f"{d}: {s} vs " + ", ".join(f"{o} {c}" for o, c in verdicts.items()))
        ok = ok and all(c == "faster" for c in verdicts.values())
    if len(parts) == 1:
        raise NotMeasured("MobileNetV3Small and another architecture on one device")
    return "; ".join(parts), ok


@claim(
    11,
    "minimalistic MobileNetV3 variants are smaller, faster and gain rather than lose accuracy under int8",
    "smaller fp32 file, faster on every device (p90 below the full model's p50) and int8 Δ top-1's 95 % interval "
    "above -0.5 pp (unpruned)",
    "a minimalistic MobileNetV3 next to its full model, fp32 and int8, on a device",
    about_accuracy=True,
)
def _minimalistic(run):
    fp_all = run.unpruned("fp32")
    fp, i8, _ = int8_pairs(run, accuracy=True)
    d = paired_delta(run, ("0", "fp32"), ("0", "int8"))
    pairs = [
        (m, full)
        for b in ("MobileNetV3Large", "MobileNetV3Small")
        for m in run.archs(b, minimalistic=True)
        for full in run.archs(b)
        if m in fp.index and full in fp_all.index
    ]
    if not pairs:
        raise NotMeasured("no minimalistic variant next to its full model")
    lat = _unpruned_latency(run)
    parts, ok = [], True
    for m, full in pairs:
        smaller = bool(fp_all.loc[m, "file_bytes"] < fp_all.loc[full, "file_bytes"])
        faster = all(
            (d, m) in lat.index and (d, full) in lat.index and _compare_latency(lat, d, m, full) == "faster"
            for d in _devices(lat)
        )
        if m not in d.index:
            parts.append(f"{m}: no int8")
            ok = False
            continue
        ok = ok and smaller and faster and lower_end(d.loc[m]) > -0.5
        parts.append(f"{m} vs {full}: smaller {smaller}, faster {faster}, int8 Δ {delta_text(d.loc[m])}")
    return "; ".join(parts), ok


def _code(g) -> str:
    """' (aarch64, emulated)': the instruction set the device ran, where the bench knows it -
    an ARM board against the x86 host compares two instruction sets' kernels."""
    machine = g.machine.dropna().iloc[0] if "machine" in g and g.machine.notna().any() else None
    emulated = "emulated" in g and g.emulated.astype(str).str.lower().eq("true").any()
    parts = [p for p in (machine, "emulated" if emulated else None) if p]
    return f" ({', '.join(parts)})" if parts else ""


@claim(
    19,
    "a deployed model is as accurate on the device as on the host",
    "on-device top-1 equals the host's top-1 within 0.1 pp in every cell measured on a device",
    "a device with `accuracy: true`",
)
def _device_accuracy(run):
    b = run.bench
    if b.empty or "top1_host_diff_pp" not in b or b.top1_host_diff_pp.isna().all():
        raise NotMeasured("no device evaluated the test set")
    d = b[b.top1_host_diff_pp.notna()]
    off = d[d.top1_host_diff_pp.abs() > 0.1]
    per_device = ", ".join(
        f"{dev}{_code(g)}: {len(g)} cells, largest |Δ| {g.top1_host_diff_pp.abs().max():.2f} pp, "
        f"{int(g.answers_differing_from_host.sum())} answers differ"
        for dev, g in d.groupby("device", sort=False)
    )
    if off.empty:
        return per_device, True
    cells = "; ".join(
        f"{r.device} {r.arch} seed{r.seed} s{r.sparsity} {r.quant} {r.top1_host_diff_pp:+.2f} pp"
        for r in off.itertuples()
    )
    return f"{per_device}; off by more than 0.1 pp: {cells}", False
