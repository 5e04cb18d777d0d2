from pqgrid.core.jobs import run_script
from pqgrid.device.measure import benchmark

run_script(
    snakemake.log[0],
    benchmark,
    tflite=snakemake.input.tflite,
    out_json=snakemake.output.bench,
    name=snakemake.wildcards.device,
    cfg=snakemake.params.device,
    cell=snakemake.params.cell,
)
