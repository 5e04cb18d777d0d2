from pqgrid.jobs.run import by_hand, run_script
from pqgrid.quant.layer_error import collect_layer_error

by_hand(globals())

run_script(
    snakemake.log[0],
    collect_layer_error,
    csvs=snakemake.input.csvs,
    cells=snakemake.params.cells,
    out_csv=snakemake.output.csv,
)
