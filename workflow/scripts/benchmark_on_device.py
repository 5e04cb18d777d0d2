from pqgrid.core.jobs import by_hand, run_script
from pqgrid.device.measure import benchmark

by_hand(globals())

run_script(
    snakemake.log[0],
    benchmark,
    tflite=snakemake.input.tflite,
    out_json=snakemake.output.bench,
    name=snakemake.wildcards.device,
    cfg=snakemake.params.device,
    cell=snakemake.params.cell,
)
