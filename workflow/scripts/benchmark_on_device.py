from pqgrid.device import benchmark
from pqgrid.io import run_script

run_script(
    snakemake.log[0],
    benchmark,
    snakemake.input.tflite,
    snakemake.output.bench,
    snakemake.wildcards.device,
    snakemake.params.device,
    snakemake.params.cell,
)
