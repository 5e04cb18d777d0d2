rule summarize_grid:
    """One row per cell: accuracy, sizes, parameters (results/tables/summary.csv/.md)."""
    input:
        metrics=for_cells(rules.evaluate_tflite.output.metrics),
        per_class=for_cells(rules.evaluate_tflite.output.per_class),
        predictions=for_cells(rules.evaluate_tflite.output.predictions),
        keras=for_models(rules.evaluate_keras.output.metrics),
        device_eval=device_accuracy_targets(),
    output:
        csv="results/tables/summary.csv",
        md="results/tables/summary.md",
        per_class="results/tables/per_class.csv",
    log:
        "logs/tables/summary.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=stage_digest("summarize_grid.py"),
    script:
        "../scripts/summarize_grid.py"
