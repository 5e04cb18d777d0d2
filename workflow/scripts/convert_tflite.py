from pqgrid.convert import convert_cell
from pqgrid.io import run_script

run_script(
    snakemake.log[0],
    convert_cell,
    source=snakemake.input.source,
    train_npz=snakemake.input.train,
    out_tflite=snakemake.output.tflite,
    arch_cfg=snakemake.params.arch,
    mode=snakemake.wildcards.quant,
    calibration_samples=snakemake.params.calibration_samples,
    seed=int(snakemake.wildcards.seed),
    threads=snakemake.threads,
)
