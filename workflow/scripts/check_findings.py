from pqgrid.jobs.run import by_hand, run_script
from pqgrid.report.findings import check_findings

by_hand(globals())

run_script(
    snakemake.log[0],
    check_findings,
    architectures=snakemake.params.architectures,
    context=snakemake.params.context,
    inputs=snakemake.input,
    out_md=snakemake.output.md,
    out_csv=snakemake.output.csv,
    out_html=snakemake.output.html,
)
