from pqgrid.jobs.run import by_hand, run_script
from pqgrid.report.figures import plot_figure

by_hand(globals())

run_script(
    snakemake.log[0],
    plot_figure,
    name=snakemake.wildcards.figure,
    inputs=snakemake.input,
    settings=snakemake.params.settings,
    out_png=snakemake.output.png,
)
