rule prune_model:
    """Magnitude-prune a trained model to one target sparsity (thesis §3.5, Table 3.1)."""
    input:
        model=rules.train_model.output.model,
        train=data_file("train"),
        test=data_file("test"),
        manifest=data_file("manifest"),
    output:
        model="results/models/{arch}/seed{seed}/pruned_{sparsity}.h5",
        history="results/models/{arch}/seed{seed}/pruned_{sparsity}.history.csv",
    log:
        "logs/models/{arch}/seed{seed}/pruned_{sparsity}.log",
    benchmark:
        "benchmarks/results/models/{arch}/seed{seed}/pruned_{sparsity}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: fit_threads
    resources:
        mem_mb=4000,
        runtime=300,
    params:
        model=model_params,
        pruning=prune_params,
        code=stage_digest("prune_model.py"),
    script:
        "../scripts/prune_model.py"
