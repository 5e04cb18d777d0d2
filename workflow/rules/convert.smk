rule convert_tflite:
    """Convert one Keras model (for qat: its QAT copy) to .tflite in one quantization mode
    (thesis §3.4); int8, int8_full, int16x8, dynamic and fp16 from the cell's fp32 .tflite
    (pqgrid/quant/convert.py). The job also writes the file's gzip -9 copy, the compressed size as
    the thesis measured it: a job of its own cost ~2 s of Snakemake and process start for
    0.1 s of gzip, 96 times in the laptop preset (benchmarks/README)."""
    input:
        source=convert_source,
        train=data_file("train"),
    output:
        tflite="results/tflite/{arch}/seed{seed}/s{sparsity}_{quant}.tflite",
        gz="results/tflite/{arch}/seed{seed}/s{sparsity}_{quant}.tflite.gz",
    log:
        "logs/tflite/{arch}/seed{seed}/s{sparsity}_{quant}.log",
    benchmark:
        "benchmarks/results/tflite/{arch}/seed{seed}/s{sparsity}_{quant}.tsv"
    conda:
        "../../envs/train.yaml"
    # The converter's graph passes are single-threaded; calibration is short. Peak memory
    # measured ~1.0 GB (MobileNet, V3Small at 32 px: max_rss of the benchmark files); 3000
    # leaves room for larger inputs, and with --resources mem_mb=N Snakemake runs only as
    # many conversions at once as fit.
    threads: 1
    resources:
        mem_mb=3000,
    params:
        model=model_params,
        calibration_samples=calibration_params,
        code=stage_digest("convert_tflite.py"),
    script:
        "../scripts/convert_tflite.py"
