from pqgrid.evaluate.summary import concat_csvs
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

run_script(
    snakemake.log[0],
    concat_csvs,
    pairs=[
        (snakemake.input.summary, snakemake.output.csv),
        (snakemake.input.per_class, snakemake.output.per_class),
    ],
)
