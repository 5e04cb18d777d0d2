from pqgrid.io import run_script
from pqgrid.report import plot_figure

run_script(
    snakemake.log[0],
    plot_figure,
    snakemake.wildcards.figure,
    snakemake.input,
    snakemake.params.settings,
    snakemake.output.png,
)
