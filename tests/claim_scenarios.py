"""Every claim's null at its threshold's boundary and its effect, as simulated runs: the
scenarios tests/test_findings_null.py holds each claim to and benchmarks/claim_rates.py
measures at 400 runs with 1 and 3 seeds. Test data, never results.

Each entry: claim number -> (the null, the effect, simulations in the test, a function
present -> keyword arguments of simulated_runs.run_tables, + "archs" for the config).
Claims on exact quantities (file sizes, zeros) have no noise: their rates are 0 or 100 %
by construction, and the null sits just beside the rule's edge."""

from pqgrid.report.claims_methods import RATIO

S4 = ((0, "fp32"), (30, "fp32"), (60, "fp32"), (90, "fp32"), (0, "int8"), (90, "int8"))


def _v(table):
    """delta(arch, sp, q) from {(arch or '*', sp, q): Δ} (class deltas as a dict value)."""

    def delta(a, sp, q):
        d = table.get((a, sp, q), table.get(("*", sp, q), 0.0))
        return (d, None) if not isinstance(d, tuple) else d

    return delta


def _gzip(falls):
    def size(a, sp, q):
        f = 4e6 * (0.28 if q != "fp32" else 1.0)
        return f, f * (0.92 - (0.8 * sp / 100 if falls else 0.0))

    return size


# Claims 15-17 read what compression forgets beyond another seed (evaluate/pie.seed_baseline):
# 3 seeds, compressed models that re-decide 5 % of their parent's answers (invisible beyond a
# seed: a second draw) and images of unequal difficulty. The boundaries were found on 100,000
# images (test_the_forgetting_boundaries_sit_at_their_thresholds).
FORGETTING = dict(archs=("mobilenet",), seeds=(0, 1, 2), n=2000, populations=True, flip=0.05, unequal=2,
                  cells=((0, "fp32"), (60, "fp32")))  # fmt: skip
BOUNDARY_15 = 0.184  # share forgotten at random whose excess PIE rate is 10 %
BOUNDARY_16 = 0.513  # lower end of a 0.3 wide window of right chances whose images are as hard as all


def _window(low, high=None):
    """forget weights: images whose right chance lies in [low, high) (default a 0.3 window)."""
    high = low + 0.3 if high is None else high
    return lambda p: ((p >= low) & (p < high)).astype(float)


NULL_AND_EFFECT = {
    1: (
        "int8 files 59 % smaller (the rule's band is 60-80 %)",
        "72 % smaller",
        20,
        lambda on: dict(size=lambda a, sp, q: (4e6 * ((0.28 if on else 0.41) if q == "int8" else 1.0),) * 2),
    ),
    2: (
        "int8 costs MobileNetV3Large exactly 2 pp (the rule: below -2 pp), the others nothing",
        "V3Large -10 pp, MobileNet 0",
        200,
        lambda on: dict(delta=_v({("v3l", 0, "int8"): -0.10 if on else -0.02})),
    ),
    3: (
        "latency 15 % higher at 90 % sparsity (the equivalence band's edge)",
        "latency unchanged (10 sessions: showing ±15 % equal on this drift takes more than a difference)",
        200,
        lambda on: dict(cells=S4, repeats=10, latency=lambda a, sp, q: 1000.0 * (1 if on or sp < 90 else 1.15)),
    ),
    4: ("gzip size flat across sparsities", "gzip falls with sparsity", 20, lambda on: dict(cells=S4, size=_gzip(on))),
    5: (
        "zeros 0.4 pp short of the target (the rule: > 0.5 pp)",
        "2 pp short of it",
        20,
        lambda on: dict(cells=S4, zeros_short=0.02 if on else 0.004),
    ),
    6: (
        "30 % pruning changes nothing",
        "+3 pp",
        100,
        lambda on: dict(cells=((0, "fp32"), (30, "fp32")), delta=_v({("*", 30, "fp32"): 0.03 if on else 0.0})),
    ),
    7: (
        "every architecture equal at 90 %",
        "MobileNet +8 pp",
        100,
        lambda on: dict(
            archs=("mobilenet", "v3s"),
            cells=((0, "fp32"), (90, "fp32")),
            delta=_v({("mobilenet", 90, "fp32"): 0.08 if on else 0.0}),
        ),
    ),
    8: (
        "every class changes alike (-3 pp)",
        "one class 25 pp more",
        100,
        lambda on: dict(
            cells=((0, "fp32"), (0, "int8"), (30, "fp32")),
            n=5000,
            delta=_v(
                {
                    ("*", 0, "int8"): (-0.03, {3: -0.25} if on else None),
                    ("*", 30, "fp32"): (-0.03, {3: -0.25} if on else None),
                }
            ),
        ),
    ),
    9: (
        "B0 as fast as V3Large",
        "B0 1.5x slower",
        200,
        lambda on: dict(archs=("b0", "v3l"), latency=lambda a, sp, q: 1000.0 * (1.5 if on and a == "b0" else 1)),
    ),
    10: (
        "V3Small as fast as the rest",
        "V3Small 2x faster",
        200,
        lambda on: dict(
            archs=("v3s", "mobilenet", "v3l"),
            size=lambda a, sp, q: ((2e6 if a == "v3s" else 4e6),) * 2,
            latency=lambda a, sp, q: 1000.0 * (0.5 if on and a == "v3s" else 1),
        ),
    ),
    11: (
        "minimalistic as fast as its full model",
        "30 % faster",
        200,
        lambda on: dict(
            archs=("v3s", "v3s_min"),
            flip=0.01,
            size=lambda a, sp, q: ((2e6 if a == "v3s_min" else 3e6),) * 2,
            latency=lambda a, sp, q: 1000.0 * (0.7 if on and a == "v3s_min" else 1),
        ),
    ),
    12: (
        "QAT -1 pp on both architectures (the rule's edge)",
        "QAT equal to fp32",
        200,
        lambda on: dict(cells=((0, "fp32"), (0, "qat")), flip=0.02, delta=_v({("*", 0, "qat"): 0.0 if on else -0.01})),
    ),
    13: (
        "PQAT loses 0.6 pp of zeros (the rule: within 0.5)",
        "keeps them",
        20,
        lambda on: dict(cells=((0, "fp32"), (60, "fp32"), (60, "qat")), pqat_drop=0.0 if on else 0.006),
    ),
    14: (
        "int16x8 -1 pp where int8 loses 10 (the rule's edge)",
        "int16x8 equal to fp32",
        200,
        lambda on: dict(
            archs=("v3l", "mobilenet"),
            cells=((0, "fp32"), (0, "int8"), (0, "int16x8")),
            flip=0.02,
            delta=_v({("*", 0, "int8"): -0.10, ("*", 0, "int16x8"): 0.0 if on else -0.01}),
        ),
    ),
    15: (
        "a variant forgetting 18.4 % of the images at random: 10.0 % beyond another seed, the boundary",
        "1 %",
        100,
        lambda on: dict(FORGETTING, forgotten={("mobilenet", 60, "fp32"): 0.01 if on else BOUNDARY_15}),
    ),
    16: (
        "a variant forgetting 10 % of the images, as hard as the test set (right chance 0.513-0.813): the boundary",
        "10 % of hard images (right chance 0.15-0.45)",
        100,
        lambda on: dict(
            FORGETTING, n=5000, forgotten={("mobilenet", 60, "fp32"): 0.10}, forget=_window(0.15 if on else BOUNDARY_16)
        ),  # fmt: skip
    ),
    17: (
        "int8 forgets as the pruning curve does at its Δ (what 50 % pruning forgets: on the curve)",
        "int8 loses as much top-1 on hard images (a third of the PIEs beyond another seed)",
        100,
        lambda on: dict(
            FORGETTING,
            n=3000,
            cells=((0, "fp32"), (50, "fp32"), (90, "fp32"), (0, "int8")),
            forgotten={
                ("mobilenet", 50, "fp32"): 0.06,
                ("mobilenet", 90, "fp32"): 0.15,
                ("mobilenet", 0, "int8"): 0.12 if on else 0.06,
            },
            forget={("mobilenet", 0, "int8"): _window(0.1, 0.5) if on else None},
        ),  # fmt: skip
    ),
    18: (
        "every class changes alike (-5 pp)",
        "one class 30 pp more",
        100,
        lambda on: dict(
            archs=("mobilenet",),
            seeds=(0, 1, 2, 3),
            n=3000,
            populations=True,
            cells=((0, "fp32"), (90, "fp32")),
            delta=_v({("*", 90, "fp32"): (-0.05, {3: -0.30} if on else None)}),
        ),
    ),
    19: (
        "the device 0.2 pp off the host (the rule: 0.1)",
        "equal",
        20,
        lambda on: dict(device_diff=0.0 if on else 0.2),
    ),
    20: (
        "channels cells at exactly the 0.6x goal in both modes",
        "0.4x the dense model's latency (channel pruning measured 0.25x here)",
        200,
        lambda on: dict(
            archs=("mobilenet",),
            seeds=(0, 1, 2),
            cells=((0, "fp32"), ("ch50", "fp32"), (0, "int8"), ("ch50", "int8")),
            latency=lambda a, sp, q: 1000.0 * {0: 1.0, "ch50": 0.4 if on else RATIO}[sp],
        ),
    ),
    21: (
        "sparse-encoded cells at exactly the 0.6x goal",
        "0.4x its latency",
        200,
        lambda on: dict(
            archs=("sparse_mobilenet",),
            seeds=(0, 1, 2),
            cells=((0, "fp32"), (0, "fp32_sparse"), ("xnn90", "fp32_sparse"), ("xnn90", "fp32")),
            latency=lambda a, sp, q: (
                1000.0 * (0.4 if on else RATIO) if sp == "xnn90" and q == "fp32_sparse" else 1000.0
            ),
        ),
    ),
}
