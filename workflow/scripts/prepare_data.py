from pqgrid.data import prepare
from pqgrid.io import run_script

d = snakemake.params.dataset
run_script(
    snakemake.log[0],
    prepare,
    source=d["source"],
    train_npz=snakemake.output.train,
    test_npz=snakemake.output.test,
    manifest_path=snakemake.output.manifest,
    train_per_class=d.get("train_per_class"),
    test_per_class=d.get("test_per_class"),
    seed=d.get("seed", 0),
)
