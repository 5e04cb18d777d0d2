# Helpers for every rule: the grid from config, wildcard constraints, input functions and
# the per-cell settings passed as params (so changing one architecture's setting reruns
# that architecture's cells only).
import json
import sys

sys.path.insert(0, f"{workflow.basedir}/workflow/scripts")
from pqgrid.config import (
    ConfigError,
    TABLES,
    check_config,
    figure_category,
    figure_names,
    grid,
    input_scaling,
    pruning_settings,
    sparsity_value,
    training_settings,
)

try:
    check_config(config)
except ConfigError as e:
    # One line, before any job starts.
    raise WorkflowError(f"pqgrid config error: {e}") from None

GRID = grid(config)
DEVICES = list(config.get("devices") or {})
# One benchmark job per device at a time within this Snakemake instance (the device lock
# covers other instances); `--resources bench_<device>=N` overrides it.
for _device in DEVICES:
    if f"bench_{_device}" not in workflow.global_resources:
        workflow.register_resource(f"bench_{_device}", 1)


def _alternatives(values):
    return "|".join(re.escape(v) for v in values)


wildcard_constraints:
    arch=_alternatives(GRID["arch"]),
    seed=_alternatives(GRID["seed"]),
    sparsity=_alternatives(GRID["sparsity"]),
    quant=_alternatives(GRID["quant"]),
    device=_alternatives(DEVICES) if DEVICES else "(?!)",
    table=_alternatives(TABLES),
    figure=_alternatives(figure_names(config)),


def cells():
    """Every (arch, seed, sparsity, quant) of the grid, as wildcard dicts."""
    return [
        dict(arch=a, seed=s, sparsity=p, quant=q)
        for a in GRID["arch"]
        for s in GRID["seed"]
        for p in GRID["sparsity"]
        for q in GRID["quant"]
    ]


def for_cells(pattern):
    """`pattern` filled in for every cell of the grid."""
    return [pattern.format(**c) for c in cells()]


def for_models(pattern):
    """`pattern` filled in for every Keras model (arch x seed x sparsity)."""
    return sorted({pattern.format(**c) for c in cells()})


def bench_targets():
    """Every cell on every configured device."""
    return [
        rules.benchmark_on_device.output.bench.format(device=d, **c)
        for d in DEVICES
        for c in cells()
    ]


def device_slot(name):
    """Resource `bench_<name>`: 1 for jobs on that device, 0 otherwise."""
    return lambda wildcards: int(wildcards.device == name)


def device_threads(wildcards):
    if config["devices"][wildcards.device]["type"] != "local":
        return 1
    try:
        return workflow.cores
    except WorkflowError:  # no --cores (cluster executors): other jobs run elsewhere
        return 1


def keras_model(wildcards):
    """Sparsity 0 is the trained model itself; others are its pruned copies."""
    if wildcards.sparsity == "0":
        return rules.train_model.output.model.format(**wildcards)
    return rules.prune_model.output.model.format(**wildcards)


def arch_params(wildcards):
    return config["architectures"][wildcards.arch]


def train_params(wildcards):
    return training_settings(config, wildcards.arch)


def prune_params(wildcards):
    settings = pruning_settings(
        config, wildcards.arch, sparsity_value(wildcards.sparsity)
    )
    # Fine-tuning validates like training did and keeps its BatchNorm setting.
    train = training_settings(config, wildcards.arch)
    for key in ("validation", "holdout_fraction", "batchnorm_momentum"):
        settings[key] = train[key]
    return settings


def cell(wildcards):
    return dict(
        arch=wildcards.arch,
        seed=int(wildcards.seed),
        sparsity=sparsity_value(wildcards.sparsity),
        **({"quant": wildcards.quant} if "quant" in wildcards.keys() else {}),
    )


def cell_settings(wildcards):
    """Everything that made a cell, recorded in its metrics JSON."""
    return dict(
        architecture=arch_params(wildcards),
        input_scaling=input_scaling(arch_params(wildcards)),
        training=train_params(wildcards),
        pruning=(prune_params(wildcards) if wildcards.sparsity != "0" else None),
        quantization=dict(
            mode=wildcards.quant,
            calibration_samples=config["quantization"]["calibration_samples"],
        ),
        dataset=config["dataset"],
    )


# ---------------------------------------------------------------- report stage
FIGURE_NEEDS_BENCH = ("fig_4_1", "fig_4_9", "pareto_latency_")


def report_inputs(wildcards):
    """Long tables of the run; bench.csv only where devices are configured."""
    inputs = dict(
        summary=rules.summarize_grid.output.csv,
        per_class=rules.summarize_grid.output.per_class,
    )
    if DEVICES:
        inputs["bench"] = rules.collect_bench.output.csv
    return inputs


def figure_inputs(wildcards):
    """Only the tables a figure draws from: a per-class figure does not wait for (or
    rerun after) device benchmarks."""
    inputs = report_inputs(wildcards)
    if not wildcards.figure.startswith(FIGURE_NEEDS_BENCH):
        inputs.pop("bench", None)
    if wildcards.figure.startswith(("per_class_",)):
        inputs.pop("summary")
    else:
        inputs.pop("per_class")
    return inputs


def figure_settings(wildcards):
    f = config["report"]["figures"]
    settings = {k: v for k, v in f.items() if k != "per_figure"}
    settings.update((f.get("per_figure") or {}).get(wildcards.figure, {}))
    return settings


def findings_context(wildcards):
    d = config["dataset"]
    return (
        f"Dataset: {d['source']} (per class: {d.get('train_per_class') or 'all'} train, "
        f"{d.get('test_per_class') or 'all'} test); architectures: {', '.join(GRID['arch'])}; "
        f"seeds: {', '.join(GRID['seed'])}; devices: {', '.join(DEVICES) or 'none'}; "
        f"epochs: {config['training']['epochs']}; pruning.depthwise: "
        f"{config['pruning'].get('depthwise', True)} (false reproduces tfmot's default)."
    )


def report_targets():
    return (
        [rules.make_table.output.csv.format(table=t) for t in TABLES]
        + [rules.plot_figure.output.png.format(figure=f) for f in figure_names(config)]
        + [rules.check_findings.output.md]
    )
