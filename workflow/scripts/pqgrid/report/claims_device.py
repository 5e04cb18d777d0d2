"""Claims measured on a device: B0 slower (9), V3Small fastest (10), minimalistic faster
(11), as accurate on the device as on the host (19)."""

from __future__ import annotations

import pandas as pd

from pqgrid.evaluate.stats import is_unpruned, ratio_interval
from pqgrid.evaluate.summary import session_p50s
from pqgrid.report.claims import NotMeasured, claim, delta_text, int8_pairs, lower_end, paired_delta


def _unpruned_latency(run) -> pd.DataFrame:
    """Per (device, arch): the unpruned fp32 cells' p50 (µs, median over seeds) and every
    timing session's p50, all seeds together (`sessions`: one network, timed alike).

    Timing claims compare sessions, not one session's percentiles: two timings of one model
    on one CPU differ between jobs by a few per cent (docs/devices.md), more than 50 runs'
    p50 within a job moves. Each session is its own job, spread over the run
    (benchmark.smk), so its drift is in the interval."""
    b = run.timing
    if b.empty:
        raise NotMeasured("no device configured (or only emulated ones: their timing is no hardware's)")
    if "p50_us" not in b or b.p50_us.isna().all():
        raise NotMeasured("no p50 latency in bench.csv (rerun the device stage)")
    b = b[is_unpruned(b) & (b.quant == "fp32")]
    rows = []
    for (device, arch), g in b.groupby(["device", "arch"]):
        sessions = [x for v in g.get("session_p50_us", pd.Series(dtype=object)) for x in session_p50s(v)]
        rows.append({"device": device, "arch": arch, "p50_us": g.p50_us.median(), "sessions": sessions})
    return pd.DataFrame(rows).set_index(["device", "arch"])


def _compare_latency(lat, device, a, b) -> tuple[str, str]:
    """a against b on one device: ('faster' or 'slower' when the 95 % interval of a's
    latency over b's - Welch's on the sessions' log p50, stats.ratio_interval - lies below or above
    1, 'equal' when it holds 1, 'few' with fewer than 2 sessions a side; its text)."""
    sa, sb = lat.loc[(device, a)].sessions, lat.loc[(device, b)].sessions
    if len(sa) < 2 or len(sb) < 2:
        return "few", f"{device}: {a} vs {b}: fewer than 2 timing sessions"
    ratio, lo, hi = ratio_interval(sb, sa)
    verdict = "faster" if hi < 1 else "slower" if lo > 1 else "equal"
    text = (
        f"{device}: {a} p50 {lat.loc[(device, a)].p50_us:.0f} µs vs {b} {lat.loc[(device, b)].p50_us:.0f} µs, "
        f"{ratio:.2f}x [{lo:.2f}, {hi:.2f}] ({verdict})"
    )
    return verdict, text


def latency_verdict(lat, pairs, claimed: str) -> tuple[str, bool]:
    """Claim that a is `claimed` ('faster' or 'slower') than b for every (device, a, b) in
    `pairs` - every one must hold (so no correction for the number of pairs): holds when
    all are as claimed, does not when one is the other way beyond the noise, no verdict
    (NotMeasured) when one cannot tell (its interval holds 1, or it has < 2 sessions)."""
    if not pairs:
        raise NotMeasured("no pair of architectures timed on one device")
    results = [_compare_latency(lat, *p) for p in pairs]
    text = "; ".join(t for _, t in results)
    verdicts = [v for v, _ in results]
    if any(v not in (claimed, "equal", "few") for v in verdicts):
        return text, False
    if any(v == "few" for v in verdicts):
        raise NotMeasured(f"{text} (set the device's `repeats` to 2 or more)")
    if any(v == "equal" for v in verdicts):
        raise NotMeasured(f"inside the timing noise (the sessions' 95 % interval holds 1x): {text}")
    return text, True


def _devices(lat) -> list:
    return list(lat.index.get_level_values(0).unique())


@claim(
    9,
    "EfficientNet-B0 is slower than MobileNetV3Large",
    "on every device, the 95 % interval of B0's p50 over V3Large's (timing sessions, unpruned fp32) above 1x",
    "fp32 unpruned EfficientNetB0 and MobileNetV3Large on a device",
)
def _b0_slower(run):
    lat = _unpruned_latency(run)
    pairs = [
        (d, b0, v3)
        for d in _devices(lat)
        for b0 in run.archs("EfficientNetB0")
        for v3 in run.archs("MobileNetV3Large")
        if (d, b0) in lat.index and (d, v3) in lat.index
    ]
    if not pairs:
        raise NotMeasured("needs both architectures")
    return latency_verdict(lat, pairs, "slower")


@claim(
    10,
    "MobileNetV3Small is the fastest and smallest",
    "smallest fp32 file and, on every device, faster than every other architecture: the 95 % interval of its p50 "
    "over theirs (timing sessions, unpruned fp32) below 1x; "
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
        minimal = run.archs("MobileNetV3Small", minimalistic=True)
        if minimal:  # the thesis' claim is about the full model; claim 11 compares the two
            raise NotMeasured(f"needs a full MobileNetV3Small: only minimalistic ones ran ({', '.join(minimal)})")
        raise NotMeasured("needs an fp32 unpruned MobileNetV3Small: none ran")
    smallest = fp.file_bytes.idxmin()
    pairs = []
    for d in _devices(lat):
        here = [a for a in lat.loc[d].index if a in full]
        mine = [a for a in small if a in here]
        if not mine or len(here) < 2:
            continue
        s = min(mine, key=lambda a: lat.loc[(d, a)].p50_us)
        pairs += [(d, s, o) for o in here if o != s]
    if not pairs:
        raise NotMeasured("MobileNetV3Small and another architecture on one device")
    if smallest not in small:
        return f"smallest file: {smallest}", False
    text, ok = latency_verdict(lat, pairs, "faster")
    return f"smallest file: {smallest}; {text}", ok


@claim(
    11,
    "minimalistic MobileNetV3 variants are smaller, faster and gain rather than lose accuracy under int8",
    "smaller fp32 file, faster on every device (the 95 % interval of its p50 over the full model's, timing "
    "sessions, below 1x) and int8 Δ top-1's 95 % interval "
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
    parts, ok, unclear = [], True, False
    for m, full in pairs:
        smaller = bool(fp_all.loc[m, "file_bytes"] < fp_all.loc[full, "file_bytes"])
        timed = [(d, m, full) for d in _devices(lat) if (d, m) in lat.index and (d, full) in lat.index]
        verdicts = [_compare_latency(lat, *p)[0] for p in timed]
        faster = bool(timed) and all(v == "faster" for v in verdicts)
        # not shown faster, but nothing shown slower either: the timing cannot tell
        cannot_tell = bool(timed) and not faster and all(v in ("faster", "equal", "few") for v in verdicts)
        unclear = unclear or cannot_tell
        if m not in d.index:
            parts.append(f"{m}: no int8")
            ok = False
            continue
        ok = ok and smaller and (faster or cannot_tell) and lower_end(d.loc[m]) > -0.5
        speed = "faster" if faster else "inside the timing noise" if cannot_tell else "not faster"
        parts.append(f"{m} vs {full}: smaller {smaller}, {speed}, int8 Δ {delta_text(d.loc[m])}")
    if ok and unclear:
        raise NotMeasured("; ".join(parts))
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
