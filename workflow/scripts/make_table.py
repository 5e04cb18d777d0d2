from pathlib import Path

from pqgrid.jobs.run import by_hand, run_script
from pqgrid.report.tables import make_table

by_hand(globals())

run_script(
    snakemake.log[0],
    make_table,
    inputs=snakemake.input,
    name=snakemake.wildcards.table,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_html=snakemake.output.html,
    # report.thesis_dir is relative to the workflow's folder (two above this script's)
    thesis_dir=Path(snakemake.scriptdir).parents[1] / snakemake.params.thesis_dir
    if snakemake.params.thesis_dir
    else None,
)
