from pqgrid.device.setup import setup_device
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

run_script(
    snakemake.log[0],
    setup_device,
    name=snakemake.wildcards.device,
    cfg=snakemake.params.device,
    out_json=snakemake.output.setup,
)
