from pqgrid.convert import convert
from pqgrid.io import run_script

run_script(
    snakemake.log[0],
    convert,
    snakemake.input.model,
    snakemake.input.train,
    snakemake.output.tflite,
    snakemake.params.arch,
    snakemake.wildcards.quant,
    snakemake.params.calibration_samples,
    int(snakemake.wildcards.seed),
    snakemake.threads,
)
