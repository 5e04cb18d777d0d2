from pqgrid.data import prepare
from pqgrid.io import run_script

d = snakemake.params.dataset
run_script(
    snakemake.log[0],
    prepare,
    d["source"],
    snakemake.output.train,
    snakemake.output.test,
    snakemake.output.manifest,
    d.get("train_per_class"),
    d.get("test_per_class"),
    d.get("seed", 0),
)
