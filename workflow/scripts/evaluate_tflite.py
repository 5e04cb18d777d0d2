from pqgrid.evaluate.accuracy import evaluate_tflite
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

# Cold on purpose (no warm=True): a LiteRT job imports no TensorFlow, and forking it from
# the warm server measured slower (laptop preset's 96 LiteRT evaluations: 180 job-s warm,
# 169 cold, same files; benchmarks/README.md).
run_script(
    snakemake.log[0],
    evaluate_tflite,
    tflite=snakemake.input.tflite,
    gz=snakemake.input.gz,
    test_npz=snakemake.input.test,
    manifest=snakemake.input.manifest,
    keras_json=snakemake.input.get("keras"),
    reference_json=snakemake.input.get("reference"),
    qat_json=snakemake.input.get("qat"),
    out_json=snakemake.output.metrics,
    out_per_class=snakemake.output.per_class,
    out_layers=snakemake.output.layers,
    out_predictions=snakemake.output.predictions,
    arch_cfg=snakemake.params.model,
    cell=snakemake.params.cell,
    settings=snakemake.params.settings,
    batch_size=snakemake.params.batch_size,
    threads=snakemake.threads,
)
