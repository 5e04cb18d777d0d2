from pqgrid.core.paths import source_path
from pqgrid.data.prepare import prepare
from pqgrid.jobs.run import by_hand, run_script

by_hand(globals())

d = snakemake.params.dataset
run_script(
    snakemake.log[0],
    prepare,
    source=source_path(d["source"]),
    train_npz=snakemake.output.train,
    test_npz=snakemake.output.test,
    manifest_path=snakemake.output.manifest,
    train_per_class=d.get("train_per_class"),  # absent: every image
    test_per_class=d.get("test_per_class"),
    seed=d["seed"],  # defaults: the schema's (filled in by the Snakefile's validate)
    image_size=snakemake.params.image_size,
    resize=d["resize"],
    test_fraction=d["test_fraction"],
    skip_bad_images=d["skip_bad_images"],
)
