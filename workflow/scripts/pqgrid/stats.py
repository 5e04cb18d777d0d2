"""Statistics over the long tables: per-class changes with Welch's t-test across seeds
(Hooker et al. 2020), Pareto fronts, and the numeric view of the sparsity axis."""

from __future__ import annotations

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
            rows.append(
                {
                    "variant": f"s{sp} {q}",
                    "class": cls,
                    "delta_pp": 100 * (y.mean() - x.mean()),
                    "p_value": p,
                    "significant": bool(p < alpha) if p == p else False,
                    "n_seeds": len(y),
                }
            )
        overall = 100 * (v.accuracy.mean() - b.accuracy.mean())
        for r in rows:
            if r["variant"] == f"s{sp} {q}":
                r["overall_delta_pp"] = overall
    return pd.DataFrame(rows)


def pareto_front(df, x, y):
    """Rows not dominated: no other row has x <= and y >= with one strictly better."""
    pts = df[[x, y]].to_numpy()
    keep = []
    for xi, yi in pts:
        dominated = np.any((pts[:, 0] <= xi) & (pts[:, 1] >= yi) & ((pts[:, 0] < xi) | (pts[:, 1] > yi)))
        keep.append(not dominated)
    return np.array(keep, dtype=bool)
