from pqgrid.evaluate.accuracy import evaluate_keras
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

run_script(
    snakemake.log[0],
    evaluate_keras,
    warm=True,  # needs TensorFlow: fork from the run's warm server (pqgrid/jobs/warm.py)
    model_h5=snakemake.input.model,
    train_npz=snakemake.input.train,
    test_npz=snakemake.input.test,
    manifest=snakemake.input.manifest,
    out_json=snakemake.output.metrics,
    out_predictions=snakemake.output.predictions,
    arch_cfg=snakemake.params.model,
    cell=snakemake.params.cell,
    threads=snakemake.threads,
)
