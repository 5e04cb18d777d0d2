rule qat_model:
    """Quantization-aware fine-tuning of a trained model (pruning-preserving for a pruned
    one) with tfmot; resumes after a kill (pqgrid/models/qat.py)."""
    input:
        model=keras_model,
        train=data_file("train"),
        test=data_file("test"),
        manifest=data_file("manifest"),
    output:
        model="results/models/{arch}/seed{seed}/qat_{sparsity}.h5",
        history="results/models/{arch}/seed{seed}/qat_{sparsity}.history.csv",
        metrics="results/models/{arch}/seed{seed}/qat_{sparsity}.json",
    log:
        "logs/models/{arch}/seed{seed}/qat_{sparsity}.log",
    benchmark:
        "benchmarks/results/models/{arch}/seed{seed}/qat_{sparsity}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: fit_threads
    resources:
        mem_mb=4000,
        runtime=300,
    params:
        model=model_params,
        qat=qat_params,
        code=stage_digest("qat_model.py"),
    script:
        "../scripts/qat_model.py"
