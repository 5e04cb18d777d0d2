"""How much a cell's p50 latency drifts between benchmark jobs on this machine, and how often
the latency findings' rule calls two models of equal latency different. What
tests/simulated_runs.DRIFT is set from:

    .venv/bin/python benchmarks/latency_drift.py docs/results

Two .tflite files of one network (MobileNet alpha 0.25, 32x32, two weight seeds: the same
true latency) are timed alternately, `--jobs` benchmark jobs each (device/measure.benchmark
on the local device: one timing session per job, as the workflow runs it). Writes
latency_drift.csv (one row per job) and latency_drift_summary.csv (what the docs quote: the
relative SD, the share of jobs within 1 % of the median, the slow ones), and prints the
relative SD of the p50 between jobs and the share of comparisons of `--repeats` sessions a
side that the findings' rule (report/claims_device, stats.ratio_interval) calls faster or
slower. `--from-csv` summarises the folder's latency_drift.csv again without timing anything."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _models(folder: Path) -> list:
    from pqgrid.jobs.tfsetup import tensorflow
    from pqgrid.models.builders import build
    from pqgrid.quant.convert import converter_for

    paths = []
    for seed in (0, 1):
        tensorflow(1, seed)  # the weights' seed
        model = build({"builder": "MobileNet", "alpha": 0.25}, 10, (32, 32, 3), None)
        path = folder / f"mobilenet_seed{seed}.tflite"
        path.write_bytes(converter_for(model, "fp32").convert())
        paths.append(path)
    return paths


def measure(jobs: int, num_runs: int):
    import pandas as pd
    from pqgrid.device.measure import benchmark

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = _models(Path(tmp))
        cfg = {"type": "local", "threads": 1, "num_runs": num_runs, "remote_dir": f"{tmp}/dev"}
        for job in range(jobs):
            for model in models:  # alternately, as the workflow spreads a cell's sessions
                record = benchmark(tflite=str(model), out_json=f"{tmp}/bench.json", name="local", cfg=cfg, cell={})
                rows.append({"model": model.stem, "job": job, "p50_us": record["p50_us"]})
    return pd.DataFrame(rows)


def drift(df) -> float:
    """Relative SD of a model's p50 between jobs (of its log, pooled over the models)."""
    import numpy as np

    return float(np.sqrt(df.assign(log=np.log(df.p50_us)).groupby("model").log.var(ddof=1).mean()))


def summary(df):
    """One row per model and one for all jobs: relative SD (drift), the median, the share of
    jobs within 1 % of their model's median, and the jobs more than 10 % slower (share, range)."""
    import pandas as pd

    dev = df.p50_us / df.groupby("model").p50_us.transform("median") - 1
    rows = []
    for name, part in [*df.groupby("model"), ("all", df)]:
        d = dev[part.index]
        slow = d[d > 0.10]
        rows.append({
            "model": name, "jobs": len(part), "relative_sd_pct": 100 * drift(part), "median_us": part.p50_us.median(),
            "min_us": part.p50_us.min(), "max_us": part.p50_us.max(), "within_1pct_pct": 100 * (d.abs() <= 0.01).mean(),
            "slow_pct": 100 * len(slow) / len(part), "slow_low_pct": 100 * slow.min(), "slow_high_pct": 100 * slow.max(),
        })  # fmt: skip
    return pd.DataFrame(rows)


def false_verdicts(df, repeats: int) -> tuple[float, int]:
    """Share of comparisons the findings' rule (stats.ratio_interval) calls unequal, each
    `repeats` consecutive sessions of one model against the same jobs of the other."""
    from pqgrid.evaluate.stats import ratio_interval

    a, b = (g.sort_values("job").p50_us.to_numpy() for _, g in df.groupby("model"))
    chunks = [slice(i, i + repeats) for i in range(0, len(a) - repeats + 1, repeats)]
    calls = [not (lo <= 1 <= hi) for c in chunks for _, lo, hi in [ratio_interval(a[c], b[c])]]
    return sum(calls) / len(calls), len(calls)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder for latency_drift.csv (docs/results)")
    parser.add_argument("--jobs", type=int, default=30, help="benchmark jobs per model (default 30)")
    parser.add_argument("--repeats", type=int, default=3, help="sessions per cell to compare (default 3)")
    parser.add_argument("--num-runs", type=int, default=50, help="timed runs per session (default 50)")
    parser.add_argument("--from-csv", action="store_true", help="summarise OUT/latency_drift.csv; time nothing")
    a = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    import pandas as pd

    if a.from_csv:
        if not (a.out / "latency_drift.csv").exists():
            parser.error(f"{a.out / 'latency_drift.csv'} is missing: run without --from-csv to measure it")
        df = pd.read_csv(a.out / "latency_drift.csv")
    else:
        df = measure(a.jobs, a.num_runs)
        a.out.mkdir(parents=True, exist_ok=True)
        df.to_csv(a.out / "latency_drift.csv", index=False)
    summary(df).to_csv(a.out / "latency_drift_summary.csv", index=False)
    rate, n = false_verdicts(df, a.repeats)
    print(
        f"p50 drift between benchmark jobs on this machine: {100 * drift(df):.1f} % (relative SD, "
        f"{df.job.nunique()} jobs per model); two models of equal latency called unequal in {100 * rate:.0f} % of {n} "
        f"comparisons of {a.repeats} sessions each"
    )


if __name__ == "__main__":
    main()
