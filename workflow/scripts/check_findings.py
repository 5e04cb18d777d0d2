from pqgrid.findings import check_findings
from pqgrid.jobs import run_script

run_script(
    snakemake.log[0],
    check_findings,
    architectures=snakemake.params.architectures,
    context=snakemake.params.context,
    inputs=snakemake.input,
    out_md=snakemake.output.md,
    out_csv=snakemake.output.csv,
)
