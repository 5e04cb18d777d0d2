from pqgrid.jobs.run import by_hand, run_script
from pqgrid.ship.search import summarize_repair

by_hand(globals())

run_script(
    snakemake.log[0],
    summarize_repair,
    eval_jsons=snakemake.input.metrics,
    reference_jsons=snakemake.input.references,
    keras_jsons=snakemake.input.keras,
    per_class_csvs=[*snakemake.input.per_class, *snakemake.input.reference_per_class],
    prediction_npzs=[*snakemake.input.predictions, *snakemake.input.reference_predictions],
    bench_jsons=snakemake.input.bench,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_per_class=snakemake.output.per_class,
    out_bench=snakemake.output.bench,
)
