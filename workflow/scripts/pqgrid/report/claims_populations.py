"""Claims over seed populations (PIEs, Hooker et al. 2019): few PIEs (15), PIEs are hard
for dense models too (16), quantization forgets fewer than pruning (17), few classes carry
the change (18)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pqgrid.core.stats import (
    proportion_interval,
)
from pqgrid.report.claims import NotMeasured, claim


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
    "PIE rate below 10 % for every compressed variant: its exact (Clopper-Pearson) 95 % upper bound",
    "a population of >= 2 seeds and compressed cells",
    about_accuracy=True,
)
def _pies_few(run):
    p = _populations(run)
    high = pd.Series([proportion_interval(k, n)[1] for k, n in zip(p.pies, p.test_images, strict=True)], p.index)
    worst = p.loc[high.idxmax()]
    text = f"{len(p)} variants, PIE rate {100 * p.pie_rate.min():.1f}-{100 * p.pie_rate.max():.1f} % " + (
        f"(highest: {worst.arch} {worst.variant}, {int(worst.pies)} of {int(worst.test_images)} images, up to "
        f"{100 * high.max():.1f} %, {int(worst.n_models)} models per population)"
    )
    return text, bool((high < 0.10).all())


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
