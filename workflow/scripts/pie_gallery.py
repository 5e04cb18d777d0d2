from pqgrid.jobs.run import by_hand, run_script
from pqgrid.report.gallery import pie_gallery

by_hand(globals())

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
