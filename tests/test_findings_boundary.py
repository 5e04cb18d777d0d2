"""Verdicts at their thresholds' boundary: where the true change sits exactly on a claim's
threshold, "holds" may come no more often than the test's level (one-sided 2.5 %), with 1
and 3 seeds; and the one-line mistakes in the claim code that keep verdicts plausible (a t-interval
replaced by its point value, the wrong end of an interval, the near-chance exclusion or
Benjamini-Hochberg dropped, a point value in claim 16) each fail a test here.

Simulated models: a trained model right on each image with its own difficulty (images of
unequal difficulty, a Beta spread), a compressed model that re-decides a share of its
parent's answers (a second draw of the same image) and then moves a true share of answers
from right to wrong or back. Test data, never results."""

import numpy as np
import pandas as pd
import pytest
from pqgrid.evaluate.stats import class_heterogeneity, heterogeneity_power
from pqgrid.report import claims as report_claims
from pqgrid.report import claims_accuracy, findings

# 200 runs in CI (fixed seeds: the same verdicts every run); the 400-run rates with 1 and 3
# seeds are benchmarks/claim_rates.py's, held to the contract by test_findings_null.py
SIMS = 200
CEILING = 0.05


def _child(rng, parent_right, difficulty, delta, redraw=0.05):
    """A compressed model's right/wrong answers from its parent's: a share `redraw` of the
    images decided again (right with the image's own probability), then round(|delta| n)
    answers moved from right to wrong (delta < 0) or back."""
    child = parent_right.copy()
    again = rng.random(len(child)) < redraw
    child[again] = rng.random(again.sum()) < 1 - difficulty[again]
    k = int(round(abs(delta) * len(child)))
    pool = np.flatnonzero(child if delta < 0 else ~child)
    child[rng.choice(pool, min(k, len(pool)), replace=False)] = delta > 0
    return child


def _run(rng, cells, seeds, n=2000, p=0.7, arch="m", builder="MobileNetV3Large", seed_sd=0.0):
    """summary rows of one architecture: {(sparsity, quant): true Δ top-1} against the
    unpruned fp32 model, `seeds` trainings (each its own model; `seed_sd`: how much the true
    Δ varies between trainings)."""
    difficulty = np.clip(rng.beta(0.6, 1.4, n), 0, 1)  # mean 0.3: images of unequal difficulty
    rows = []
    for seed in range(seeds):
        parent = rng.random(n) < 1 - difficulty
        rows.append(_row(arch, seed, 0, "fp32", parent, parent, n))
        for (sp, q), delta in cells.items():
            child = _child(rng, parent, difficulty, delta + rng.normal(0, seed_sd))
            rows.append(_row(arch, seed, sp, q, parent, child, n))
    return pd.DataFrame(rows), {arch: {"builder": builder}}


def _row(arch, seed, sp, q, parent, child, n):
    return dict(arch=arch, seed=seed, sparsity=sp, quant=q, top1=child.mean(), test_images=n, chance_top1=0.1,
                parent_top1=parent.mean(), gained_vs_fp32=int((child & ~parent).sum()),
                lost_vs_fp32=int((parent & ~child).sum()), file_bytes=1e6, gzip_bytes=1e6, zero_fraction=sp / 100)  # fmt: skip


def _holds(summary, archs, no) -> bool:
    f = findings.findings(summary, pd.DataFrame(), pd.DataFrame(), archs, only={no})
    return f.verdict.iloc[0] == report_claims.HOLDS


def _rate(rng, no, cells, seeds, sims=SIMS, **kw) -> float:
    return float(np.mean([_holds(*_run(rng, cells, seeds, **kw), no) for _ in range(sims)]))


# (claim, the cells at the boundary, the cells with a clear effect)
BOUNDARIES = {
    6: ({(30, "fp32"): 0.0}, {(30, "fp32"): 0.03}),  # "interval above 0"
    # "interval above -1 pp"; the effect half a point above fp32 (3 seeds' t(2) is wide)
    12: ({(0, "qat"): -0.01}, {(0, "qat"): 0.005}),
    14: ({(0, "int8"): -0.10, (0, "int16x8"): -0.01}, {(0, "int8"): -0.10, (0, "int16x8"): 0.005}),
}


@pytest.mark.parametrize("seeds", [1, 3])
@pytest.mark.parametrize("no", sorted(BOUNDARIES))
def test_at_the_boundary_holds_at_most_at_the_level(no, seeds):
    """The true change exactly on the threshold: "holds" in at most 5 % of 200 runs (the
    one-sided level is 2.5 %); with a clear effect in at least 80 %. Seeds differ in their
    true change by 0.2 pp (trainings differ), which the seed interval must carry."""
    boundary, effect = BOUNDARIES[no]
    rng = np.random.default_rng(1000 * no + seeds)
    extra = {"seed_sd": 0.002} if seeds > 1 else {}
    archs = ("m", "n") if no == 12 else ("m",)  # claim 12 speaks of every architecture: two of them

    def rate(cells, sims):
        hits = 0
        for _ in range(sims):
            frames = [_run(rng, cells, seeds, arch=a, **extra) for a in archs]
            summary = pd.concat([f for f, _ in frames], ignore_index=True)
            hits += _holds(summary, {a: c for _, m in frames for a, c in m.items()}, no)
        return hits / sims

    null, power = rate(boundary, SIMS), rate(effect, 100)
    print(f"\nclaim {no}, {seeds} seed(s): holds at the boundary in {100 * null:.1f} % of {SIMS}, "
          f"with a clear effect in {100 * power:.0f} %")  # fmt: skip
    assert null <= CEILING and power >= 0.8


def test_seeds_that_differ_keep_the_seed_interval():
    """Trainings that differ by 1 pp in their true change, on 2000 images each: the seeds'
    own spread is what the interval must carry (the pooled images alone would be about half
    as wide): at a true 0, claim 6 holds in at most 5 % of 200 runs with 3 seeds."""
    rng = np.random.default_rng(7)
    rate = _rate(rng, 6, {(30, "fp32"): 0.0}, 3, seed_sd=0.01)
    print(f"\nclaim 6, 3 seeds differing by 1 pp: holds at a true 0 in {100 * rate:.1f} % of {SIMS}")
    assert rate <= CEILING


def test_seeds_that_agree_exactly_get_the_per_image_interval_not_a_point():
    """Three seeds that each gained one image more than they lost: the seeds' differences
    agree exactly, so a t-interval has width 0 and "+0.1 pp [+0.1, +0.1]" would hold. The
    interval comes from the images (3 of 3000 is nothing)."""
    rows = []
    for seed in range(3):
        rows += [
            dict(arch="m", seed=seed, sparsity=0, quant="fp32", top1=0.7, gained_vs_fp32=0, lost_vs_fp32=0),
            dict(arch="m", seed=seed, sparsity=30, quant="fp32", top1=0.701, gained_vs_fp32=11, lost_vs_fp32=10),
        ]
    s = pd.DataFrame(rows).assign(test_images=1000, chance_top1=0.1, parent_top1=0.7, file_bytes=1, gzip_bytes=1,
                                  zero_fraction=0.0)  # fmt: skip
    f = findings.findings(s, pd.DataFrame(), pd.DataFrame(), {"m": {"builder": "MobileNet"}}, only={6}).iloc[0]
    assert f.verdict == report_claims.FAILS, f.measured
    d = report_claims.paired_delta(
        report_claims.Run(s, pd.DataFrame(), pd.DataFrame(), {}), ("0", "fp32"), ("30", "fp32")
    )
    lo, hi = d.loc["m", ["lo", "hi"]]
    assert lo < 0 < hi and hi - lo > 0.5, (lo, hi)  # pooled 33 gained / 30 lost of 3000: about ±0.3 pp


def test_seeds_that_agree_closely_are_widened_to_what_the_images_allow():
    """Three seeds whose differences are +0.10, +0.15, +0.20 pp: their t-interval (+0.03,
    +0.27) clears 0, but 3000 images with ~60 changed answers cannot show +0.15 pp."""
    rows = []
    for seed, (g, lost) in enumerate(((11, 10), (13, 11.5), (12, 10))):
        rows += [
            dict(arch="m", seed=seed, sparsity=0, quant="fp32", top1=0.7, gained_vs_fp32=0, lost_vs_fp32=0),
            dict(arch="m", seed=seed, sparsity=30, quant="fp32", top1=0.7 + (0.0010, 0.0015, 0.0020)[seed],
                 gained_vs_fp32=g, lost_vs_fp32=lost),
        ]  # fmt: skip
    s = pd.DataFrame(rows).assign(test_images=1000, chance_top1=0.1, parent_top1=0.7, file_bytes=1, gzip_bytes=1,
                                  zero_fraction=0.0)  # fmt: skip
    f = findings.findings(s, pd.DataFrame(), pd.DataFrame(), {"m": {"builder": "MobileNet"}}, only={6}).iloc[0]
    assert f.verdict == report_claims.FAILS, f.measured


def test_an_architecture_near_chance_is_left_out_while_the_others_are_judged():
    """One architecture near chance beside one that clearly gains at 30 %: claim 6 is judged
    on the second alone (the near-chance one, whose interval spans 0, would make it fail)."""
    good = [dict(arch="good", seed=0, sparsity=0, quant="fp32", top1=0.7, parent_top1=0.7, gained_vs_fp32=0,
                 lost_vs_fp32=0),
            dict(arch="good", seed=0, sparsity=30, quant="fp32", top1=0.75, parent_top1=0.7, gained_vs_fp32=150,
                 lost_vs_fp32=0)]  # fmt: skip
    chance = [dict(arch="dud", seed=0, sparsity=0, quant="fp32", top1=0.1, parent_top1=0.1, gained_vs_fp32=0,
                   lost_vs_fp32=0),
              dict(arch="dud", seed=0, sparsity=30, quant="fp32", top1=0.1, parent_top1=0.1, gained_vs_fp32=40,
                   lost_vs_fp32=40)]  # fmt: skip
    s = pd.DataFrame(good + chance).assign(test_images=3000, chance_top1=0.1, file_bytes=1, gzip_bytes=1,
                                           zero_fraction=0.0)  # fmt: skip
    archs = {"good": {"builder": "MobileNet"}, "dud": {"builder": "MobileNetV2"}}
    f = findings.findings(s, pd.DataFrame(), pd.DataFrame(), archs, only={6}).iloc[0]
    assert f.verdict == report_claims.HOLDS, f.measured
    assert "left out (trained model near chance): dud" in f.measured


def test_claim_8_corrects_for_testing_every_variant(monkeypatch):
    """Six variants whose raw p-values are 0.02-0.04 for four and 0.9 for two: uncorrected,
    four of six are "uneven" and the claim holds; after Benjamini-Hochberg (the smallest
    q is 0.04 x 6 / 4 = 0.06) none is."""
    p_values = iter([0.02, 0.03, 0.035, 0.04, 0.9, 0.9])
    monkeypatch.setattr(claims_accuracy, "class_heterogeneity", lambda base, var: (next(p_values), 1.0))
    rows, pcs = [], []
    for sp, q in ((0, "fp32"), (0, "int8"), (0, "dynamic"), (0, "fp16"), (30, "fp32"), (60, "fp32"), (90, "fp32")):
        rows.append(dict(arch="m", seed=0, sparsity=sp, quant=q, top1=0.8, test_images=30000, chance_top1=0.1,
                         parent_top1=0.8, file_bytes=1, gzip_bytes=1, zero_fraction=0.0))  # fmt: skip
        for c in range(10):  # 3000 per class: enough power that "does not hold" is a verdict
            pcs.append(dict(arch="m", seed=0, sparsity=sp, quant=q, **{"class": c}, correct=2400, support=3000,
                            accuracy=0.8))  # fmt: skip
    f = findings.findings(pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame(pcs), {"m": {"builder": "MobileNet"}},
                          only={8}).iloc[0]  # fmt: skip
    assert f.verdict == report_claims.FAILS and "0 of 6 variants uneven" in f.measured, f.measured


def _forgetting_row(**values):
    """A pie.csv row of one variant of 3 seeds that forgets 2 % beyond another seed, its
    images harder (-5 pp [-8, -2]); `values` replace any of it."""
    row = dict(arch="m", sparsity=90, quant="fp32", variant="s90 fp32", n_models=3, pies=400, pie_rate=0.2,
               test_images=2000, top1_delta_pp=-3.0, half_models=1, compression_split_pie_rate=0.32,
               seed_split_pie_rate=0.30, excess_pie_rate=0.02, excess_pie_ci_low=0.01, excess_pie_ci_high=0.03,
               excess_pies_minus_all_pp=-5.0, excess_pies_minus_all_ci_low_pp=-8.0, excess_pies_minus_all_ci_high_pp=-2.0)  # fmt: skip
    return pd.DataFrame([{**row, **values}])


def _forgetting_verdict(no, **values):
    s = pd.DataFrame([dict(arch="m", seed=0, sparsity=0, quant="fp32", top1=0.7, test_images=2000, chance_top1=0.1,
                           parent_top1=0.7, file_bytes=1, gzip_bytes=1, zero_fraction=0.0)])  # fmt: skip
    f = findings.findings(s, pd.DataFrame(), pd.DataFrame(), {"m": {"builder": "MobileNet"}}, _forgetting_row(**values),
                          only={no}).iloc[0]  # fmt: skip
    return f.verdict, f.measured


def test_claim_16_reads_the_interval_not_the_point():
    """Images -2 pp harder whose interval reaches +1 pp do not show the forgotten images are
    harder; an interval ending at -0.5 does; a variant whose excess PIEs' interval reaches 0
    forgets nothing beyond another seed to call harder."""
    assert (
        _forgetting_verdict(16, excess_pies_minus_all_pp=-2.0, excess_pies_minus_all_ci_high_pp=1.0)[0]
        == report_claims.FAILS
    )
    assert _forgetting_verdict(16, excess_pies_minus_all_ci_high_pp=-0.5)[0] == report_claims.HOLDS
    verdict, measured = _forgetting_verdict(16, excess_pie_ci_low=-0.001)
    assert verdict == report_claims.NOT_MEASURED and "beyond what another seed changes" in measured


def test_claim_15_compares_an_interval_with_10_percent():
    """An excess PIE rate of 9.5 % whose upper bound is 10.9 % does not show "below 10 %";
    9.9 % up to 9.99 % does - the point rate (20 % of the images are PIEs of single models)
    is not what is judged."""
    assert _forgetting_verdict(15, excess_pie_rate=0.095, excess_pie_ci_high=0.109)[0] == report_claims.FAILS
    assert _forgetting_verdict(15, excess_pie_rate=0.099, excess_pie_ci_high=0.0999)[0] == report_claims.HOLDS


def _class_counts(rng, per_class, p, deltas, paired):
    """Base and variant per-class counts: the variant a copy of the base's answers with its
    class' change (`paired`), or drawn independently at the changed accuracy."""
    base, var = [], []
    for c, d in enumerate(deltas):
        a = rng.random(per_class) < p
        b = (_child(rng, a, np.full(per_class, 1 - p), d, redraw=0.05) if paired
             else rng.random(per_class) < p + d)  # fmt: skip
        base.append((c, a.sum(), per_class))
        var.append((c, b.sum(), per_class))
    frame = lambda rows: pd.DataFrame(rows, columns=["class", "correct", "support"]).set_index("class")  # noqa: E731
    return frame(base), frame(var)


@pytest.mark.parametrize("per_class", [100, 300])
def test_claim_8s_power_computation_matches_simulated_detection(per_class):
    """The power heterogeneity_power states for one class 10 pp harder is what 400 simulated
    runs of independent draws detect (within 6 pp); at the images per class it says 80 %
    needs, paired answers (a compressed copy of one model: less noise in each class' change,
    so detection turns on the noncentrality passing the critical value) are detected in at
    least 80 % too - "cannot tell" below that size is right for both."""
    rng = np.random.default_rng(per_class)
    deltas = [0.0] * 9 + [-0.10]

    def detected(n, paired):
        return np.mean(
            [class_heterogeneity(*_class_counts(rng, n, 0.75, deltas, paired))[0] < 0.05 for _ in range(SIMS)]
        )

    base = pd.DataFrame({"correct": [int(0.75 * per_class)] * 10, "support": [per_class] * 10})
    stated, needed = heterogeneity_power(base, 0.10)
    here = detected(per_class, paired=False)
    at_needed = {paired: detected(int(needed), paired) for paired in (False, True)}
    print(f"\nclaim 8's test, {per_class} images per class, one class -10 pp: stated power {100 * stated:.0f} %, "
          f"detected {100 * here:.0f} %; at the ~{needed:.0f} per class it names: {100 * at_needed[False]:.0f} % "
          f"(independent) / {100 * at_needed[True]:.0f} % (paired)")  # fmt: skip
    assert abs(here - stated) <= 0.06
    assert at_needed[False] >= 0.75 and at_needed[True] >= 0.8


def test_claim_8_says_it_cannot_tell_rather_than_does_not_hold():
    """300 images per class, every class alike: the test cannot see a 10 pp class effect
    with 80 % power, so the claim is not judged and says how many images it needs."""
    rows, pcs = [], []
    for sp, q in ((0, "fp32"), (0, "int8"), (30, "fp32")):
        rows.append(dict(arch="m", seed=0, sparsity=sp, quant=q, top1=0.8, test_images=3000, chance_top1=0.1,
                         parent_top1=0.8, file_bytes=1, gzip_bytes=1, zero_fraction=0.0))  # fmt: skip
        for c in range(10):
            pcs.append(dict(arch="m", seed=0, sparsity=sp, quant=q, **{"class": c}, correct=240, support=300,
                            accuracy=0.8))  # fmt: skip
    f = findings.findings(pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame(pcs), {"m": {"builder": "MobileNet"}},
                          only={8}).iloc[0]  # fmt: skip
    assert f.verdict == report_claims.NOT_MEASURED and "cannot tell with 300 images per class" in f.measured


# ---------------------------------------------------------------- latency between sessions
def _latency_holds(rng, no, archs, latency, seeds, cells=((0, "fp32"),), drift=None, repeats=3):
    from simulated_runs import BUILDERS, run_tables

    tables = run_tables(rng, archs=archs, seeds=seeds, cells=cells, latency=latency, drift=drift, repeats=repeats)
    f = findings.findings(*tables[:3], {a: BUILDERS[a] for a in archs}, *tables[3:], only={no})
    return f.verdict.iloc[0], f.measured.iloc[0]


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_equal_latencies_with_drift_between_jobs_are_not_called_different(seeds):
    """Two models of equal latency whose p50 drifts between jobs: one session's p90 against
    the other's p50 would call one of them slower in a fifth of runs at a 4 % drift. Here
    the sessions stray as this machine's benchmark jobs did (simulated_runs.measured_drift:
    6.6 %, one job in five 13-26 % slow), and as a lognormal 8 %."""
    rng = np.random.default_rng(9)
    for drift in (None, 0.08):
        held = [
            _latency_holds(rng, 9, ("b0", "v3l"), lambda a, sp, q: 1000.0, seeds, drift=drift)[0] == report_claims.HOLDS
            for _ in range(SIMS)
        ]
        print(f"\nclaim 9, equal latencies, {len(seeds)} seed(s), drift {drift or 'as measured'}: holds in "
              f"{100 * np.mean(held):.1f} %")  # fmt: skip
        assert np.mean(held) <= CEILING, drift


@pytest.mark.parametrize("ratio", [0.63, 0.60])
def test_channel_pruning_just_short_of_or_at_the_goal_does_not_pay(ratio):
    """Claim 20 at a true 0.63x (goal 0.6x) and exactly at 0.60x: with 3 seeds x 2 modes,
    "any one cell paid" would hold in about a third to a half of runs. Every seed's sessions
    together, Bonferroni over the (architecture, mode) choices, keep it at the level."""
    rng = np.random.default_rng(20)
    cells = ((0, "fp32"), ("ch50", "fp32"), (0, "int8"), ("ch50", "int8"))
    held = [
        _latency_holds(
            rng, 20, ("mobilenet",), lambda a, sp, q: 1000.0 * (ratio if sp == "ch50" else 1.0), (0, 1, 2), cells
        )[0]
        == report_claims.HOLDS  # fmt: skip
        for _ in range(SIMS)
    ]
    print(f"\nclaim 20 at a true {ratio}x: holds in {100 * np.mean(held):.1f} %")
    assert np.mean(held) <= CEILING


@pytest.mark.parametrize("no", [9, 20])
def test_one_timing_session_per_cell_gives_no_latency_verdict(no):
    """With `repeats: 1` there is no spread to compare against: not measured, and the
    verdict names the setting - even where one model is twice as fast."""
    rng = np.random.default_rng(1)
    if no == 9:
        verdict, measured = _latency_holds(rng, 9, ("b0", "v3l"), lambda a, sp, q: 2000.0 if a == "b0" else 1000.0,
                                           (0,), repeats=1)  # fmt: skip
    else:
        verdict, measured = _latency_holds(rng, 20, ("mobilenet",), lambda a, sp, q: 500.0 if sp == "ch50" else 1000.0,
                                           (0,), ((0, "fp32"), ("ch50", "fp32")), repeats=1)  # fmt: skip
    assert verdict == report_claims.NOT_MEASURED and "repeats" in measured, measured


def test_claim_17_compares_bounds_not_points():
    """int8 at -3 pp forgetting 1.5 % [0.5, 2.5] beyond another seed against a pruning curve
    at 2.0 % [1.5, 2.5] there: below it as points, not beyond the noise - does not hold; with
    its upper bound at 1.2 % it does."""
    rows = [
        dict(sparsity=0, quant="fp32", variant="s0 fp32", top1_delta_pp=0.0, excess_pie_rate=0.0,
             excess_pie_ci_low=0.0, excess_pie_ci_high=0.0),
        dict(sparsity=90, quant="fp32", variant="s90 fp32", top1_delta_pp=-6.0, excess_pie_rate=0.04,
             excess_pie_ci_low=0.03, excess_pie_ci_high=0.05),
        dict(sparsity=0, quant="int8", variant="s0 int8", top1_delta_pp=-3.0, excess_pie_rate=0.015,
             excess_pie_ci_low=0.005, excess_pie_ci_high=0.025),
    ]  # fmt: skip

    def verdict(int8_high):
        pie = pd.concat([_forgetting_row(**r) for r in rows], ignore_index=True)
        pie.loc[pie.quant == "int8", "excess_pie_ci_high"] = int8_high
        s = pd.DataFrame([dict(arch="m", seed=0, sparsity=0, quant="fp32", top1=0.7, test_images=2000,
                               chance_top1=0.1, parent_top1=0.7, file_bytes=1, gzip_bytes=1, zero_fraction=0.0)])  # fmt: skip
        return findings.findings(s, pd.DataFrame(), pd.DataFrame(), {"m": {"builder": "MobileNet"}}, pie,
                                 only={17}).iloc[0]  # fmt: skip

    assert verdict(0.025).verdict == report_claims.FAILS, verdict(0.025).measured
    assert verdict(0.012).verdict == report_claims.HOLDS, verdict(0.012).measured
