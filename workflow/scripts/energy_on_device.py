from pqgrid.device.measure import measure_energy
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

run_script(
    snakemake.log[0],
    measure_energy,
    tflite=snakemake.input.tflite,
    out_json=snakemake.output.energy,
    name=snakemake.wildcards.device,
    cfg=snakemake.params.device,
    cell=snakemake.params.cell,
)
