from pqgrid.evaluate.summary import summarize
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

run_script(
    snakemake.log[0],
    summarize,
    eval_jsons=snakemake.input.metrics,
    keras_jsons=snakemake.input.keras,
    per_class_csvs=snakemake.input.per_class,
    device_eval_jsons=snakemake.input.device_eval,
    prediction_npzs=snakemake.input.predictions,
    out_csv=snakemake.output.csv,
    out_md=snakemake.output.md,
    out_per_class=snakemake.output.per_class,
)
