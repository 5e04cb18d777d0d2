rule collect_bench:
    """All device measurements as one long table (results/tables/bench.csv): latency and
    memory, with energy and on-device accuracy where measured."""
    input:
        bench=bench_targets(),
        energy=energy_targets(),
        device_eval=device_accuracy_targets(),
    output:
        csv="results/tables/bench.csv",
    log:
        "logs/tables/bench.log",
    conda:
        "../../envs/report.yaml"
    params:
        code=stage_digest("collect_bench.py"),
    script:
        "../scripts/collect_bench.py"


rule make_table:
    """One of the thesis' tables for this run, with the thesis' numbers beside."""
    input:
        unpack(report_inputs),
    output:
        csv="results/tables/{table}.csv",
        md="results/tables/{table}.md",
        # the report's page (its viewer shows .html inline; .md and .csv download only)
        html=report(
            "results/tables/{table}.html",
            caption="../report/table.rst",
            category="tables",
            labels={"table": "{table}"},
        ),
    log:
        "logs/tables/{table}.log",
    conda:
        "../../envs/report.yaml"
    params:
        thesis_dir=config["report"].get("thesis_dir"),
        thesis_files=thesis_files(),
        caption=table_caption,
        code=stage_digest("make_table.py"),
    script:
        "../scripts/make_table.py"


rule plot_figure:
    """One figure; its params are only the settings it uses, so changing one figure's
    setting reruns that figure alone."""
    input:
        unpack(report_inputs),
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category=figure_category,
            labels=figure_labels,
        ),
        other=expand("results/figures/{{figure}}.{ext}", ext=FIGURE_FORMATS),
    log:
        "logs/figures/{figure}.log",
    conda:
        "../../envs/report.yaml"
    params:
        settings=figure_settings,
        caption=figure_caption,
        code=stage_digest("plot_figure.py"),
    script:
        "../scripts/plot_figure.py"


rule check_findings:
    """Each claim of the thesis, this run's numbers, and a verdict (results/findings.md, and
    findings.html for the report)."""
    input:
        unpack(findings_inputs),
    output:
        md="results/findings.md",
        csv="results/findings.csv",
        html=report(
            "results/findings.html",
            caption="../report/findings.rst",
            category="findings",
            labels={"page": "findings"},
        ),
    log:
        "logs/findings.log",
    conda:
        "../../envs/report.yaml"
    params:
        context=findings_context,
        architectures={a: settings.model_settings(config, a) for a in GRID["arch"]},
        code=stage_digest("check_findings.py"),
    script:
        "../scripts/check_findings.py"


rule export_mlflow:
    """Every cell to an MLflow tracking store (a target of its own, not part of `all`):
    settings as params, metrics and device numbers, per-class table and .tflite as
    artifacts. Where: MLflow's MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_NAME, else
    mlruns/mlflow.db in the run folder."""
    input:
        summary=rules.summarize_grid.output.csv,
        per_class=rules.summarize_grid.output.per_class,
        bench=[rules.collect_bench.output.csv] if DEVICES else [],
        tflites=for_cells(rules.convert_tflite.output.tflite),
    output:
        json="results/mlflow.json",
    log:
        "logs/mlflow.log",
    conda:
        "../../envs/report.yaml"
    params:
        cells=[
            f"{c['arch']} seed{c['seed']} s{c['sparsity']} {c['quant']}"
            for c in cells()
        ],
        code=stage_digest("export_mlflow.py"),
    script:
        "../scripts/export_mlflow.py"
