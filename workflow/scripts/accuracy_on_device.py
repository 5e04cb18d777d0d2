from pqgrid.core.catalog import input_scaling
from pqgrid.data.arrays import load_manifest
from pqgrid.device.measure import device_accuracy
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

run_script(
    snakemake.log[0],
    device_accuracy,
    tflite=snakemake.input.tflite,
    test_npz=snakemake.input.test,
    host_json=snakemake.input.host,
    host_predictions=snakemake.input.host_predictions,
    out_json=snakemake.output.metrics,
    out_per_class=snakemake.output.per_class,
    out_predictions=snakemake.output.predictions,
    name=snakemake.wildcards.device,
    cfg=snakemake.params.device,
    cell=snakemake.params.cell,
    scaling=input_scaling(snakemake.params.model),
    batch_size=snakemake.params.batch_size,
    classes=load_manifest(snakemake.input.manifest)["classes"],
    arch_cfg=snakemake.params.model,
)
