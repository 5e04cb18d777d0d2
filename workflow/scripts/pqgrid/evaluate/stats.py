"""Statistics over the long tables: 95 % intervals on means over seeds, per-class changes
with Welch's t-test across seed populations and Benjamini-Hochberg correction (Hooker et al.
2019), Pareto fronts, and the numeric view of the sparsity axis."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

# File sizes in MB of 10^6 bytes, as the thesis (its fp32 MobileNet: 12.8453 MB; here 12,844,256 bytes);
# memory in MiB, as benchmark_model and /proc print it (ram_delta_mb).
MB = 1_000_000
CELL = ["arch", "seed", "sparsity", "quant"]


def is_unpruned(df) -> pd.Series:
    """Rows of the trained model itself (sparsity 0; the column may hold ints or strings)."""
    return df.sparsity.astype(str) == "0"


def sparsity_number(s):
    """Sparsity column -> numbers for axes and comparisons; a 2:4 pattern counts as 50 %."""
    return pd.to_numeric(s.astype(str).str.replace("2of4|2:4", "50", regex=True), errors="coerce")


# ---------------------------------------------------------------- intervals and tests
# Every mean over seeds carries a 95 % Student-t interval (mean ± t(0.975, n-1) · s/√n): with
# 2-10 seeds a bootstrap has too few distinct resamples to be trusted, and the t-interval is
# what Welch's test (below) already assumes. Differences of two seed populations use Welch's
# interval (unequal variances, Welch-Satterthwaite degrees of freedom), from scipy.
CONFIDENCE = 0.95


def t_interval(values, confidence=CONFIDENCE) -> tuple[float, float]:
    """Student-t interval for the mean of `values` (NaN dropped); (nan, nan) below 2 values
    and when every value is the same: seeds that agree exactly show no spread to build an
    interval on, and (m, m) would claim a certainty no data give (a verdict then needs the
    per-image evidence: claims.paired_delta)."""
    from scipy import stats

    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if len(v) < 2:
        return float("nan"), float("nan")
    m, sem = float(v.mean()), float(stats.sem(v))
    if sem == 0:
        return float("nan"), float("nan")
    lo, hi = stats.t.interval(confidence, len(v) - 1, loc=m, scale=sem)
    return float(lo), float(hi)


def paired_interval(gained, lost, n, confidence=CONFIDENCE) -> tuple[float, float]:
    """Interval for the change of accuracy between two models scored on the same n test
    images, from the discordant images alone (`gained`: right only in the second model,
    `lost`: only in the first): exact given gained + lost = m, the count of gains is
    Binomial(m, p) and the change is (2p - 1) m / n, so the Clopper-Pearson interval of p maps
    onto it. It excludes 0 when McNemar's exact test (equal-tailed) rejects at 1 - confidence.
    One seed's evidence: two models that differ on a handful of images do not differ."""
    m = int(gained) + int(lost)
    if m == 0:
        return 0.0, 0.0
    low, high = proportion_interval(gained, m, confidence)
    return (2 * low - 1) * m / n, (2 * high - 1) * m / n


def proportion_interval(k, n, confidence=CONFIDENCE) -> tuple[float, float]:
    """Clopper-Pearson (exact) interval of a share k / n, in its closed form: the beta
    quantiles scipy's binomtest(...).proportion_ci(method="exact") finds by root search
    (equal to it within 1e-12, tested), 20x faster - the null suites call it ~10^5 times."""
    from scipy import stats

    k, n, tail = int(k), int(n), (1 - confidence) / 2
    low = float(stats.beta.ppf(tail, k, n - k + 1)) if k > 0 else 0.0
    high = float(stats.beta.ppf(1 - tail, k + 1, n - k)) if k < n else 1.0
    return low, high


def independent_interval(k1, n1, k2, n2, confidence=CONFIDENCE) -> tuple[float, float]:
    """Interval for k2/n2 - k1/n1 of two independent shares: Newcombe's hybrid score
    interval (1998, method 10) from scipy's Wilson intervals - a few lines scipy lacks.
    Used where two models were scored on the same images but their per-image answers are
    not paired in the tables (another architecture): wider than a paired interval, never
    narrower than the truth."""
    from scipy import stats

    p1, p2 = k1 / n1, k2 / n2
    w1 = stats.binomtest(int(k1), int(n1)).proportion_ci(confidence_level=confidence, method="wilson")
    w2 = stats.binomtest(int(k2), int(n2)).proportion_ci(confidence_level=confidence, method="wilson")
    d = p2 - p1
    lo = d - np.sqrt((p2 - w2.low) ** 2 + (w1.high - p1) ** 2)
    hi = d + np.sqrt((w2.high - p2) ** 2 + (p1 - w1.low) ** 2)
    return float(lo), float(hi)


def ci_halfwidth(values, confidence=CONFIDENCE) -> float:
    """Half the width of `t_interval` (the `± x` of a table); NaN below 2 values, 0 where
    every seed gives the same value (a file size that does not depend on the seed)."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if len(v) >= 2 and np.all(v == v[0]):
        return 0.0
    lo, hi = t_interval(v, confidence)
    return (hi - lo) / 2


def welch_t(a, b):
    """Welch's t-test (unequal variances) p-value; NaN with fewer than 2 values per side.
    2-D arrays: one test per row (the values along the last axis)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape[-1] < 2 or b.shape[-1] < 2:
        return _nan_like(a)
    with warnings.catch_warnings():  # near-identical seeds: scipy warns of precision loss, p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = stats.ttest_ind(a, b, equal_var=False, axis=-1).pvalue
    # no spread on either side: no test (a p of 0 would claim certainty)
    return _scalar_or_array(np.where(_no_spread(a, b), np.nan, p))


def welch_interval(a, b, confidence=CONFIDENCE):
    """Interval for mean(b) - mean(a) by Welch's t (scipy's `confidence_interval`);
    (nan, nan) with fewer than 2 values per side or no spread on either (t_interval says
    why). 2-D arrays: one interval per row, as two arrays."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape[-1] < 2 or b.shape[-1] < 2:
        return _nan_like(a), _nan_like(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_ind(b, a, equal_var=False, axis=-1).confidence_interval(confidence)
    flat = _no_spread(a, b)
    return _scalar_or_array(np.where(flat, np.nan, ci.low)), _scalar_or_array(np.where(flat, np.nan, ci.high))


def _no_spread(a, b):
    return (np.var(a, ddof=1, axis=-1) == 0) & (np.var(b, ddof=1, axis=-1) == 0)


def _nan_like(a):
    return _scalar_or_array(np.full(a.shape[:-1], np.nan))


def _scalar_or_array(x):
    x = np.asarray(x, float)
    return float(x) if x.ndim == 0 else x


def ratio_interval(a, b, confidence=CONFIDENCE) -> tuple[float, float, float]:
    """b / a for two sets of positive timings (one per session): the ratio of their geometric
    means and its interval, Welch's on the logs (timing noise is multiplicative: a model
    twice as slow drifts twice as many µs). NaN bounds with fewer than 2 sessions a side."""
    la, lb = np.log(np.asarray(a, float)), np.log(np.asarray(b, float))
    lo, hi = welch_interval(la, lb, confidence)
    return float(np.exp(lb.mean() - la.mean())), float(np.exp(lo)), float(np.exp(hi))


def class_heterogeneity(base: pd.DataFrame, variant: pd.DataFrame) -> tuple[float, float]:
    """Do the classes change by different amounts? Per class (rows indexed by class, columns
    `correct` and `support`, seeds summed): Δ_c = variant's minus base's accuracy. Under
    "every class changes alike" the inverse-variance weighted squares of Δ_c about their
    weighted mean follow χ² with classes - 1 degrees of freedom (Cochran's Q). The variance of
    each Δ_c is the unpaired binomial one (+0.5 per count keeps it off 0): the two models
    answer the same images, so the true variance is smaller and the test errs towards "alike".
    Returns (p-value, max|Δ_c| / |overall Δ|, the ratio the thesis looked at; inf at Δ = 0)."""
    from scipy import stats

    b, v = base.align(variant, join="inner")
    pb, pv = (b.correct + 0.5) / (b.support + 1), (v.correct + 0.5) / (v.support + 1)
    delta = v.correct / v.support - b.correct / b.support
    w = 1 / (pb * (1 - pb) / (b.support + 1) + pv * (1 - pv) / (v.support + 1))
    mean = float((w * delta).sum() / w.sum())
    q = float((w * (delta - mean) ** 2).sum())
    p = float(stats.chi2.sf(q, len(delta) - 1)) if len(delta) > 1 else float("nan")
    overall = v.correct.sum() / v.support.sum() - b.correct.sum() / b.support.sum()
    ratio = float(delta.abs().max() / abs(overall)) if overall else float("inf")
    return p, ratio


def heterogeneity_power(base: pd.DataFrame, effect: float, level=0.05, power=0.8) -> tuple[float, float]:
    """What `class_heterogeneity` can see: its power to call the classes uneven when one
    class changes by `effect` (a share: 0.10 = 10 pp) more than the others, on `base`'s
    per-class counts (rows by class; `correct`, `support`), and the images per class at which
    that power reaches `power`. Under that alternative Q is noncentral χ² (classes - 1
    degrees of freedom) with noncentrality Σ w_c (Δ_c - Δ̄)², the same weights as the test;
    the weights grow with the support, so the noncentrality does too, in proportion.

    That power is the test's on independent draws. A compressed model answers the same
    images as its parent, so each class' change carries far less noise than the test's
    variance assumes, and Q is little more than its noncentrality: it detects the effect
    only once the noncentrality itself passes the critical value. The images needed are
    therefore where both hold - 80 % power and a noncentrality two standard deviations of
    χ²(classes - 1) above the critical value (tests/test_findings_boundary.py simulates both).
    Returns (power on independent draws at the support given, images per class needed;
    inf with one class)."""
    from scipy import optimize, stats

    k = len(base)
    if k < 2:
        return float("nan"), float("inf")
    n = float(base.support.mean())
    p = ((base.correct + 0.5) / (base.support + 1)).to_numpy(float)
    delta = np.zeros(k)
    delta[int(np.argmax(p))] = -effect  # the easiest class loses: its accuracy has room to fall
    q = np.clip(p + delta, 1e-3, 1 - 1e-3)
    w = 1 / (p * (1 - p) / (n + 1) + q * (1 - q) / (n + 1))
    mean = (w * delta).sum() / w.sum()
    nc = float((w * (delta - mean) ** 2).sum())
    crit = stats.chi2.isf(level, k - 1)
    have = float(stats.ncx2.sf(crit, k - 1, nc))
    needed_nc = optimize.brentq(lambda x: stats.ncx2.sf(crit, k - 1, x) - power, 1e-6, 1e4)
    needed_nc = max(needed_nc, crit + 2 * np.sqrt(2 * (k - 1)))
    return have, float(np.ceil(n * needed_nc / nc))


def bh_adjust(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values; scipy's false_discovery_control);
    NaN stays NaN and does not count as a test.

    Why BH: one variant tests every class at once (10 for CIFAR-10, 102 for Caltech-101).
    Uncorrected, 1 class in 20 is "significant" by chance; Bonferroni (family-wise error)
    with 5-30 seeds flags almost nothing. BH bounds the expected share of false alarms among
    the flagged classes at alpha - a list of classes to look at, which is the question."""
    from scipy import stats

    p = np.asarray(p_values, float)
    q = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


def class_accuracies(per_class: pd.DataFrame) -> pd.DataFrame:
    """Per model (seed) and class: `accuracy`, and the model's overall top-1 `overall`
    (correct / support over all classes; the mean of the classes where no counts are given)
    beside it."""
    pc = per_class.copy()
    if {"correct", "support"} <= set(pc.columns):
        totals = pc.groupby("seed")[["correct", "support"]].transform("sum")
        pc["overall"] = totals.correct / totals.support
    else:
        pc["overall"] = pc.groupby("seed").accuracy.transform("mean")
    return pc


def class_changes(base: pd.DataFrame, variant: pd.DataFrame, alpha=0.05) -> pd.DataFrame:
    """Per class, a compressed seed population against the uncompressed one (Hooker et al.
    2019). `base` and `variant`: rows (seed, class, correct, support, accuracy).

    delta_pp: change of the class' top-1 (mean over seeds) with Welch's 95 % interval;
    excess_pp: that change minus the change of overall top-1, tested per model
    (class top-1 - overall top-1, base vs variant) with Welch's t-test - Hooker's question:
    is the class hit harder than the model as a whole? q_value: BH over the classes;
    significant: q < alpha."""
    b, v = class_accuracies(base), class_accuracies(variant)
    overall = 100 * (v.groupby("seed").overall.first().mean() - b.groupby("seed").overall.first().mean())
    classes = list(dict.fromkeys(b["class"]))
    x, y = _by_class_and_seed(b, classes), _by_class_and_seed(v, classes)
    if x is None or y is None:  # a class missing from some seed: class by class
        rows = [_class_change(b[b["class"] == c], v[v["class"] == c], c, overall) for c in classes]
    else:  # every class in every seed: one vectorised Welch over the classes (the same numbers)
        lo, hi = welch_interval(x[0], y[0])
        delta = 100 * (y[0].mean(axis=1) - x[0].mean(axis=1))
        p = welch_t(x[0] - x[1], y[0] - y[1])
        rows = [
            _change_row(c, delta[i], lo[i], hi[i], overall, p[i], y[0].shape[1], x[0].shape[1])
            for i, c in enumerate(classes)
        ]
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["q_value"] = bh_adjust(out.p_value)
    out["significant"] = out.q_value < alpha
    return out


def _by_class_and_seed(pc: pd.DataFrame, classes: list):
    """(accuracy, overall) as class x seed arrays, or None where a class lacks a seed."""
    if pc.duplicated(["class", "seed"]).any():
        return None
    wide = pc.set_index(["class", "seed"])[["accuracy", "overall"]].unstack("seed").reindex(classes)
    if wide.isna().to_numpy().any():
        return None
    return wide["accuracy"].to_numpy(float), wide["overall"].to_numpy(float)


def _class_change(x: pd.DataFrame, y: pd.DataFrame, cls, overall: float) -> dict:
    lo, hi = welch_interval(x.accuracy, y.accuracy)
    delta = 100 * (y.accuracy.mean() - x.accuracy.mean())
    p = welch_t(x.accuracy - x.overall, y.accuracy - y.overall)
    return _change_row(cls, delta, lo, hi, overall, p, y.seed.nunique(), x.seed.nunique())


def _change_row(cls, delta, lo, hi, overall, p, n_seeds, n_seeds_base) -> dict:
    """One class' row of `class_changes` (delta in pp; lo, hi the interval as fractions)."""
    return {
        "class": cls,
        "delta_pp": delta,
        "delta_ci_low_pp": 100 * lo,
        "delta_ci_high_pp": 100 * hi,
        "overall_delta_pp": overall,
        "excess_pp": delta - overall,
        "p_value": p,
        "n_seeds": int(n_seeds),
        "n_seeds_base": int(n_seeds_base),
    }


def per_class_changes(per_class, arch, base, variants, alpha=0.05):
    """`class_changes` of each variant (sparsity, quant) of `arch` against its base cell,
    from the long per-class table; one frame with a `variant` column ("s90 fp32")."""
    pc = per_class[per_class.arch == arch].copy()
    pc["sparsity"] = pc.sparsity.astype(str)
    b = pc[(pc.sparsity == base[0]) & (pc.quant == base[1])]
    frames = []
    for sp, q in variants:
        v = pc[(pc.sparsity == sp) & (pc.quant == q)]
        if v.empty or b.empty:
            continue
        frames.append(class_changes(b, v, alpha).assign(variant=f"s{sp} {q}", sparsity=sp, quant=q))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def pareto_front(df, x, y):
    """Rows not dominated: no other row has x <= and y >= with one strictly better."""
    pts = df[[x, y]].to_numpy()
    keep = []
    for xi, yi in pts:
        dominated = np.any((pts[:, 0] <= xi) & (pts[:, 1] >= yi) & ((pts[:, 0] < xi) | (pts[:, 1] > yi)))
        keep.append(not dominated)
    return np.array(keep, dtype=bool)
