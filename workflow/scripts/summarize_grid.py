from pqgrid.io import run_script
from pqgrid.summary import summarize

run_script(
    snakemake.log[0],
    summarize,
    snakemake.input.metrics,
    snakemake.input.keras,
    snakemake.input.per_class,
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.per_class,
)
