from pqgrid.jobs.run import by_hand, run_script
from pqgrid.ship.repair import repair_tflite

by_hand(globals())

run_script(
    snakemake.log[0],
    repair_tflite,
    fp32_tflite=snakemake.input.fp32,
    train_npz=snakemake.input.train,
    layer_error_csv=snakemake.input.get("layer_error"),
    out_tflite=snakemake.output.tflite,
    out_gz=snakemake.output.gz,
    out_json=snakemake.output.record,
    cell=snakemake.params.cell,
    arch_cfg=snakemake.params.model,
    calibration_samples=snakemake.params.calibration_samples,
    seed=snakemake.params.cell["seed"],
)
