"""The "Your model" study's table (docs/results/your-model.md) from the files its runs wrote:

    .venv/bin/python benchmarks/your_model_table.py runs/outside runs/your-model-cifar docs/results/your_model_cifar.csv

One row per pqgrid cell (summary.csv: top-1, file and gzip sizes, sparsity; bench.csv:
p50/p90 latency on each device) and one per conversion the user made outside pqgrid
(outside.json: Keras, their own fp32 and int8 .tflite)."""

import argparse
import json
from pathlib import Path

import pandas as pd


def table(outside: Path, run: Path) -> pd.DataFrame:
    s = pd.read_csv(run / "results/tables/summary.csv")
    b = pd.read_csv(run / "results/tables/bench.csv")
    key = ["arch", "seed", "sparsity", "quant"]
    lat = b.pivot_table(index=key, columns="device", values=["p50_us", "p90_us"])
    lat.columns = [f"{dev}_{what}" for what, dev in lat.columns]
    rows = s.merge(lat.reset_index(), on=key, how="left")
    rows["given_as"] = rows.builder.map({"model file": "Keras file", "tflite file": ".tflite file"})
    keep = ["arch", "given_as", "sparsity", "quant", "top1", "file_bytes", "gzip_bytes", "tflite_kernel_sparsity"]
    rows = rows[keep + [c for c in rows.columns if c.endswith(("_p50_us", "_p90_us"))]]
    o = json.loads((outside / "outside.json").read_text())
    own = pd.DataFrame(
        [
            {"arch": "outside pqgrid", "given_as": "Keras model (tf_keras)", "quant": "fp32", "top1": o["keras_top1"]},
            {"arch": "outside pqgrid", "given_as": "own TFLiteConverter", "quant": "fp32", "top1": o["own_fp32_tflite_top1"]},
            {"arch": "outside pqgrid", "given_as": "own TFLiteConverter", "quant": "int8", "top1": o["own_int8_top1"],
             "file_bytes": o["own_int8_bytes"]},
        ]
    )  # fmt: skip
    return pd.concat([own, rows], ignore_index=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("outside", type=Path, help="the run folder of benchmarks/train_outside.py (outside.json)")
    parser.add_argument("run", type=Path, help="the pqgrid run folder of the your-model preset")
    parser.add_argument("out_csv", type=Path, help="the table to write")
    args = parser.parse_args()
    out = table(args.outside, args.run)
    out.to_csv(args.out_csv, index=False)
    print(out.to_string())
