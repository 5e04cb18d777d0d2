from pqgrid.io import run_script
from pqgrid.stages import prune_model

run_script(
    snakemake.log[0],
    prune_model,
    snakemake.input.model,
    snakemake.input.train,
    snakemake.input.test,
    snakemake.input.manifest,
    snakemake.output.model,
    snakemake.output.history,
    snakemake.params.arch,
    snakemake.params.pruning,
    int(snakemake.wildcards.seed),
    snakemake.threads,
)
