from pqgrid.jobs.run import by_hand, run_script
from pqgrid.quant.layer_error import layer_error

by_hand(globals())

run_script(
    snakemake.log[0],
    layer_error,
    warm=True,  # needs TensorFlow: fork from the run's warm server (pqgrid/jobs/warm.py)
    fp32_tflite=snakemake.input.fp32,
    train_npz=snakemake.input.train,
    test_npz=snakemake.input.test,
    out_csv=snakemake.output.csv,
    arch_cfg=snakemake.params.model,
    calibration_samples=snakemake.params.calibration_samples,
    samples=snakemake.params.samples,
    seed=int(snakemake.wildcards.seed),
    threads=snakemake.threads,
)
