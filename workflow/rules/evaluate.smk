rule evaluate_keras:
    """Top-1/top-3 on train and test of a Keras model, its parameter statistics and its
    per-image test predictions."""
    input:
        model=keras_model,
        train=data_file("train"),
        test=data_file("test"),
        manifest=data_file("manifest"),
    output:
        metrics="results/eval/{arch}/seed{seed}/keras_s{sparsity}.json",
        predictions="results/eval/{arch}/seed{seed}/keras_s{sparsity}.predictions.npz",
    log:
        "logs/eval/{arch}/seed{seed}/keras_s{sparsity}.log",
    benchmark:
        "benchmarks/results/eval/{arch}/seed{seed}/keras_s{sparsity}.tsv"
    conda:
        "../../envs/train.yaml"
    # One thread: on 2 booked threads it used 0.88 cores (cpu_time of the benchmark files,
    # laptop preset), and a booked idle core is one a fitting job cannot use;
    # with --cores N, N evaluations run at once instead.
    threads: 1
    # Peak measured 0.8 GB (laptop preset: 15k training images at 32 px, scored in float32);
    # the budget leaves room for the full 50k. Counts against --resources mem_mb=N.
    resources:
        mem_mb=2000,
    params:
        model=model_params,
        cell=cell,
        code=stage_digest("evaluate_keras.py"),
    script:
        "../scripts/evaluate_keras.py"


rule evaluate_tflite:
    """Accuracy overall and per class of one .tflite through the LiteRT interpreter, and its
    per-image predictions."""
    input:
        unpack(qat_inputs),
        unpack(reference_metrics),
        tflite=rules.convert_tflite.output.tflite,
        gz=rules.convert_tflite.output.gz,
        test=data_file("test"),
        manifest=data_file("manifest"),
    output:
        metrics="results/eval/{arch}/seed{seed}/s{sparsity}_{quant}.json",
        per_class="results/eval/{arch}/seed{seed}/s{sparsity}_{quant}.per_class.csv",
        layers="results/eval/{arch}/seed{seed}/s{sparsity}_{quant}.layers.csv",
        predictions="results/eval/{arch}/seed{seed}/s{sparsity}_{quant}.predictions.npz",
    log:
        "logs/eval/{arch}/seed{seed}/s{sparsity}_{quant}.log",
    benchmark:
        "benchmarks/results/eval/{arch}/seed{seed}/s{sparsity}_{quant}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["evaluation"]["threads"]
    # Peak measured 0.16 GB (3k test images at 32 px); LiteRT, no TensorFlow.
    resources:
        mem_mb=1000,
    params:
        model=model_params,
        cell=cell,
        settings=cell_settings,
        batch_size=config["evaluation"]["batch_size"],
        code=stage_digest("evaluate_tflite.py"),
    script:
        "../scripts/evaluate_tflite.py"
