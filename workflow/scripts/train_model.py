from pqgrid.jobs.run import by_hand, run_script
from pqgrid.models.train import train_model

by_hand(globals())

run_script(
    snakemake.log[0],
    train_model,
    warm=True,  # needs TensorFlow: fork from the run's warm server (pqgrid/jobs/warm.py)
    train_npz=snakemake.input.train,
    test_npz=snakemake.input.test,
    manifest=snakemake.input.manifest,
    model_out=snakemake.output.model,
    history_csv=snakemake.output.history,
    arch_cfg=snakemake.params.model,
    settings=snakemake.params.training,
    seed=int(snakemake.wildcards.seed),
    threads=snakemake.threads,
)
