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

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .io import atomic_path, write_text
from .modes import mode
from .sanity import clearly_above_chance
from .stats import (
    CELL,
    bh_adjust,
    class_heterogeneity,
    independent_interval,
    is_unpruned,
    paired_interval,
    proportion_interval,
    sparsity_number,
    t_interval,
    welch_interval,
)
from .summary import read_long_tables

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"


class NotMeasured(Exception):
    """The run lacks the cells a claim needs; the message says which."""


@dataclass(frozen=True)
class Claim:
    no: int
    sentence: str
    threshold: str
    needs: str  # the cells it needs, said when they are absent
    about_accuracy: bool
    check: Callable  # Run -> (measured text, holds: bool)


CLAIMS: list[Claim] = []


def claim(no, sentence, threshold, needs, about_accuracy=False):
    def register(fn):
        CLAIMS.append(Claim(no, sentence, threshold, needs, about_accuracy, fn))
        return fn

    return register


@dataclass
class Run:
    """The long tables of one run, with architectures known by kind and the collapsed cells
    set aside. `acc` views leave collapsed cells out; size and latency views keep them."""

    summary: pd.DataFrame
    bench: pd.DataFrame
    per_class: pd.DataFrame
    architectures: dict = field(default_factory=dict)  # config name -> {builder: ..., ...}
    pie: pd.DataFrame = field(default_factory=pd.DataFrame)  # results/tables/pie.csv
    pie_per_class: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self):
        self.near_chance = near_chance_archs(self.summary)
        self.broken = collapsed_cells(self.summary)
        bad = set(_cell_key(self.broken))
        s = self.summary[~self.summary.arch.isin(self.near_chance)]
        self.acc_summary = s[~_cell_key(s).isin(bad)] if bad else s
        pc = self.per_class
        if not pc.empty:
            pc = pc[~pc.arch.isin(self.near_chance)]
            pc = pc[~_cell_key(pc).isin(bad)] if bad else pc
        self.acc_per_class = pc
        # PIE variants with a collapsed cell in their population are defects, not forgetting
        p = self.pie
        if not p.empty and len(self.broken):
            hit = {(r.arch, str(r.sparsity), r.quant) for r in self.broken.itertuples()}
            p = p[[(r.arch, str(r.sparsity), r.quant) not in hit for r in p.itertuples()]]
        self.acc_pie = p[~p.arch.isin(self.near_chance)] if not p.empty else p

    def archs(self, builder: str, minimalistic: bool = False) -> list:
        """Config names in this run of one kind of architecture (any width)."""
        return [
            a
            for a in dict.fromkeys(self.summary.arch)
            if self.architectures.get(a, {}).get("builder") == builder
            and bool(self.architectures[a].get("minimalistic", False)) == minimalistic
        ]

    def unpruned(self, quant: str, accuracy: bool = False) -> pd.DataFrame:
        s = self.acc_summary if accuracy else self.summary
        return s[is_unpruned(s) & (s.quant == quant)].groupby("arch").mean(numeric_only=True)

    def unstructured(self, accuracy: bool = False) -> pd.DataFrame:
        """Cells pruned to a percentage (not a pattern), with numeric sparsity `sp`."""
        s = self.acc_summary if accuracy else self.summary
        s = s.assign(sp=sparsity_number(s.sparsity))
        return s[s.sparsity.astype(str).str.isdigit()]


def near_chance_archs(summary) -> list:
    """Architectures whose trained model (`parent_top1`, mean over seeds) is not clearly
    above chance (sanity.clearly_above_chance): what compression does to them is noise."""
    if summary.empty or "parent_top1" not in summary:
        return []
    g = summary.groupby("arch", sort=False).agg(
        p=("parent_top1", "mean"), c=("chance_top1", "first"), n=("test_images", "first")
    )
    return [a for a, r in g.iterrows() if not pd.isna(r.p) and not clearly_above_chance(r.p, round(1 / r.c), int(r.n))]


def collapsed_cells(summary) -> pd.DataFrame:
    """Cells at chance while their trained model is not (summary.csv's `collapsed`)."""
    if "collapsed" not in summary.columns:
        return summary.iloc[0:0]
    return summary[summary["collapsed"].astype(str).str.lower() == "true"]


def _cell_key(df) -> pd.Series:
    return df[CELL].astype(str).agg("|".join, axis=1) if len(df) else pd.Series([], dtype=str)


def _cell_names(cells) -> str:
    return ", ".join(f"{r.arch} seed{r.seed} s{r.sparsity} {r.quant}" for r in cells.itertuples())


def _int8_pairs(run, accuracy=False):
    fp, i8 = run.unpruned("fp32", accuracy), run.unpruned("int8", accuracy)
    both = fp.index.intersection(i8.index)
    if not len(both):
        raise NotMeasured("needs fp32 and int8 cells at sparsity 0")
    return fp, i8, both


def paired_delta(run, a, b) -> pd.DataFrame:
    """Per architecture: top-1 of cells `b` minus cells `a` (each a (sparsity, quant)), in pp,
    paired: mean, 95 % interval (lo, hi), n seeds. Two or more seeds: Student-t over the
    per-seed differences (the seed is the unit that varies between trainings). One seed, `a`
    the unpruned fp32 model: the exact paired interval of the images the two models answer
    differently (stats.paired_interval, McNemar); else no interval (lo, hi NaN). Collapsed
    cells and architectures whose trained model is near chance are left out."""
    s = run.acc_summary.assign(sp=lambda x: x.sparsity.astype(str))

    def cells(cell):
        return s[(s.sp == str(cell[0])) & (s.quant == cell[1])].groupby(["arch", "seed"])

    d = (100 * (cells(b).top1.mean() - cells(a).top1.mean())).dropna()
    per_image = a == ("0", "fp32") and "gained_vs_fp32" in s
    counts = cells(b)[["gained_vs_fp32", "lost_vs_fp32", "test_images"]].first() if per_image else None
    rows = {}
    for arch, v in d.groupby(level="arch", sort=False):
        lo, hi = t_interval(v.values)
        row = {"mean": float(v.mean()), "lo": lo, "hi": hi, "n": len(v), "gained": np.nan, "lost": np.nan}
        if len(v) == 1 and counts is not None and v.index[0] in counts.index:
            g, lost, n = counts.loc[v.index[0]]
            if not (pd.isna(g) or pd.isna(lost)):
                lo, hi = paired_interval(g, lost, n)
                row.update(lo=100 * lo, hi=100 * hi, gained=g, lost=lost)
        rows[arch] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "lo", "hi", "n", "gained", "lost"])


def _pp(r) -> str:
    """'+0.4 pp [-0.1, +0.9], 5 seeds', '+0.4 pp [-0.3, +1.1] (1 seed: 12 images gained, 8
    lost)' or '+0.4 pp (1 seed, no interval)'."""
    if r["n"] >= 2:
        return f"{r['mean']:+.1f} pp [{r['lo']:+.1f}, {r['hi']:+.1f}], {int(r['n'])} seeds"
    if not pd.isna(r["lo"]):
        return f"{r['mean']:+.1f} pp [{r['lo']:+.1f}, {r['hi']:+.1f}] (1 seed: {int(r['gained'])} images gained, {int(r['lost'])} lost)"
    return f"{r['mean']:+.1f} pp (1 seed, no interval)"


def _low(r) -> float:
    """Lower end of the interval; -inf without one (nothing is shown to be above anything)."""
    return -np.inf if pd.isna(r["lo"]) else r["lo"]


def _high(r) -> float:
    return np.inf if pd.isna(r["hi"]) else r["hi"]


# ---------------------------------------------------------------- the claims
@claim(1, "int8 PTQ shrinks .tflite files by about 70 %", "every architecture 60-80 %", "fp32 and int8 at sparsity 0")
def _int8_size(run):
    fp, i8, both = _int8_pairs(run)
    cut = 100 * (1 - i8.loc[both, "file_bytes"] / fp.loc[both, "file_bytes"])
    return "; ".join(f"{a} {v:.1f} %" for a, v in cut.items()), bool(cut.between(60, 80).all())


@claim(
    2,
    "int8 changes top-1 by < 2 pp for MobileNet, V2 and B0; MobileNetV3Large loses much more",
    "95 % interval of Δ inside ±2 pp for each of the three run; MobileNetV3Large's entirely below -2 pp and "
    "below -2x their largest |Δ|",
    "fp32 and int8 at sparsity 0 of MobileNetV3Large and of MobileNet, MobileNetV2 or EfficientNetB0",
    about_accuracy=True,
)
def _int8_accuracy(run):
    d = paired_delta(run, ("0", "fp32"), ("0", "int8"))
    small = [a for b in ("MobileNet", "MobileNetV2", "EfficientNetB0") for a in run.archs(b) if a in d.index]
    large = [a for a in run.archs("MobileNetV3Large") if a in d.index]
    if not small or not large:
        raise NotMeasured("needs MobileNetV3Large and one of MobileNet, MobileNetV2, EfficientNetB0 in fp32 and int8")
    worst_small = max(max(abs(_low(d.loc[a])), abs(_high(d.loc[a]))) for a in small)
    ok = worst_small < 2 and all(_high(d.loc[a]) < min(-2, -2 * worst_small) for a in large)
    return "; ".join(f"{a} {_pp(r)}" for a, r in d.iterrows()), ok


def _spread(values):
    return 100 * (values.max() - values.min()) / values.min()


@claim(
    3,
    "pruning leaves .tflite size, RAM and latency unchanged",
    "spread across sparsities (fp32): size < 1 %, RAM delta < 10 %, p50 latency < 15 % on every device, "
    "each device's timing noise (median (p90 - p50) / p50 of its cells) below 15 %",
    "fp32 cells at more than one sparsity, measured on a device",
)
def _pruning_keeps_size(run):
    s = run.summary[run.summary.quant == "fp32"]
    if s.sparsity.astype(str).nunique() < 2:
        raise NotMeasured("needs more than one sparsity")
    if run.bench.empty:
        raise NotMeasured("RAM and latency need a device")
    size = s.groupby("arch").file_bytes.agg(_spread)
    fp = run.bench[run.bench.quant == "fp32"]
    # p50, not the mean: one scheduler hiccup in 50 runs moves a mean by several %
    latency = fp.p50_us if "p50_us" in fp and fp.p50_us.notna().all() else fp.latency_us
    noise = fp.assign(n=(fp.p90_us - latency) / latency).groupby("device").n.median() if "p90_us" in fp else None
    if noise is not None and (noise >= 0.15).any():
        raise NotMeasured(
            "timing noise as large as the 15 % threshold: "
            + "; ".join(f"{d} (p90 - p50) / p50 = {100 * v:.0f} %" for d, v in noise.items())
            + " (more num_runs, an idle device, cooldown)"
        )
    b = fp.assign(lat=latency).groupby(["device", "arch"])
    ram, lat = b.ram_delta_mb.agg(_spread), b.lat.agg(_spread)
    msg = (
        "size spread " + "; ".join(f"{a} {v:.2f} %" for a, v in size.items())
        + "; RAM delta spread " + "; ".join(f"{d}/{a} {v:.1f} %" for (d, a), v in ram.items())
        + "; p50 latency spread " + "; ".join(f"{d}/{a} {v:.1f} %" for (d, a), v in lat.items())
    )  # fmt: skip
    return msg, bool((size < 1).all() and (ram < 10).all() and (lat < 15).all())


@claim(
    4,
    "gzip size falls as sparsity rises; pruning + int8 + gzip is smallest, ~92 % below fp32 on average",
    "gzip decreasing in sparsity (fp32), smallest cell most-pruned with int8 weights, mean reduction 91.65 ± 5 %",
    "several sparsities, fp32 and int8",
)
def _gzip_falls(run):
    uns = run.unstructured()
    fp, _, _ = _int8_pairs(run)
    if uns.sp.nunique() < 2:
        raise NotMeasured("needs several sparsities and int8")
    mono = all(
        g.sort_values("sp").gzip_bytes.is_monotonic_decreasing
        for _, g in uns[uns.quant == "fp32"].groupby(["arch", "seed"])
    )
    top = uns.sp.max()
    best = uns[(uns.sp == top) & (uns.quant == "int8")].groupby("arch").gzip_bytes.mean()
    red = 100 * (1 - best / fp.loc[best.index, "file_bytes"])
    # "smallest": each architecture's smallest file is a most-pruned cell with int8 weights
    # (pqgrid has more int8-weight modes than the thesis)
    mins = uns.loc[uns.groupby("arch").gzip_bytes.idxmin()]
    smallest = bool(((mins.sp == top) & mins.quant.map(lambda q: mode(q).int8_weights)).all())
    cells = ", ".join(f"{r.arch} s{int(r.sp)} {r.quant}" for r in mins.itertuples())
    reductions = "; ".join(f"{a} {v:.1f} %" for a, v in red.items())
    measured = f"monotone: {mono}; smallest cells: {cells}; reduction at {top:.0f} % + int8 + gzip: {reductions}; mean {red.mean():.1f} %"
    return measured, mono and smallest and abs(red.mean() - 91.65) <= 5


@claim(
    5,
    "exact sparsity (zeros / all parameters) falls short of the target",
    "every pruned model > 0.5 pp below its target",
    "pruned fp32 cells",
)
def _exact_sparsity_short(run):
    uns = run.unstructured()
    pr = uns[(uns.sp > 0) & (uns.quant == "fp32")]
    if pr.empty:
        raise NotMeasured("no pruned cells")
    short = 100 * (pr.sp / 100 - pr.zero_fraction)
    measured = "; ".join(
        f"{r.arch} s{int(r.sp)}: {100 * r.zero_fraction:.1f} %" for r in pr.drop_duplicates(["arch", "sp"]).itertuples()
    )
    return measured, bool((short > 0.5).all())


@claim(
    6,
    "30 % pruning improves top-1 for every architecture",
    "95 % interval of Δ top-1 above 0 for all",
    "fp32 cells at 0 and 30 %",
    about_accuracy=True,
)
def _prune30_improves(run):
    d = paired_delta(run, ("0", "fp32"), ("30", "fp32"))
    if d.empty:
        raise NotMeasured("no 30 % cells")
    return "; ".join(f"{a} {_pp(r)}" for a, r in d.iterrows()), bool(all(_low(r) > 0 for _, r in d.iterrows()))


@claim(
    7,
    "MobileNet keeps the best top-1 at 90 % sparsity",
    "a MobileNet's top-1 at 90 % above every other architecture's: 95 % interval of the difference above 0 "
    "(Welch over seeds; one seed: Newcombe's interval of two shares of the same test images)",
    "fp32 cells at 90 % of MobileNet and another architecture",
    about_accuracy=True,
)
def _mobilenet_best_at_90(run):
    uns = run.unstructured(accuracy=True)
    f90 = uns[(uns.sp == 90) & (uns.quant == "fp32")]
    mobilenets = [a for a in run.archs("MobileNet") if a in set(f90.arch)]
    if not mobilenets or f90.arch.nunique() < 2:
        raise NotMeasured("needs MobileNet and another architecture at 90 %")
    best = f90.groupby("arch").top1.mean().sort_values(ascending=False)
    mine = max(mobilenets, key=best.get)
    parts, ok = [f"{a} {100 * v:.1f} %" for a, v in best.items()], best.index[0] == mine
    for other in best.index.drop(mine):
        lo, hi = accuracy_difference(f90[f90.arch == other], f90[f90.arch == mine])
        parts.append(f"{mine} - {other} [{100 * lo:+.1f}, {100 * hi:+.1f}] pp")
        ok = ok and lo > 0
    return "; ".join(parts), ok


def accuracy_difference(a: pd.DataFrame, b: pd.DataFrame) -> tuple[float, float]:
    """95 % interval of b's top-1 minus a's (cells of two architectures): Welch over seeds
    with two or more each, else Newcombe's interval of the two shares of test images."""
    if len(a) >= 2 and len(b) >= 2:
        return welch_interval(a.top1, b.top1)
    na, nb = int(a.test_images.iloc[0]), int(b.test_images.iloc[0])
    return independent_interval(round(a.top1.mean() * na), na, round(b.top1.mean() * nb), nb)


@claim(
    8,
    "per-class changes are uneven: classes change by different amounts",
    "more than half of the variants (at least 2) change their classes unevenly: χ² test of equal per-class Δ "
    "top-1 against the unpruned fp32 model, Benjamini-Hochberg at 5 %",
    "per-class results of the unpruned fp32 model and at least 2 other variants",
    about_accuracy=True,
)
def _per_class_uneven(run):
    pc = run.acc_per_class
    if pc.empty:
        raise NotMeasured("no per-class data")
    tests = []
    for a in pc.arch.unique():
        mine = pc[pc.arch == a].assign(sp=lambda x: x.sparsity.astype(str))
        base = mine[(mine.sp == "0") & (mine.quant == "fp32")].groupby("class")[["correct", "support"]].sum()
        for (sp, q), v in mine.groupby(["sp", "quant"]):
            if (sp, q) != ("0", "fp32") and not base.empty:
                p, ratio = class_heterogeneity(base, v.groupby("class")[["correct", "support"]].sum())
                tests.append((f"{a} s{sp} {q}", p, ratio))
    if len(tests) < 2:
        raise NotMeasured(f"{len(tests)} variant(s): needs at least 2 beside the unpruned fp32 model")
    uneven = list(bh_adjust([p for _, p, _ in tests]) < 0.05)
    named = ", ".join(n for (n, _, _), u in zip(tests, uneven, strict=True) if u) or "none"
    ratios = [r for _, _, r in tests if np.isfinite(r)]
    ratio = f"; median max|class Δ| / |overall Δ| {np.median(ratios):.1f} (for reference)" if ratios else ""
    text = f"{sum(uneven)} of {len(tests)} variants uneven ({named}){ratio}"
    return text, sum(uneven) > len(tests) / 2


def _unpruned_latency(run) -> pd.DataFrame:
    """p50 and p90 latency (µs) of the unpruned fp32 cells per (device, arch), mean over seeds.

    Timing claims compare a model's typical run with the other's slow ones: A is faster than
    B on a device when A's p90 lies below B's p50, slower when A's p50 lies above B's p90, and
    neither - inside the timing noise - otherwise. Two timings of one model on one CPU differed
    by up to 20 % (docs/devices.md); 50 runs' p50 moves much less, so this rule says
    "equal" for models whose true latencies are equal (tests/test_findings_null.py)."""
    b = run.bench
    if b.empty:
        raise NotMeasured("no device configured")
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
    fp, i8, _ = _int8_pairs(run, accuracy=True)
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
        ok = ok and smaller and faster and _low(d.loc[m]) > -0.5
        parts.append(f"{m} vs {full}: smaller {smaller}, faster {faster}, int8 Δ {_pp(d.loc[m])}")
    return "; ".join(parts), ok


# ---------------------------------------------------------------- pqgrid's remedies (not in the thesis)
def _remedy_vs_fp32(run, mode):
    """Δ top-1 (paired_delta) of `mode` vs fp32 per architecture (unpruned), and a function
    giving each architecture's measured text with int8 PTQ's Δ beside (what the remedy is
    compared with)."""
    d = paired_delta(run, ("0", "fp32"), ("0", mode))
    if d.empty:
        raise NotMeasured(f"needs fp32 and {mode} cells at sparsity 0")
    i8 = paired_delta(run, ("0", "fp32"), ("0", "int8"))

    def text(a):
        beside = f" (int8 PTQ {i8.loc[a, 'mean']:+.1f} pp)" if a in i8.index else ""
        return f"{a} {mode} {_pp(d.loc[a])}{beside}"

    return d, text


@claim(
    12,
    "QAT brings int8 top-1 within 1 pp of fp32 for every architecture",
    "95 % interval of qat - fp32 top-1 above -1 pp, every architecture (unpruned)",
    "fp32 and qat cells at sparsity 0",
    about_accuracy=True,
)
def _qat_recovers(run):
    d, text = _remedy_vs_fp32(run, "qat")
    if len(d) < 2:
        raise NotMeasured(f"'every architecture' from {len(d)}: needs qat on at least two architectures")
    return "; ".join(map(text, d.index)), all(_low(r) >= -1 for _, r in d.iterrows())


@claim(
    13,
    "pruning-preserving QAT keeps the pruned sparsity",
    "kernel zeros read back from each pruned qat .tflite within 0.5 pp of the pruned model's before QAT",
    "qat cells at a sparsity > 0",
)
def _pqat_keeps_zeros(run):
    s = run.summary
    q = s[(s.quant == "qat") & ~is_unpruned(s)]
    if q.empty or "kernel_sparsity_before_qat" not in q.columns:
        raise NotMeasured("no qat cell at a sparsity > 0")
    d = 100 * (q.tflite_kernel_sparsity - q.kernel_sparsity_before_qat)
    parts = [
        f"{r.arch} s{r.sparsity}: {100 * r.kernel_sparsity_before_qat:.1f} -> {100 * r.tflite_kernel_sparsity:.1f} %"
        for r in q.itertuples()
    ]
    return "; ".join(parts), bool((d.abs() <= 0.5).all())


@claim(
    14,
    "int16x8 recovers what int8 loses on MobileNetV3",
    "for every MobileNetV3 whose int8 interval lies below -1 pp: int16x8 - fp32 interval above -1 pp (unpruned)",
    "fp32, int8 and int16x8 cells at sparsity 0 of a MobileNetV3 that int8 costs more than 1 pp",
    about_accuracy=True,
)
def _int16x8_v3(run):
    d, text = _remedy_vs_fp32(run, "int16x8")
    i8 = paired_delta(run, ("0", "fp32"), ("0", "int8"))
    v3 = [a for b in ("MobileNetV3Large", "MobileNetV3Small") for m in (False, True) for a in run.archs(b, m)]
    v3 = [a for a in v3 if a in d.index]
    if not v3:
        raise NotMeasured("no MobileNetV3 with fp32 and int16x8 cells")
    lost = [a for a in v3 if a in i8.index and _high(i8.loc[a]) < -1]
    if not lost:
        raise NotMeasured(f"int8 lost no measurable accuracy to recover ({'; '.join(map(text, v3))})")
    return "; ".join(map(text, lost)), all(_low(d.loc[a]) >= -1 for a in lost)


# ---------------------------------------------------------------- what compression forgets (Hooker et al.)
def _populations(run) -> pd.DataFrame:
    """pie.csv rows of compressed variants (the fp32 conversion of the unpruned model is
    not a compression), from populations of at least 2 models."""
    p = run.acc_pie
    if p is None or p.empty:
        raise NotMeasured("no PIE table")
    p = p[~((p.sparsity.astype(str) == "0") & (p.quant == "fp32"))]
    if p.empty or p.n_models.min() < 2:
        raise NotMeasured("needs populations of at least 2 seeds")
    return p


@claim(
    15,
    "PIEs are a small fraction of the test set",
    "PIE rate < 10 % for every compressed variant",
    "a population of >= 2 seeds and compressed cells",
    about_accuracy=True,
)
def _pies_few(run):
    p = _populations(run)
    worst = p.loc[p.pie_rate.idxmax()]
    text = f"{len(p)} variants, PIE rate {100 * p.pie_rate.min():.1f}-{100 * p.pie_rate.max():.1f} % " + (
        f"(highest: {worst.arch} {worst.variant}, {int(worst.pies)} of {int(worst.test_images)} images, "
        f"{int(worst.n_models)} models per population)"
    )
    return text, bool((p.pie_rate < 0.10).all())


@claim(
    16,
    "the uncompressed population is less accurate on PIEs than on the rest (PIEs are harder)",
    "95 % interval of (top-1 on PIEs - top-1 on the rest) below 0, every variant with PIEs; each uncompressed "
    "model scored on the PIEs the other models define (held out: a model never judges images it picked)",
    "a population of >= 2 seeds and compressed cells with PIEs",
    about_accuracy=True,
)
def _pies_harder(run):
    p = _populations(run)
    p = p[p.pies > 0]
    if p.empty:
        raise NotMeasured("no variant has PIEs")
    parts = [
        f"{r.arch} {r.variant}: {r.heldout_pies_minus_rest_pp:+.1f} pp "
        f"[{r.heldout_pies_minus_rest_ci_low_pp:+.1f}, {r.heldout_pies_minus_rest_ci_high_pp:+.1f}]"
        for r in p.itertuples()
    ]
    return "; ".join(parts), bool((p.heldout_pies_minus_rest_ci_high_pp < 0).all())


@claim(
    17,
    "quantization creates fewer PIEs than pruning at the same top-1 drop",
    "each unpruned quantized variant's PIE rate below the pruning curve's at its Δ top-1, beyond counting noise "
    "(the variant's exact 95 % upper bound below the curve's lower one): PIE rate vs Δ top-1 of the fp32 variants "
    "from s0 (the conversion alone) through every sparsity, linearly interpolated; variants outside the curve's "
    "range of Δ are not compared (no extrapolation)",
    "a population of >= 2 seeds with pruned fp32 cells and a quantized mode at sparsity 0 inside their Δ range",
    about_accuracy=True,
)
def _quantization_fewer_pies(run):
    p = run.acc_pie
    _populations(run)
    parts, outside, ok = [], [], True
    for arch, g in p.groupby("arch", sort=False):
        unpruned = g.sparsity.astype(str) == "0"
        # the curve starts at s0 fp32 (the conversion alone, ~0 PIEs at ~0 pp) and runs
        # through every pruned fp32 variant, sorted by Δ top-1
        prune = g[g.quant == "fp32"].sort_values("top1_delta_pp")
        prune = prune.assign(
            pie_low=[proportion_interval(k, n)[0] for k, n in zip(prune.pies, prune.test_images, strict=True)]
        )
        quant = g[unpruned & (g.quant != "fp32")]
        if (~unpruned[g.quant == "fp32"]).sum() == 0 or quant.empty:
            continue
        lo, hi = prune.top1_delta_pp.min(), prune.top1_delta_pp.max()
        for r in quant.itertuples():
            if not lo <= r.top1_delta_pp <= hi:
                outside.append(f"{arch} {r.quant} {r.top1_delta_pp:+.1f} pp outside [{lo:+.1f}, {hi:+.1f}]")
                continue
            at = float(np.interp(r.top1_delta_pp, prune.top1_delta_pp.values, prune.pie_rate.values))
            # fewer beyond counting noise: the variant's exact upper bound below the curve's
            # lower one (each PIE rate a share of the test images)
            floor = float(np.interp(r.top1_delta_pp, prune.top1_delta_pp.values, prune.pie_low.values))
            high = proportion_interval(r.pies, r.test_images)[1]
            ok = ok and high < floor
            parts.append(
                f"{arch} {r.quant}: {100 * r.pie_rate:.2f} % PIEs (up to {100 * high:.2f}) at {r.top1_delta_pp:+.1f} pp "
                f"vs pruning {100 * at:.2f} % (from {100 * floor:.2f})"
            )
    if not parts:
        raise NotMeasured(
            "no quantized variant inside the pruning curve's Δ range" + (f" ({'; '.join(outside)})" if outside else "")
        )
    return "; ".join(parts + [f"not compared: {o}" for o in outside]), ok


@claim(
    18,
    "a few classes carry a significant share of the change",
    "every variant with |Δ top-1| > 1 pp has 1 to 30 % of its classes significantly hit harder or softer than "
    "the model (Welch's t-test, Benjamini-Hochberg)",
    "a population of >= 2 seeds and a variant that changed top-1 by more than 1 pp",
    about_accuracy=True,
)
def _few_classes(run):
    _populations(run)
    pc = run.pie_per_class
    if pc is None or pc.empty:
        raise NotMeasured("no per-class table of the populations")
    pc = pc[pc.overall_delta_pp.abs() > 1]
    if pc.empty:
        raise NotMeasured("no variant changed top-1 by more than 1 pp")
    parts, ok = [], True
    for (arch, variant), g in pc.groupby(["arch", "variant"], sort=False):
        sig = g[g.significant.astype(str).str.lower() == "true"]
        share = len(sig) / len(g)
        carried = sig.excess_pp.abs().sum() / g.excess_pp.abs().sum() if g.excess_pp.abs().sum() else 0.0
        ok = ok and 0 < share <= 0.3
        names = ", ".join(sig["class"].astype(str)) or "none"
        parts.append(
            f"{arch} {variant} ({g.overall_delta_pp.iloc[0]:+.1f} pp): {len(sig)}/{len(g)} classes ({names}), "
            f"{100 * carried:.0f} % of the excess change"
        )
    return "; ".join(parts), ok


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
        f"{dev}: {len(g)} cells, largest |Δ| {g.top1_host_diff_pp.abs().max():.2f} pp, "
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
            measured, verdict = f"{e} (needs {c.needs})", NOT_MEASURED
        if c.about_accuracy and len(run.broken):
            measured += f"; left out (collapsed to chance): {_cell_names(run.broken)}"
        if c.about_accuracy and run.near_chance and not all_near_chance:
            measured += f"; left out (trained model near chance): {', '.join(run.near_chance)}"
        rows.append(
            {"no": c.no, "claim": c.sentence, "measured": measured, "verdict": verdict, "threshold": c.threshold}
        )
    return pd.DataFrame(rows)


def findings_markdown(df: pd.DataFrame, context: str, broken: pd.DataFrame | None = None) -> str:
    lines = [
        "# Findings: the thesis' claims (1-11), pqgrid's remedies (12-14) and what compressed models forget "
        "(15-18, Hooker et al. 2019) and the device (19) checked against this run",
        "",
        context,
        "",
    ]
    if broken is not None and len(broken):
        lines += [
            f"**Warning: {len(broken)} cell(s) collapsed to chance** while their trained model is well above "
            f"it: {_cell_names(broken)}. They are defects to look at (see the job logs), not measurements; "
            "the claims about accuracy below leave them out.",
            "",
        ]
    lines += ["| # | claim | measured | verdict | threshold |", "|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.no} | {r.claim} | {r.measured} | **{r.verdict}** | {r.threshold} |")
    return "\n".join(lines) + "\n"


def check_findings(*, inputs, architectures, context, out_md, out_csv):
    t = read_long_tables(inputs)
    per_class = t["per_class"] if t["per_class"] is not None else pd.DataFrame()
    df = findings(t["summary"], t["bench"], per_class, architectures, t.get("pie"), t.get("pie_per_class"))
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    write_text(out_md, findings_markdown(df, context, collapsed_cells(t["summary"])))
