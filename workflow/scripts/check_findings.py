from pqgrid.core.jobs import run_script
from pqgrid.report.findings import check_findings

run_script(
    snakemake.log[0],
    check_findings,
    architectures=snakemake.params.architectures,
    context=snakemake.params.context,
    inputs=snakemake.input,
    out_md=snakemake.output.md,
    out_csv=snakemake.output.csv,
)
