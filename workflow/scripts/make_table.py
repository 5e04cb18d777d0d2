from pqgrid.io import run_script
from pqgrid.report import make_table

run_script(
    snakemake.log[0],
    make_table,
    snakemake.wildcards.table,
    snakemake.input,
    snakemake.params.thesis_dir,
    snakemake.output.csv,
    snakemake.output.md,
)
