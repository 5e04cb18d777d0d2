from pqgrid.evaluate import evaluate_tflite
from pqgrid.io import run_script

run_script(
    snakemake.log[0],
    evaluate_tflite,
    snakemake.input.tflite,
    snakemake.input.gz,
    snakemake.input.test,
    snakemake.input.manifest,
    snakemake.input.keras,
    snakemake.output.metrics,
    snakemake.output.per_class,
    snakemake.output.layers,
    snakemake.params.arch,
    snakemake.params.cell,
    snakemake.params.settings,
    snakemake.params.batch_size,
    snakemake.threads,
)
