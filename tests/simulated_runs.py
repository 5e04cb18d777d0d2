"""Simulated runs for the claims' null and power tests (tests/test_findings_null.py): the
tables a run writes (summary, bench, per-class, PIE), generated from per-image answers with a
stated true effect and the noise a real run has - answers that change between two models of
one seed, timing noise, counting noise of PIEs. Test data, never results.

    .venv/bin/python tests/simulated_runs.py /tmp/sim --delta -2     # writes /tmp/sim/*.csv

writes one simulated run's summary.csv, bench.csv and per_class.csv (columns as a real
run's results/tables/) into the folder it is given, to try a claim on by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = [f"c{i}" for i in range(10)]


def measured_drift() -> np.ndarray:
    """How a session's log p50 strays from its model's median on this machine: 60 benchmark
    jobs of two equal models (docs/results/latency_drift.csv, benchmarks/latency_drift.py;
    relative SD 6.6 %: most jobs within 1 %, one in five 13-26 % slower). The simulated
    sessions draw from these, so the null suite meets the drift as it comes here."""
    df = pd.read_csv(Path(__file__).resolve().parents[1] / "docs" / "results" / "latency_drift.csv")
    logs = np.log(df.p50_us)
    return (logs - logs.groupby(df.model).transform("median")).to_numpy()


BUILDERS = {
    "mobilenet": {"builder": "MobileNet"},
    "b0": {"builder": "EfficientNetB0"},
    "v3l": {"builder": "MobileNetV3Large"},
    "v3s": {"builder": "MobileNetV3Small"},
    "v3s_min": {"builder": "MobileNetV3Small", "minimalistic": True},
    "sparse_mobilenet": {"builder": "SparseMobileNet"},
}


def answers(rng, y, p):
    """One model's labels: right with probability p, else a random wrong class."""
    wrong = (y + rng.integers(1, len(CLASSES), len(y))) % len(CLASSES)
    return np.where(rng.random(len(y)) < p, y, wrong)


def derive(rng, parent, y, p, flip, delta=0.0, class_delta=None):
    """A compressed model's labels from its parent's: a share `flip` of the answers redrawn
    (a second draw of the same accuracy), then a true change of top-1 by `delta` (and
    `class_delta[c]` more in class c) moving right answers to wrong or back."""
    labels = parent.copy()
    redraw = rng.random(len(y)) < flip
    labels[redraw] = answers(rng, y[redraw], p[redraw] if np.ndim(p) else p)
    for c in range(len(CLASSES)):
        d = delta + (class_delta or {}).get(c, 0.0)
        idx = np.flatnonzero(y == c)
        right = idx[labels[idx] == c]
        wrong = idx[labels[idx] != c]
        k = int(round(abs(d) * len(idx)))
        if d < 0:
            labels[rng.choice(right, min(k, len(right)), replace=False)] = (c + 1) % len(CLASSES)
        elif d > 0:
            labels[rng.choice(wrong, min(k, len(wrong)), replace=False)] = c
    return labels


def run_tables(rng, *, archs=("mobilenet", "v3l"), seeds=(0,), cells=((0, "fp32"), (0, "int8")), n=3000, p=0.7,
               flip=0.05, delta=None, size=None, latency=None, zeros_short=0.02, pqat_drop=0.0, device_diff=0.0,
               populations=False, pie_flip=None, forgotten=None, forget=None, unequal=None, repeats=3,
               drift=None):  # fmt: skip
    """summary, bench, per_class (and pie, pie_per_class with `populations`) of a simulated run.

    delta(arch, sparsity, quant) -> (true Δ top-1, {class: extra Δ}) against the unpruned
    fp32 model; size(arch, sparsity, quant) -> (file bytes, gzip bytes); latency(arch,
    sparsity, quant) -> true µs. Timing: `repeats` sessions per cell, each its own benchmark
    job (as benchmark.smk runs them): its p50 the true latency strayed as measured here
    (measured_drift; `drift`: a lognormal relative SD instead), the p90 5 % above the p50.
    forgotten[(arch, sparsity, quant)]: a share of the test images every seed's model of that
    cell answers wrong the same way (systematic forgetting: what makes PIEs), drawn with
    weights forget(right chance) or forget[(arch, sparsity, quant)](right chance) (default:
    any image alike). unequal: images of unequal difficulty, each image's chance of a right
    answer a Beta draw of mean `p` and this concentration (2: many images nearly always
    right, some nearly never); None: every image equally hard."""
    delta = delta or (lambda a, sp, q: (0.0, None))
    size = size or (lambda a, sp, q: (4e6 * (0.28 if q != "fp32" else 1.0),) * 2)
    latency = latency or (lambda a, sp, q: 1000.0)
    strays = measured_drift() if drift is None else None
    y = np.arange(n) % len(CLASSES)
    if unequal:
        p = np.random.default_rng(n).beta(p * unequal, (1 - p) * unequal, n)  # the same images every run
    rows, bench, per_class, labels = [], [], [], {}
    for arch in archs:
        for seed in seeds:
            parent = answers(rng, y, p)
            for sp, q in cells:
                pct = int("".join(ch for ch in str(sp) if ch.isdigit()) or 0)  # "ch50": a method's cell
                d, cd = delta(arch, sp, q)
                f = (pie_flip or {}).get((arch, sp, q), flip)
                lab = parent.copy() if (sp, q) == (0, "fp32") else derive(rng, parent, y, p, f, d, cd)
                share = (forgotten or {}).get((arch, sp, q), 0.0)
                if share:  # the same images every seed
                    how = forget.get((arch, sp, q)) if isinstance(forget, dict) else forget
                    weight = np.broadcast_to(how(p) if how else 1.0, n).astype(float)
                    same = np.random.default_rng([pct, len(q)]).choice(n, int(round(share * n)), replace=False,
                                                                        p=weight / weight.sum())  # fmt: skip
                    lab[same] = (y[same] + 1) % len(CLASSES)
                labels[arch, seed, sp, q] = lab
                right, was = lab == y, parent == y
                file_b, gz = size(arch, sp, q)
                rows.append(dict(
                    arch=arch, seed=seed, sparsity=sp, quant=q, top1=right.mean(), test_images=n,
                    chance_top1=1 / len(CLASSES), parent_top1=was.mean(),
                    gained_vs_fp32=int((right & ~was).sum()), lost_vs_fp32=int((was & ~right).sum()),
                    file_bytes=file_b, gzip_bytes=gz, zero_fraction=max(pct / 100 - zeros_short, 0.0),
                    tflite_kernel_sparsity=pct / 100 - (pqat_drop if q == "qat" else 0.0),
                    kernel_sparsity_before_qat=pct / 100,
                ))  # fmt: skip
                for c in range(len(CLASSES)):
                    m = y == c
                    per_class.append(dict(arch=arch, seed=seed, sparsity=sp, quant=q, **{"class": CLASSES[c]},
                                          correct=int(right[m].sum()), support=int(m.sum()), accuracy=right[m].mean()))  # fmt: skip
                # each session its own benchmark job, straying as measured (or lognormally by `drift`)
                stray = rng.choice(strays, repeats) if drift is None else rng.normal(0, drift, repeats)
                sessions = latency(arch, sp, q) * np.exp(stray)
                p50 = float(np.median(sessions))
                bench.append(dict(
                    arch=arch, seed=seed, sparsity=sp, quant=q, device="pi", p50_us=p50, p90_us=1.05 * p50,
                    session_p50_us=";".join(f"{x:.3f}" for x in sessions),
                    latency_us=1.03 * p50, ram_delta_mb=10 * (1 + rng.normal(0, 0.005)),
                    top1_device=right.mean() + device_diff / 100, top1_host_diff_pp=device_diff,
                    answers_differing_from_host=int(round(abs(device_diff) / 100 * n)),
                ))  # fmt: skip
    tables = [pd.DataFrame(rows), pd.DataFrame(bench), pd.DataFrame(per_class)]
    if populations:
        tables += _pie_tables(labels, archs, seeds, cells, y)
    return tables


def _pie_tables(labels, archs, seeds, cells, y):
    from pqgrid.evaluate import pie

    summaries, per_class = [], []
    pred = lambda lab: {"label": lab, "true": y, "test_sha256": "sim", "confidence": np.ones(len(y))}  # noqa: E731
    for arch in archs:
        ref = [pred(labels[arch, s, 0, "fp32"]) for s in seeds]
        variants = {(str(sp), q): [(s, pred(labels[arch, s, sp, q])) for s in seeds] for sp, q in cells}
        summary, _, pc = pie.analyse(ref, list(seeds), variants, CLASSES, resamples=100)
        summaries.append(summary.assign(arch=arch))
        per_class.append(pc.assign(arch=arch))
    return [pd.concat(summaries, ignore_index=True), pd.concat(per_class, ignore_index=True)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where the tables go (created)")
    parser.add_argument("--delta", type=float, default=0.0, help="true change of int8's top-1 in pp (default 0)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per architecture (default 1)")
    parser.add_argument("--rng", type=int, default=0, help="the generator's seed (default 0)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
    rng = np.random.default_rng(args.rng)
    tables = run_tables(
        rng, seeds=tuple(range(args.seeds)), delta=lambda a, sp, q: (args.delta / 100 if q == "int8" else 0.0, None)
    )
    args.folder.mkdir(parents=True, exist_ok=True)
    for name, table in zip(("summary", "bench", "per_class"), tables, strict=True):
        table.to_csv(args.folder / f"{name}.csv", index=False)
        print(args.folder / f"{name}.csv")


if __name__ == "__main__":
    main()
