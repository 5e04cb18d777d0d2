"""The full-data MobileNet study's tables and figure (docs/results/thesis-mobilenet.md), from
the files its run wrote:

    .venv/bin/snakemake --cores 2 all --configfile presets/thesis-mobilenet.yaml presets/cifar10-local.yaml
    .venv/bin/python benchmarks/thesis_mobilenet.py runs/thesis-mobilenet docs/results

writes, into the output folder:
- thesis_mobilenet.csv: one row per cell (sparsity 0/90 x fp32/int8): this run's top-1/top-3,
  zeros, file and gzip sizes and p50 latency on each device, beside the thesis' published
  numbers (resources/thesis: Tables 4.1-4.3 and 4.5; the 90 % top-1 and gzip size are only in
  its text, finding 6 and 4, rounded as published);
- thesis_mobilenet_history.csv: the training and fine-tuning curves (trained.history.csv and
  pruned_90.history.csv, per epoch);
- figures/thesis_mobilenet_history.png: test-set accuracy and loss per epoch."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCH, SEED = "mobilenet", 0
# Published only in the thesis' text (resources/thesis/README.md, findings 4 and 6): the
# 90 % model's top-1 ("73 % -> 67 %") and its int8 gzip size ("12 MB -> 0.9 MB").
THESIS_TEXT = {(90, "fp32"): {"thesis_top1_pct": 67.0}, (90, "int8"): {"thesis_gzip_mb": 0.9}}


def cells(run: Path):
    """This run's four cells beside the thesis' numbers, one row each."""
    import pandas as pd

    tables = run / "results" / "tables"
    s = pd.read_csv(tables / "summary.csv")
    s = s[(s.arch == ARCH) & (s.seed == SEED)].copy()
    s["sparsity"] = s.sparsity.astype(int)
    b = pd.read_csv(tables / "bench.csv")
    b = b[(b.arch == ARCH) & (b.seed == SEED)].copy()
    b["sparsity"] = b.sparsity.astype(int)
    lat = b.pivot_table(index=["sparsity", "quant"], columns="device", values="p50_us")
    lat.columns = [f"p50_us_{dev}" for dev in lat.columns]
    out = pd.DataFrame(
        {
            "arch": s.arch,
            "sparsity": s.sparsity,
            "quant": s.quant,
            "top1_pct": 100 * s.top1,
            "top3_pct": 100 * s.top3,
            "zero_fraction_pct": 100 * s.tflite_kernel_sparsity,
            "file_mb": s.file_bytes / 1e6,
            "gzip_mb": s.gzip_bytes / 1e6,
            "test_images": s.test_images,
        }
    ).merge(lat.reset_index(), on=["sparsity", "quant"], how="left")
    thesis = _thesis_rows()
    out = out.merge(thesis, on=["sparsity", "quant"], how="left")
    return out.sort_values(["sparsity", "quant"]).reset_index(drop=True)


def _thesis_rows():
    """The thesis' MobileNet numbers per cell (resources/thesis; its MB are 10^6 bytes: its fp32
    MobileNet of 12.8453 MB is this run's 12,844,256-byte file within 0.01 %)."""
    import pandas as pd

    t = ROOT / "resources" / "thesis"
    t41 = pd.read_csv(t / "table_4_1_training.csv").set_index("architecture").loc[ARCH]
    t42 = pd.read_csv(t / "table_4_2_fp32_on_pi4.csv").set_index("architecture").loc[ARCH]
    t43 = pd.read_csv(t / "table_4_3_int8_on_pi4.csv").set_index("architecture").loc[ARCH]
    t45 = pd.read_csv(t / "table_4_5_pruned_fp32_on_pi4.csv")
    t45 = t45[(t45.architecture == ARCH) & (t45.target_sparsity == 90)].iloc[0]
    rows = [
        {"sparsity": 0, "quant": "fp32", "thesis_top1_pct": 100 * t41.top1_test, "thesis_top3_pct": 100 * t41.top3_test,
         "thesis_file_mb": t42.file_mb, "thesis_pi4_us": t42.inference_us},
        {"sparsity": 0, "quant": "int8", "thesis_top1_pct": 100 * t43.top1_test, "thesis_top3_pct": 100 * t43.top3_test,
         "thesis_file_mb": t43.file_mb, "thesis_pi4_us": t43.inference_us},
        {"sparsity": 90, "quant": "fp32", "thesis_zero_fraction_pct": 100 * t45.exact_sparsity,
         "thesis_file_mb": t45.file_mb, "thesis_pi4_us": t45.inference_us},
        {"sparsity": 90, "quant": "int8"},
    ]  # fmt: skip
    for row in rows:
        row.update(THESIS_TEXT.get((row["sparsity"], row["quant"]), {}))
    return pd.DataFrame(rows)


def history(run: Path):
    """Per-epoch curves of the training and of the 90 % fine-tuning."""
    import pandas as pd

    models = run / "results" / "models" / ARCH / f"seed{SEED}"
    parts = []
    for stage, name in (("training", "trained"), ("pruning to 90 %", "pruned_90")):
        h = pd.read_csv(models / f"{name}.history.csv")
        parts.append(h.assign(stage=stage))
    return pd.concat(parts, ignore_index=True)


def plot_history(h, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    long = h.melt(id_vars=["stage", "epoch"], value_vars=["accuracy", "val_accuracy", "val_loss"])
    long["set"] = long.variable.map({"accuracy": "train", "val_accuracy": "test", "val_loss": "test"})
    long["metric"] = long.variable.map({"accuracy": "top-1", "val_accuracy": "top-1", "val_loss": "loss"})
    grid = sns.relplot(data=long, x="epoch", y="value", hue="set", style="stage", col="metric", kind="line",
                       marker="o", height=3.2, aspect=1.3, facet_kws={"sharey": False})  # fmt: skip
    grid.set_titles("{col_name} per epoch")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    grid.savefig(out_png, dpi=110, metadata={"Software": None})
    plt.close("all")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    p.add_argument("run", type=Path, help="the preset's run folder (runs/thesis-mobilenet)")
    p.add_argument("out", type=Path, help="folder for the CSVs and figures/ (docs/results)")
    a = p.parse_args(argv)
    summary = a.run / "results" / "tables" / "summary.csv"
    if not summary.is_file():
        p.error(f"{summary} is missing: run the preset first (the command above)")
    table, curves = cells(a.run), history(a.run)
    a.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.out / "thesis_mobilenet.csv", index=False, float_format="%.6g")
    curves.to_csv(a.out / "thesis_mobilenet_history.csv", index=False, float_format="%.6g")
    plot_history(curves, a.out / "figures" / "thesis_mobilenet_history.png")
    print(table.to_string())


if __name__ == "__main__":
    main()
