from pqgrid.figures import plot_figure
from pqgrid.jobs import run_script

run_script(
    snakemake.log[0],
    plot_figure,
    name=snakemake.wildcards.figure,
    inputs=snakemake.input,
    settings=snakemake.params.settings,
    out_png=snakemake.output.png,
)
