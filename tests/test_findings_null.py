"""Verdicts that survive a null: simulated runs where a claim's effect is absent must not
give "holds" more often than the test's level promises, and runs where it is present at a
stated size must give it. Each test prints its rejection and detection rates.

Covered here: the paired one-seed interval (McNemar) behind claims 2, 6, 11, 12 and 14, claim
6 itself, claim 8 (per-class heterogeneity), and the guards that turn a verdict into "not
measured" (models near chance, a claim about models or a loss the run does not have)."""

import numpy as np
import pandas as pd
import pytest
from claim_scenarios import NULL_AND_EFFECT
from pqgrid.evaluate.stats import class_heterogeneity, paired_interval
from pqgrid.report import claims as report_claims
from pqgrid.report import findings

SIMS = 200
LEVEL = 0.05
# the rejection rate of 200 nulls at a true 5 % lies below 9 % with 97 % probability
NULL_CEILING = 0.09
# A detection rate needs fewer runs than a false-"holds" rate near 5 %: a claim that detects
# its effect in 90 % of runs falls below 80 % in 100 runs with 0.1 % probability.
EFFECT_SIMS = 100


def _pair(rng, n, p, delta, flip=0.05):
    """Two models' right/wrong answers on n images: the first right with probability p, the
    second its copy with a share `flip` of answers redrawn, plus a true change `delta`."""
    a = rng.random(n) < p
    b = a.copy()
    redraw = rng.random(n) < flip
    b[redraw] = rng.random(redraw.sum()) < p
    if delta > 0:
        wrong = np.flatnonzero(~b)
        b[rng.choice(wrong, int(round(delta * n)), replace=False)] = True
    elif delta < 0:
        right = np.flatnonzero(b)
        b[rng.choice(right, int(round(-delta * n)), replace=False)] = False
    return a, b


def test_paired_interval_keeps_its_level_and_finds_a_real_change():
    rng = np.random.default_rng(0)
    rates = {}
    for delta in (0.0, 0.03):
        hits = 0
        for _ in range(SIMS):
            a, b = _pair(rng, 1000, 0.7, delta)
            lo, hi = paired_interval((b & ~a).sum(), (a & ~b).sum(), len(a))
            hits += lo > 0 or hi < 0
        rates[delta] = hits / SIMS
    print(f"\npaired interval: rejects a true 0 in {100 * rates[0.0]:.1f} %, finds +3 pp in {100 * rates[0.03]:.1f} %")
    assert rates[0.0] <= NULL_CEILING and rates[0.03] >= 0.8


def _one_seed_run(gained, lost, n=1000, arch="mobilenet", builder="MobileNet", only=None):
    rows = [
        dict(arch=arch, seed=0, sparsity=0, quant="fp32", top1=0.7, gained_vs_fp32=0, lost_vs_fp32=0),
        dict(arch=arch, seed=0, sparsity=30, quant="fp32", top1=0.7 + (gained - lost) / n,
             gained_vs_fp32=gained, lost_vs_fp32=lost),
    ]  # fmt: skip
    s = pd.DataFrame(rows).assign(
        test_images=n, chance_top1=0.1, parent_top1=0.7, file_bytes=1, gzip_bytes=1, zero_fraction=0.0
    )
    return findings.findings(s, pd.DataFrame(), pd.DataFrame(), {arch: {"builder": builder}}, only=only).set_index("no")


def test_claim_6_on_one_seed_needs_more_than_a_handful_of_images():
    """The issue's case: '+0.0 pp (1 seed)' held and '-0.0 pp' did not. One image either way
    decides nothing now; under a null of equal models the claim holds at most at the test's
    level, and a real +3 pp is found."""
    assert _one_seed_run(1, 0).loc[6, "verdict"] == report_claims.FAILS
    assert _one_seed_run(0, 1).loc[6, "verdict"] == report_claims.FAILS
    rng = np.random.default_rng(1)
    rates = {}
    for delta in (0.0, 0.03):
        holds = 0
        for _ in range(SIMS):
            a, b = _pair(rng, 1000, 0.7, delta)
            run = _one_seed_run(int((b & ~a).sum()), int((a & ~b).sum()), only={6})
            holds += run.loc[6, "verdict"] == report_claims.HOLDS
        rates[delta] = holds / SIMS
    print(
        f"\nclaim 6, one seed: holds under the null in {100 * rates[0.0]:.1f} %, at +3 pp in {100 * rates[0.03]:.1f} %"
    )
    assert rates[0.0] <= NULL_CEILING and rates[0.03] >= 0.8


def _per_class(rng, per_class, p, deltas):
    """Base and variant per-class counts (index class; correct, support), paired per image."""
    base, var = [], []
    for c, d in enumerate(deltas):
        a, b = _pair(rng, per_class, p, d)
        base.append((c, a.sum(), per_class))
        var.append((c, b.sum(), per_class))
    frame = lambda rows: pd.DataFrame(rows, columns=["class", "correct", "support"]).set_index("class")  # noqa: E731
    return frame(base), frame(var)


@pytest.mark.parametrize("per_class", [50, 300])
def test_claim_8_is_a_test_of_unequal_classes_not_of_test_set_size(per_class):
    """With every class changed alike, a ratio rule (largest class change >= 2x the overall) says "uneven" in 87-97 %
    of runs with 50 images per class. The heterogeneity test keeps its level at 50 and 300
    images per class, and finds one class hit 20 pp harder than the rest with 300 (with 50
    per class it rarely can: the rate is printed, a run that small gets "does not hold")."""
    rng = np.random.default_rng(2)
    alike, one_class = [-0.03] * 10, [-0.03] * 9 + [-0.23]
    rates = {}
    for name, deltas in (("alike", alike), ("one class", one_class)):
        rates[name] = np.mean(
            [class_heterogeneity(*_per_class(rng, per_class, 0.8, deltas))[0] < LEVEL for _ in range(SIMS)]
        )
    print(f"\nclaim 8, {per_class} images per class: uneven when alike {100 * rates['alike']:.1f} %, "
          f"with one class -20 pp {100 * rates['one class']:.1f} %")  # fmt: skip
    assert rates["alike"] <= NULL_CEILING
    if per_class >= 300:
        assert rates["one class"] >= 0.8


def test_claim_8_verdict_under_the_null_and_with_an_uneven_class():
    rng = np.random.default_rng(3)

    def run(deltas):
        pcs, rows = [], []
        for q, d in (("fp32", None), ("int8", deltas), ("dynamic", deltas)):
            base, var = _per_class(rng, 300, 0.8, deltas)
            counts = base if d is None else var
            for c, r in counts.iterrows():
                pcs.append(dict(arch="m", seed=0, sparsity=0, quant=q, **{"class": c}, correct=r.correct,
                                support=r.support, accuracy=r.correct / r.support))  # fmt: skip
            rows.append(dict(arch="m", seed=0, sparsity=0, quant=q, top1=0.8, test_images=3000, chance_top1=0.1,
                             parent_top1=0.8, file_bytes=1, gzip_bytes=1, zero_fraction=0.0))  # fmt: skip
        s, pc = pd.DataFrame(rows), pd.DataFrame(pcs)
        return (
            findings.findings(s, pd.DataFrame(), pc, {"m": {"builder": "MobileNet"}}).set_index("no").loc[8, "verdict"]
        )

    null = np.mean([run([-0.02] * 10) == report_claims.HOLDS for _ in range(100)])
    power = np.mean([run([-0.02] * 9 + [-0.25]) == report_claims.HOLDS for _ in range(100)])
    print(
        f"\nclaim 8 verdict: holds under the null in {100 * null:.0f} %, with one class -23 pp in {100 * power:.0f} %"
    )
    assert null <= NULL_CEILING and power >= 0.8


def test_no_verdict_on_accuracy_when_every_model_is_near_chance():
    """With every model at 10 % of 10 classes, a change is noise: claims 2, 6 and 14 must not hold."""
    rows = []
    for arch in ("a", "b"):
        for sp, q, top1 in ((0, "fp32", 0.10), (30, "fp32", 0.105), (0, "int8", 0.10), (0, "int16x8", 0.10)):
            rows.append(dict(arch=arch, seed=0, sparsity=sp, quant=q, top1=top1, test_images=3000, chance_top1=0.1,
                             parent_top1=0.10, gained_vs_fp32=40, lost_vs_fp32=0, file_bytes=1e6, gzip_bytes=1e6,
                             zero_fraction=sp / 100))  # fmt: skip
    s = pd.DataFrame(rows)
    archs = {"a": {"builder": "MobileNetV3Large"}, "b": {"builder": "MobileNet"}}
    f = findings.findings(s, pd.DataFrame(), pd.DataFrame(), archs).set_index("no")
    for no in (2, 6, 8, 12, 14):
        assert f.loc[no, "verdict"] == report_claims.NOT_MEASURED and "near chance" in f.loc[no, "measured"], no


def test_claims_about_models_or_losses_the_run_lacks_are_not_measured():
    """Claim 2 without MobileNetV3Large (it was all([]) = True), claim 12 from one
    architecture, claim 14 where int8 lost nothing."""
    rows = []
    for sp, q, g, lost in ((0, "fp32", 0, 0), (0, "int8", 10, 10), (0, "qat", 10, 10), (0, "int16x8", 10, 10)):
        rows.append(dict(arch="v3", seed=0, sparsity=sp, quant=q, top1=0.8, test_images=3000, chance_top1=0.1,
                         parent_top1=0.8, gained_vs_fp32=g, lost_vs_fp32=lost, file_bytes=1e6, gzip_bytes=1e6,
                         zero_fraction=0.0))  # fmt: skip
    s = pd.DataFrame(rows)
    f = findings.findings(s, pd.DataFrame(), pd.DataFrame(), {"v3": {"builder": "MobileNetV3Small"}}).set_index("no")
    assert f.loc[2, "verdict"] == report_claims.NOT_MEASURED and "MobileNetV3Large" in f.loc[2, "measured"]
    assert f.loc[12, "verdict"] == report_claims.NOT_MEASURED and "every architecture" in f.loc[12, "measured"]
    assert f.loc[14, "verdict"] == report_claims.NOT_MEASURED and "lost no measurable accuracy" in f.loc[14, "measured"]


# ---------------------------------------------------------------- every claim: its null and its effect
OWN_TESTS = set()


@pytest.mark.parametrize("no, column, at", [(15, "excess_pie_rate", 0.10), (16, "excess_pies_minus_all_pp", 0.0)])
def test_the_forgetting_boundaries_sit_at_their_thresholds(no, column, at):
    """Claims 15 and 16's nulls lie at the claim's threshold, not beside it: on 100,000
    images the simulated variant's measure is the threshold (15: 10 % beyond another seed,
    within 0.3 pp; 16: as hard as the test set, within 2 pp - the point's own spread at this
    size is ~0.8 pp, at the nulls' 5,000 images ~4 pp)."""
    from simulated_runs import run_tables

    kwargs = dict(NULL_AND_EFFECT[no][3](False), n=100_000)
    row = run_tables(np.random.default_rng(no), **kwargs)[3].iloc[1]
    assert row[column] == pytest.approx(at, abs=0.003 if no == 15 else 2.0), row[column]


def test_every_claim_has_a_null_and_an_effect():
    """A new claim without its null and power test fails here."""
    assert {c.no for c in report_claims.CLAIMS} == set(NULL_AND_EFFECT) | OWN_TESTS


@pytest.mark.parametrize("no", sorted(NULL_AND_EFFECT))
def test_claim_rejects_its_null_and_finds_its_effect(no):
    from simulated_runs import BUILDERS, run_tables

    null, effect, sims, spec = NULL_AND_EFFECT[no]
    rng = np.random.default_rng(100 + no)
    rates = {}
    runs = {False: sims, True: min(sims, EFFECT_SIMS)}
    for on in (False, True):
        kwargs = spec(on)
        archs = {a: BUILDERS[a] for a in kwargs.get("archs", ("mobilenet", "v3l"))}
        verdicts = []
        for _ in range(runs[on]):
            tables = run_tables(rng, **kwargs)
            verdicts.append(findings.findings(*tables[:3], archs, *tables[3:], only={no}).verdict.iloc[0])
        rates[on] = np.mean([v == report_claims.HOLDS for v in verdicts])
    print(f"\nclaim {no}: holds under the null ({null}) in {100 * rates[False]:.0f} % of {sims}, "
          f"with the effect ({effect}) in {100 * rates[True]:.0f} % of {runs[True]}")  # fmt: skip
    assert rates[False] <= (NULL_CEILING if sims >= 200 else 0.1), "holds under its null"
    assert rates[True] >= 0.8, "misses its effect"


def test_the_committed_rates_meet_the_findings_contract():
    """docs/results/claim_rates.csv (benchmarks/claim_rates.py, 400 runs per scenario) has
    every claim with 1 and 3 seeds, and each meets the goal: false "holds" at the boundary
    <= 5 %, detection >= 80 %, or - a population claim on one seed - "not measured"."""
    from conftest import ROOT

    rates = pd.read_csv(ROOT / "docs/results/claim_rates.csv")
    assert set(rates.claim) == set(NULL_AND_EFFECT) and set(rates.seeds) == {1, 3} and (rates.runs >= 400).all()
    missed = rates[(rates.null_holds_pct > 5) | ((rates.effect_holds_pct < 80) & (rates.met != "not measured"))]
    assert missed.empty, missed.to_string()
    assert set(rates[rates.met == "not measured"].claim) <= {15, 16, 17, 18}


def test_the_rates_benchmark_writes_its_table(tmp_path):
    """benchmarks/claim_rates.py on one claim, 3 runs: a row per seed count with both rates;
    an unknown claim is one line naming the choices."""
    import subprocess
    import sys

    from conftest import ROOT

    script = [sys.executable, str(ROOT / "benchmarks/claim_rates.py"), str(tmp_path / "out"), "--runs", "3"]
    subprocess.run([*script, "--claims", "19", "--jobs", "1"], check=True, capture_output=True)
    t = pd.read_csv(tmp_path / "out/claim_rates.csv")
    assert list(t.seeds) == [1, 3] and (t.null_holds_pct == 0).all() and (t.effect_holds_pct == 100).all()
    proc = subprocess.run([*script, "--claims", "99"], capture_output=True, text=True)
    assert proc.returncode == 2 and "no scenario for claim [99]" in proc.stderr
