# What to ship: per device, the compressed cell with the best objective within the accuracy
# budget (config `ship:`; pqgrid/ship/choose.py). It reads only the long tables, so a
# changed budget reruns the plan and the choice alone. Where no cell of an architecture
# qualifies, a checkpoint plans repair candidates of its int8 (pqgrid/ship/search.py), each
# made, evaluated and timed like a cell under results/repair/.


checkpoint plan_repair:
    """Which repair candidates to build for this device's answer: for each architecture
    with no cell within the budget (on accuracy alone), every seed's int8ma, int8f1,
    int8f2, ... up to ship.max_candidates - with int8x1, int8x2, ... between them where
    this device ran int16x8 faster than fp32; none with repair: false.
    """
    input:
        summary=rules.summarize_grid.output.csv,
        per_class=rules.summarize_grid.output.per_class,
        bench=rules.collect_bench.output.csv,
    output:
        plan="results/ship/{device}.repair_plan.json",
    log:
        "logs/ship/{device}.repair_plan.log",
    wildcard_constraints:
        device=_alternatives(SHIP_DEVICES) if SHIP_DEVICES else "(?!)",
    conda:
        "../../envs/report.yaml"
    params:
        settings=config["ship"],
        code=stage_digest("plan_repair.py"),
    script:
        "../scripts/plan_repair.py"


rule repair_tflite:
    """One repair candidate of int8 from the cell's fp32 .tflite (ai-edge-quantizer): with
    moving-average ranges (int8ma), with the k worst tensors kept float (int8f<k>) or at
    int16 activations (int8x<k>), its gzip -9 copy and what it keeps out of int8
    (pqgrid/ship/repair.py)."""
    input:
        unpack(repair_source),
        train=data_file("train"),
    output:
        tflite="results/repair/{arch}/seed{seed}/s{sparsity}_{repair}.tflite",
        gz="results/repair/{arch}/seed{seed}/s{sparsity}_{repair}.tflite.gz",
        record="results/repair/{arch}/seed{seed}/s{sparsity}_{repair}.repair.json",
    log:
        "logs/repair/{arch}/seed{seed}/s{sparsity}_{repair}.log",
    benchmark:
        "benchmarks/results/repair/{arch}/seed{seed}/s{sparsity}_{repair}.tsv"
    wildcard_constraints:
        repair=REPAIR_TOKEN.pattern,
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    params:
        model=model_params,
        cell=repair_cell,
        calibration_samples=config["quantization"]["calibration_samples"],
        code=stage_digest("repair_tflite.py"),
    script:
        "../scripts/repair_tflite.py"


rule evaluate_repair:
    """A repair candidate's accuracy overall, per class and per image, as any cell's."""
    input:
        unpack(repair_reference),
        tflite=rules.repair_tflite.output.tflite,
        gz=rules.repair_tflite.output.gz,
        test=data_file("test"),
        manifest=data_file("manifest"),
    output:
        metrics="results/repair/{arch}/seed{seed}/s{sparsity}_{repair}.json",
        per_class="results/repair/{arch}/seed{seed}/s{sparsity}_{repair}.per_class.csv",
        layers="results/repair/{arch}/seed{seed}/s{sparsity}_{repair}.layers.csv",
        predictions="results/repair/{arch}/seed{seed}/s{sparsity}_{repair}.predictions.npz",
    log:
        "logs/repair/{arch}/seed{seed}/s{sparsity}_{repair}.eval.log",
    wildcard_constraints:
        repair=REPAIR_TOKEN.pattern,
    conda:
        "../../envs/train.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        mem_mb=1000,
    params:
        model=model_params,
        cell=repair_cell,
        settings=repair_settings,
        batch_size=config["evaluation"]["batch_size"],
        code=stage_digest("evaluate_tflite.py"),
    script:
        "../scripts/evaluate_tflite.py"


rule bench_repair:
    """One timing session of a repair candidate on a device, as any cell's."""
    input:
        tflite=rules.repair_tflite.output.tflite,
        setup=device_setup,
    output:
        bench="results/repair/bench/{device}/{arch}/seed{seed}/s{sparsity}_{repair}.r{repeat}.json",
    log:
        "logs/repair/bench/{device}/{arch}/seed{seed}/s{sparsity}_{repair}.r{repeat}.log",
    wildcard_constraints:
        repair=REPAIR_TOKEN.pattern,
    priority: session_priority
    conda:
        "../../envs/device.yaml"
    threads: device_threads
    resources:
        **{f"bench_{name}": device_slot(name) for name in DEVICES},
    params:
        device=device_params("latency"),
        cell=repair_cell,
        code=stage_digest("benchmark_on_device.py"),
    script:
        "../scripts/benchmark_on_device.py"


rule summarize_repair:
    """The planned candidates' rows of summary.csv, per_class.csv and bench.csv (with the
    fp32 models they are measured against, for the images each gains and loses)."""
    input:
        plan="results/ship/{device}.repair_plan.json",
        metrics=repair_files(rules.evaluate_repair.output.metrics),
        references=repair_references(rules.evaluate_tflite.output.metrics),
        per_class=repair_files(rules.evaluate_repair.output.per_class),
        reference_per_class=repair_references(rules.evaluate_tflite.output.per_class),
        predictions=repair_files(rules.evaluate_repair.output.predictions),
        reference_predictions=repair_references(
            rules.evaluate_tflite.output.predictions
        ),
        keras=repair_keras,
        bench=repair_bench_files,
    output:
        csv="results/ship/{device}.repair_summary.csv",
        md="results/ship/{device}.repair_summary.md",
        per_class="results/ship/{device}.repair_per_class.csv",
        bench="results/ship/{device}.repair_bench.csv",
    log:
        "logs/ship/{device}.repair_summary.log",
    wildcard_constraints:
        device=_alternatives(SHIP_DEVICES) if SHIP_DEVICES else "(?!)",
    conda:
        "../../envs/report.yaml"
    params:
        code=stage_digest("summarize_repair.py"),
    script:
        "../scripts/summarize_repair.py"


rule choose_ship:
    """Per architecture the cell to ship on one device, its runners-up, the classes it
    loses most, or "no cell qualifies" with the closest one; one line across the grid;
    where int8 was repaired, each candidate and what it keeps float.
    """
    input:
        summary=rules.summarize_grid.output.csv,
        per_class=rules.summarize_grid.output.per_class,
        bench=rules.collect_bench.output.csv,
        plan="results/ship/{device}.repair_plan.json",
        repair_summary=rules.summarize_repair.output.csv,
        repair_per_class=rules.summarize_repair.output.per_class,
        repair_bench=rules.summarize_repair.output.bench,
        records=repair_files(rules.repair_tflite.output.record),
    output:
        json="results/ship/{device}.json",
        md=report(
            "results/ship/{device}.md",
            caption="../report/ship.rst",
            category="what to ship",
        ),
        png=report(
            "results/figures/ship_{device}.png",
            caption="../report/ship.rst",
            category="what to ship",
        ),
    log:
        "logs/ship/{device}.log",
    wildcard_constraints:
        device=_alternatives(SHIP_DEVICES) if SHIP_DEVICES else "(?!)",
    conda:
        "../../envs/report.yaml"
    params:
        settings=config["ship"],
        style=config["report"]["figures"]["style"],
        code=stage_digest("choose_ship.py"),
    script:
        "../scripts/choose_ship.py"
