"""Compare two finished run folders: every .tflite byte for byte, and summary.csv's metrics
(top-1/top-3, sizes, sparsity) cell by cell. For refactors that must not change results:

    .venv/bin/python tests/compare_runs.py <old run folder> <new run folder>

Latency and memory are measurements, not results of the code: they are not compared."""

import argparse
import sys
from pathlib import Path

KEY = ["arch", "seed", "sparsity", "quant"]


def compare(old: Path, new: Path) -> bool:
    import pandas as pd

    tflites = sorted(p.relative_to(old) for p in old.rglob("*.tflite"))
    same = sum((new / p).is_file() and (old / p).read_bytes() == (new / p).read_bytes() for p in tflites)
    print(f".tflite files: {same}/{len(tflites)} byte-identical")
    a = pd.read_csv(old / "results/tables/summary.csv")
    b = pd.read_csv(new / "results/tables/summary.csv")
    metrics = [
        c for c in a.columns if c not in KEY and any(k in c for k in ("top1", "top3", "size", "sparsity", "zero"))
    ]
    both = a.merge(b, on=KEY, suffixes=("_old", "_new"))
    differ = [c for c in metrics if f"{c}_new" in both and not both[f"{c}_old"].equals(both[f"{c}_new"])]
    print(f"summary.csv: {len(both)} of {len(a)} cells, {len(metrics)} metric columns; differing: {differ or 'none'}")
    return same == len(tflites) and len(both) == len(a) == len(b) and not differ


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="the run folder before the change (holds results/)")
    parser.add_argument("new", type=Path, help="the run folder after it")
    args = parser.parse_args()
    for folder in (args.old, args.new):
        if not (folder / "results/tables/summary.csv").is_file():
            parser.error(f"{folder}: no results/tables/summary.csv - give a finished run folder (e.g. runs/smoke)")
    sys.exit(0 if compare(args.old, args.new) else 1)
