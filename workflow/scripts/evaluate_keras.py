from pqgrid.io import run_script
from pqgrid.stages import keras_eval

run_script(
    snakemake.log[0],
    keras_eval,
    snakemake.input.model,
    snakemake.input.train,
    snakemake.input.test,
    snakemake.input.manifest,
    snakemake.output.metrics,
    snakemake.params.arch,
    snakemake.params.cell,
    snakemake.threads,
)
