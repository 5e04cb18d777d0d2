from pqgrid.evaluate.pie import pie_stage
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

run_script(
    snakemake.log[0],
    pie_stage,
    arch=snakemake.wildcards.arch,
    reference=snakemake.input.reference,
    reference_seeds=snakemake.params.reference_seeds,
    variants=snakemake.input.variants,
    variant_cells=snakemake.params.variant_cells,
    manifest=snakemake.input.manifest,
    out_summary=snakemake.output.summary,
    out_images=snakemake.output.images,
    out_per_class=snakemake.output.per_class,
    alpha=snakemake.params.alpha,
)
