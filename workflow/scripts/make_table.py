from pqgrid.io import run_script
from pqgrid.tables import make_table

run_script(
    snakemake.log[0],
    make_table,
    inputs=snakemake.input,
    name=snakemake.wildcards.table,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    thesis_dir=snakemake.params.thesis_dir,
)
