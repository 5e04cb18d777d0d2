from pqgrid.device import measure_energy
from pqgrid.jobs import run_script

run_script(
    snakemake.log[0],
    measure_energy,
    tflite=snakemake.input.tflite,
    out_json=snakemake.output.energy,
    name=snakemake.wildcards.device,
    cfg=snakemake.params.device,
    cell=snakemake.params.cell,
)
