from pqgrid.io import run_script
from pqgrid.report import check_findings

run_script(
    snakemake.log[0],
    check_findings,
    snakemake.input,
    snakemake.params.context,
    snakemake.output.md,
    snakemake.output.csv,
)
