import os

from pqgrid.jobs.run import by_hand, run_script
from pqgrid.report.mlflow_export import export_mlflow

by_hand(globals())

run_script(
    snakemake.log[0],
    export_mlflow,
    summary_csv=snakemake.input.summary,
    per_class_csv=snakemake.input.per_class,
    bench_csv=snakemake.input.bench[0] if snakemake.input.bench else None,
    tflites=dict(zip(snakemake.params.cells, snakemake.input.tflites, strict=True)),
    run_dir=os.getcwd(),  # the run folder: jobs run in it
    out_json=snakemake.output.json,
)
