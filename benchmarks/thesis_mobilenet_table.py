"""The full-data MobileNet study's table and figure (docs/results/thesis-mobilenet.md) from
the files its run wrote, beside the thesis' published numbers:

    .venv/bin/python benchmarks/thesis_mobilenet_table.py runs/thesis-mobilenet docs/results

writes thesis-mobilenet.csv (one row per cell: this run's top-1/top-3, sizes, exact
sparsity, p50 latency on `local`; the thesis' value beside where it published one) and
figures/thesis_mobilenet_history.png (the training run's loss and top-1 per epoch, train
and test, from trained.history.csv)."""

import argparse
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
THESIS = ROOT / "resources" / "thesis"
MB = 1_000_000


def thesis_values() -> dict:
    """(sparsity, quant) -> the thesis' MobileNet numbers (Tables 4.1, 4.2, 4.3, 4.5)."""
    t41 = pd.read_csv(THESIS / "table_4_1_training.csv").set_index("architecture").loc["mobilenet"]
    t42 = pd.read_csv(THESIS / "table_4_2_fp32_on_pi4.csv").set_index("architecture").loc["mobilenet"]
    t43 = pd.read_csv(THESIS / "table_4_3_int8_on_pi4.csv").set_index("architecture").loc["mobilenet"]
    t45 = pd.read_csv(THESIS / "table_4_5_pruned_fp32_on_pi4.csv")
    t45 = t45[(t45.architecture == "mobilenet") & (t45.target_sparsity == 90)].iloc[0]
    return {
        ("0", "fp32"): {"thesis_top1": t41.top1_test, "thesis_top3": t41.top3_test, "thesis_file_mb": t42.file_mb,
                        "thesis_table": "4.1, 4.2"},
        ("0", "int8"): {"thesis_top1": t43.top1_test, "thesis_top3": t43.top3_test, "thesis_file_mb": t43.file_mb,
                        "thesis_table": "4.3"},
        ("90", "fp32"): {"thesis_exact_sparsity": t45.exact_sparsity, "thesis_file_mb": t45.file_mb,
                         "thesis_table": "4.5"},
    }  # fmt: skip


def table(run: Path) -> pd.DataFrame:
    s = pd.read_csv(run / "results/tables/summary.csv", dtype={"sparsity": str})
    b = pd.read_csv(run / "results/tables/bench.csv", dtype={"sparsity": str})
    key = ["arch", "seed", "sparsity", "quant"]
    rows = s.merge(b[b.device == "local"][[*key, "p50_us"]], on=key, how="left")
    out = rows[key].copy()
    out["top1"], out["top3"] = rows.top1, rows.top3
    out["file_mb"], out["gzip_mb"] = rows.file_bytes / MB, rows.gzip_bytes / MB
    out["exact_sparsity"] = rows.zero_fraction
    out["local_p50_us"] = rows.p50_us
    thesis = thesis_values()
    extra = pd.DataFrame([thesis.get((sp, q), {}) for sp, q in zip(out.sparsity, out.quant, strict=True)])
    return pd.concat([out.reset_index(drop=True), extra], axis=1).sort_values(["sparsity", "quant"])


def history_figure(run: Path, png: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = pd.read_csv(run / "results/models/mobilenet/seed0/trained.history.csv")
    epoch = h.epoch + 1 if "epoch" in h else range(1, len(h) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(epoch, h.loss, marker=".", label="train")
    ax1.plot(epoch, h.val_loss, marker=".", label="test (EarlyStopping reads it)")
    ax1.set(xlabel="epoch", ylabel="loss", title="MobileNet, all of CIFAR-10: loss")
    acc = "accuracy" if "accuracy" in h else "sparse_categorical_accuracy"
    ax2.plot(epoch, 100 * h[acc], marker=".", label="train")
    ax2.plot(epoch, 100 * h[f"val_{acc}"], marker=".", label="test")
    ax2.axhline(72.77, color="grey", ls="--", lw=1, label="thesis test top-1 (Table 4.1)")
    ax2.set(xlabel="epoch", ylabel="top-1 (%)", title="top-1")
    for ax in (ax1, ax2):
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the preset's run folder (runs/thesis-mobilenet)")
    parser.add_argument("out", type=Path, help="where the CSV and the figure go (docs/results)")
    args = parser.parse_args()
    if not (args.run / "results/tables/summary.csv").is_file():
        parser.error(f"{args.run}: no results/tables/summary.csv - run the preset first (its header says how)")
    t = table(args.run)
    t.to_csv(args.out / "thesis-mobilenet.csv", index=False)
    history_figure(args.run, args.out / "figures" / "thesis_mobilenet_history.png")
    print(t.to_string())
