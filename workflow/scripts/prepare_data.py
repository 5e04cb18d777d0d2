from pqgrid.config import source_path
from pqgrid.data import prepare
from pqgrid.jobs import run_script

d = snakemake.params.dataset
run_script(
    snakemake.log[0],
    prepare,
    source=source_path(d["source"]),
    train_npz=snakemake.output.train,
    test_npz=snakemake.output.test,
    manifest_path=snakemake.output.manifest,
    train_per_class=d.get("train_per_class"),
    test_per_class=d.get("test_per_class"),
    seed=d.get("seed", 0),
    image_size=snakemake.params.image_size,
    resize=d.get("resize", "crop"),
    test_fraction=d.get("test_fraction", 0.2),
    skip_bad_images=d.get("skip_bad_images", False),
)
