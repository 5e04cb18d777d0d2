from pqgrid.device.measure import benchmark
from pqgrid.jobs.run import by_hand, run_script

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
