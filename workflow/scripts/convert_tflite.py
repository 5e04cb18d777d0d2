from pqgrid.jobs.run import by_hand, run_script
from pqgrid.quant.convert import convert_cell

by_hand(globals())

run_script(
    snakemake.log[0],
    convert_cell,
    warm=True,  # needs TensorFlow: fork from the run's warm server (pqgrid/jobs/warm.py)
    source=snakemake.input.source,
    train_npz=snakemake.input.train,
    out_tflite=snakemake.output.tflite,
    out_gz=snakemake.output.gz,
    arch_cfg=snakemake.params.model,
    mode=snakemake.wildcards.quant,
    calibration_samples=snakemake.params.calibration_samples,
    seed=int(snakemake.wildcards.seed),
    threads=snakemake.threads,
)
