rule prepare_data:
    """Load the configured source once into arrays every later job reads (fast, no
    re-decoding), with a manifest (classes, counts, source sha256) for provenance. Images
    are made square at dataset.image_size here, once, not in every epoch (README, "Input
    size and stem", measured both)."""
    output:
        train="results/data/train.npz",
        test="results/data/test.npz",
        manifest="results/data/manifest.json",
    log:
        "logs/data/prepare_data.log",
    benchmark:
        "benchmarks/results/data/prepare_data.tsv"
    conda:
        "../../envs/train.yaml"
    params:
        dataset=settings.data_settings(config),
        image_size=config["dataset"].get("image_size"),
        code=stage_digest("prepare_data.py"),
    script:
        "../scripts/prepare_data.py"


use rule prepare_data as prepare_data_resized with:
    output:
        train="results/data/{px}px/train.npz",
        test="results/data/{px}px/test.npz",
        manifest="results/data/{px}px/manifest.json",
    log:
        "logs/data/prepare_data_{px}px.log",
    benchmark:
        "benchmarks/results/data/prepare_data_{px}px.tsv"
    params:
        dataset=settings.data_settings(config),
        image_size=lambda wildcards: int(wildcards.px),
        code=stage_digest("prepare_data.py"),
