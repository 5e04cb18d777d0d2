from pqgrid.core.jobs import by_hand, run_script
from pqgrid.device.measure import measure_energy

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
