rule prepare_data:
    """Load the configured source once into arrays every later job reads (fast, no
    re-decoding), with a manifest (classes, counts, source sha256) for provenance."""
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
        dataset=config["dataset"],
    script:
        "../scripts/prepare_data.py"
