rule layer_error:
    """Per-op int8 quantization error of one model, from its fp32 .tflite
    (QuantizationDebugger): the CSV behind every int8 and int8_full cell of that model.
    """
    input:
        fp32=lambda wc: rules.convert_tflite.output.tflite.format(**wc, quant="fp32"),
        train=data_file("train"),
        test=data_file("test"),
    output:
        csv="results/eval/{arch}/seed{seed}/s{sparsity}.layer_error.csv",
    log:
        "logs/eval/{arch}/seed{seed}/s{sparsity}.layer_error.log",
    benchmark:
        "benchmarks/results/eval/{arch}/seed{seed}/s{sparsity}.layer_error.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    params:
        model=model_params,
        calibration_samples=config["quantization"]["calibration_samples"],
        samples=config["quantization"]["layer_error_samples"],
        code=stage_digest("layer_error.py"),
    script:
        "../scripts/layer_error.py"


rule collect_layer_error:
    """Every model's per-op int8 error as one long table (results/tables/layer_error.csv)."""
    input:
        csvs=layer_error_targets(),
    output:
        csv="results/tables/layer_error.csv",
    log:
        "logs/tables/layer_error.log",
    conda:
        "../../envs/report.yaml"
    params:
        cells=layer_error_models(),
        code=stage_digest("collect_layer_error.py"),
    script:
        "../scripts/collect_layer_error.py"
