from pqgrid.figures import pie_gallery
from pqgrid.jobs import run_script

run_script(
    snakemake.log[0],
    pie_gallery,
    arch=snakemake.wildcards.arch,
    images_csv=snakemake.input.images,
    test_npz=snakemake.input.test,
    manifest=snakemake.input.manifest,
    tiles=snakemake.params.tiles,
    out_png=snakemake.output.png,
)
