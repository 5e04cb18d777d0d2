from pqgrid.io import run_script
from pqgrid.stages import train_model

run_script(
    snakemake.log[0],
    train_model,
    snakemake.input.train,
    snakemake.input.test,
    snakemake.input.manifest,
    snakemake.output.model,
    snakemake.output.history,
    snakemake.params.arch,
    snakemake.params.training,
    int(snakemake.wildcards.seed),
    snakemake.threads,
)
