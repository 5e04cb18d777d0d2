"""Claims over seed populations (PIEs, Hooker et al. 2019): few PIEs (15), PIEs are hard
for dense models too (16), quantization forgets fewer than pruning (17), few classes carry
the change (18)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pqgrid.report.claims import NotMeasured, claim


# ---------------------------------------------------------------- what compression forgets (Hooker et al.)
# A PIE count says as much about the population size and about how unequal the images are as
# about compression: two single models of different seeds disagree on a third of the images,
# and images that are hard for one seed are hard for all. So claims 15-17 read what
# compression forgets *beyond* training with other seeds (evaluate/pie.seed_baseline):
# compression's PIEs between disjoint halves of the seeds minus the seed-to-seed PIEs of the
# same halves, with an interval over test images.
def _populations(run, seeds=2) -> pd.DataFrame:
    """pie.csv rows of compressed variants (the fp32 conversion of the unpruned model is
    not a compression) whose populations split into halves (`seeds` models at least)."""
    p = run.acc_pie
    if p is None or p.empty:
        raise NotMeasured("no PIE table")
    p = p[~((p.sparsity.astype(str) == "0") & (p.quant == "fp32"))]
    if p.empty or "excess_pie_rate" not in p or p.n_models.min() < seeds:
        raise NotMeasured(
            f"needs populations of at least {seeds} seeds (add seeds: `seeds: [{', '.join(map(str, range(3)))}]`)"
        )
    return p


@claim(
    15,
    "PIEs are a small fraction of the test set",
    "what compression forgets beyond another seed is below 10 % of the test set for every compressed variant: "
    "the 95 % upper bound of its PIE rate minus the seed-to-seed one (disjoint halves of the seeds, equal sizes)",
    "a population of >= 2 seeds and compressed cells",
    about_accuracy=True,
)
def _pies_few(run):
    p = _populations(run)
    worst = p.loc[p.excess_pie_ci_high.idxmax()]
    text = (
        f"{len(p)} variants, {100 * p.excess_pie_rate.min():+.1f} to {100 * p.excess_pie_rate.max():+.1f} % of the "
        f"images beyond the seed-to-seed PIEs (highest: {worst.arch} {worst.variant}, "
        f"{100 * worst.compression_split_pie_rate:.1f} % vs {100 * worst.seed_split_pie_rate:.1f} % between seeds, "
        f"excess up to {100 * worst.excess_pie_ci_high:.1f} %, halves of {int(worst.half_models)} models)"
    )
    return text, bool((p.excess_pie_ci_high < 0.10).all())


@claim(
    16,
    "the uncompressed population is less accurate on PIEs than on the rest (PIEs are harder)",
    "every variant that forgets beyond another seed (its excess PIE rate's 95 % interval above 0): the images it "
    "forgets are harder - an uncompressed model held out of both halves scores lower on them (weighted by their "
    "excess) than on the whole test set, 95 % interval below 0",
    "a population of >= 3 seeds and a compressed variant that forgets more than another seed changes",
    about_accuracy=True,
)
def _pies_harder(run):
    p = _populations(run, seeds=3)
    forgets = p[p.excess_pie_ci_low > 0]
    if forgets.empty:
        raise NotMeasured(
            f"no variant forgets beyond what another seed changes (excess PIE rate's interval reaches 0 in all "
            f"{len(p)}); more seeds or test images narrow it"
        )
    parts = [
        f"{r.arch} {r.variant} (+{100 * r.excess_pie_rate:.1f} % PIEs): {r.excess_pies_minus_all_pp:+.1f} pp "
        f"[{r.excess_pies_minus_all_ci_low_pp:+.1f}, {r.excess_pies_minus_all_ci_high_pp:+.1f}]"
        for r in forgets.itertuples()
    ]
    return "; ".join(parts), bool((forgets.excess_pies_minus_all_ci_high_pp < 0).all())


@claim(
    17,
    "quantization creates fewer PIEs than pruning at the same top-1 drop",
    "each unpruned quantized variant forgets less than the pruning curve at its Δ top-1, beyond noise (the upper "
    "bound of its excess PIE rate below the curve's lower one): excess PIE rate (beyond another seed) vs Δ top-1 "
    "of the fp32 variants from s0 (the conversion alone) through every sparsity, linearly interpolated; variants "
    "outside the curve's range of Δ are not compared (no extrapolation)",
    "a population of >= 2 seeds with pruned fp32 cells and a quantized mode at sparsity 0 inside their Δ range",
    about_accuracy=True,
)
def _quantization_fewer_pies(run):
    _populations(run)
    parts, outside, ok = [], [], True
    for arch, g in run.acc_pie.groupby("arch", sort=False):
        unpruned = g.sparsity.astype(str) == "0"
        # the curve starts at s0 fp32 (the conversion alone, ~0 excess at ~0 pp) and runs
        # through every pruned fp32 variant, sorted by Δ top-1
        prune = g[g.quant == "fp32"].sort_values("top1_delta_pp")
        quant = g[unpruned & (g.quant != "fp32")]
        if (~unpruned[g.quant == "fp32"]).sum() == 0 or quant.empty:
            continue
        lo, hi = prune.top1_delta_pp.min(), prune.top1_delta_pp.max()
        for r in quant.itertuples():
            if not lo <= r.top1_delta_pp <= hi:
                outside.append(f"{arch} {r.quant} {r.top1_delta_pp:+.1f} pp outside [{lo:+.1f}, {hi:+.1f}]")
                continue
            at = float(np.interp(r.top1_delta_pp, prune.top1_delta_pp.values, prune.excess_pie_rate.values))
            floor = float(np.interp(r.top1_delta_pp, prune.top1_delta_pp.values, prune.excess_pie_ci_low.values))
            ok = ok and r.excess_pie_ci_high < floor
            parts.append(
                f"{arch} {r.quant}: {100 * r.excess_pie_rate:+.2f} % PIEs beyond another seed (up to "
                f"{100 * r.excess_pie_ci_high:+.2f}) at {r.top1_delta_pp:+.1f} pp vs pruning {100 * at:+.2f} % "
                f"(from {100 * floor:+.2f})"
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
