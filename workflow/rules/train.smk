rule train_model:
    """Train one architecture from scratch (thesis §3.3), or from `weights:` with a new
    classifier; resumes after a kill."""
    input:
        train=data_file("train"),
        test=data_file("test"),
        manifest=data_file("manifest"),
    output:
        model="results/models/{arch}/seed{seed}/trained.h5",
        history="results/models/{arch}/seed{seed}/trained.history.csv",
    log:
        "logs/models/{arch}/seed{seed}/trained.log",
    benchmark:
        "benchmarks/results/models/{arch}/seed{seed}/trained.tsv"
    conda:
        "../../envs/train.yaml"
    threads: fit_threads
    resources:
        mem_mb=4000,
        runtime=600,
    params:
        model=model_params,
        training=train_params,
        weights=model_files_digest,
        code=stage_digest("train_model.py"),
    script:
        "../scripts/train_model.py"
