# Wildcards, grid expansion and input/params functions for every rule. The logic behind
# them (config checks, settings merging, the report entries) lives in the pqgrid library,
# unit-tested without Snakemake. A job's params are exactly the settings it reads
# (pqgrid/jobs/settings.py) plus a hash of the pqgrid code it runs (pqgrid/jobs/stage_code.py), so a
# changed setting or changed code reruns the stage that reads it and what follows.
# The Snakefile has checked the config (pqgrid.core.config.check_config) and put the library on
# sys.path before including this file.
import json
import os
import re

from snakemake.exceptions import WorkflowError

from pqgrid.core import report_entries
from pqgrid.jobs import settings
from pqgrid.core.catalog import accuracy_reference, has_keras_model
from pqgrid.core.catalog import convert_source as convert_source_of
from pqgrid.core.grid import cells as grid_cells
from pqgrid.core.grid import grid, input_size, ship_devices, sparsity_value
from pqgrid.core.paths import workflow_path
from pqgrid.core.devices import DEVICE_TYPES, board_pins
from pqgrid.core.modes import REPAIR_TOKEN, mode
from pqgrid.core.provenance import folder_digest, model_file_digests
from pqgrid.jobs.stage_code import stage_digest

GRID = grid(config)
DEVICES = list(config.get("devices") or {})
SHIP_DEVICES = ship_devices(config)
ENERGY_DEVICES = settings.devices_with(config, "power")
ACCURACY_DEVICES = settings.devices_with(config, "accuracy")
# The forgetting analysis' settings, schema defaults filled in for configs without the block.
FORGETTING = config["report"]["forgetting"]  # its defaults: the schema's
FIGURES = report_entries.figure_names(
    GRID["arch"], DEVICES, with_energy=bool(ENERGY_DEVICES)
)
# Formats beside the PNG (report.figures.format): the report shows the PNG.
FIGURE_FORMATS = [f for f in config["report"]["figures"]["format"] if f != "png"]
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
    table=_alternatives(report_entries.TABLES),
    figure=_alternatives(FIGURES),
    px="[0-9]+",
    repeat="[0-9]+",


# ---------------------------------------------------------------- grid expansion
def cells():
    """Every (arch, seed, sparsity, quant) of the grid, as wildcard dicts
    (quantization.subsets applied)."""
    return grid_cells(config)


def for_cells(pattern):
    """`pattern` filled in for every cell of the grid."""
    return [pattern.format(**c) for c in cells()]


def for_models(pattern):
    """`pattern` filled in for every Keras model (arch x seed x sparsity); a `.tflite`
    architecture has none."""
    return sorted(
        {
            pattern.format(**c)
            for c in cells()
            if has_keras_model(config["architectures"][c["arch"]])
        }
    )


def bench_targets():
    """Every cell on every configured device, one file per timing session (`repeats`)."""
    return [
        rules.benchmark_on_device.output.bench.format(device=d, repeat=r, **c)
        for d in DEVICES
        for r in range(config["devices"][d]["repeats"])
        for c in cells()
    ]


def session_priority(wildcards):
    """Every cell's session r before any cell's session r + 1 (Snakemake runs the ready job
    of highest priority first): the sessions of a cell are spread over the run, so a drift
    of the device during it hits every cell alike."""
    return -int(wildcards.repeat)


def energy_targets():
    """Every cell on every device with a `power` source."""
    return [
        rules.energy_on_device.output.energy.format(device=d, **c)
        for d in ENERGY_DEVICES
        for c in cells()
    ]


def device_accuracy_targets():
    """Every cell on every device with `accuracy: true`."""
    return [
        rules.accuracy_on_device.output.metrics.format(device=d, **c)
        for d in ACCURACY_DEVICES
        for c in cells()
    ]


def layer_error_models():
    """Models (arch, seed, sparsity) with an int8 post-training cell: each gets one per-layer
    int8 error CSV."""
    seen = {}
    for c in cells():
        if mode(c["quant"]).layer_error:
            key = (c["arch"], c["seed"], c["sparsity"])
            seen[key] = dict(arch=c["arch"], seed=c["seed"], sparsity=c["sparsity"])
    return list(seen.values())


def layer_error_targets():
    return [rules.layer_error.output.csv.format(**m) for m in layer_error_models()]


def report_targets():
    return (
        [rules.make_table.output.csv.format(table=t) for t in report_entries.TABLES]
        + [rules.plot_figure.output.png.format(figure=f) for f in FIGURES]
        + [f"results/figures/{f}.{ext}" for f in FIGURES for ext in FIGURE_FORMATS]
        + [rules.check_findings.output.md]
        + expand("results/ship/{device}.md", device=SHIP_DEVICES)
        + [rules.collect_pie.output.csv]
        + expand(rules.pie_gallery.output.png, arch=GRID["arch"])
    )


def every_target():
    """The files of this grid a user may name on the command line (unknown targets are
    matched against them for a suggestion)."""
    cell_files = [
        rules.convert_tflite.output.tflite,
        rules.evaluate_tflite.output.metrics,
        rules.evaluate_tflite.output.per_class,
    ]
    model_files = [
        rules.evaluate_keras.output.metrics,
        "results/models/{arch}/seed{seed}/trained.h5",
    ]
    return (
        [f for p in cell_files for f in for_cells(p)]
        + [f for p in model_files for f in for_models(p)]
        + bench_targets()
        + layer_error_targets()
        + report_targets()
        + list(rules.summarize_grid.output)
    )


def pie_cells(wildcards):
    """The architecture's cells (seed, sparsity, quant), in the order of `pie_variants`."""
    return [
        {k: c[k] for k in ("seed", "sparsity", "quant")}
        for c in cells()
        if c["arch"] == wildcards.arch
    ]


def pie_variants(wildcards):
    """Per-image predictions of every cell of the architecture: the compressed populations."""
    return [
        rules.evaluate_tflite.output.predictions.format(arch=wildcards.arch, **c)
        for c in pie_cells(wildcards)
    ]


def pie_reference(wildcards):
    """Per-image predictions of the trained Keras models, one per seed: the uncompressed
    population (of a `.tflite` architecture: its fp32 file)."""
    if not has_keras_model(config["architectures"][wildcards.arch]):
        return [
            rules.evaluate_tflite.output.predictions.format(
                arch=wildcards.arch, seed=s, sparsity="0", quant="fp32"
            )
            for s in GRID["seed"]
        ]
    return [
        rules.evaluate_keras.output.predictions.format(
            arch=wildcards.arch, seed=s, sparsity="0"
        )
        for s in GRID["seed"]
    ]


# ---------------------------------------------------------------- input functions
def data_dir(arch):
    """Where an architecture's prepared images are: results/data/ at dataset.image_size, or
    results/data/{px}px/ for an architecture with its own input_size."""
    size = input_size(config, arch)
    return (
        "results/data"
        if size == config["dataset"].get("image_size")
        else f"results/data/{size}px"
    )


def data_file(kind):
    """Input function: the architecture's prepared train.npz / test.npz / manifest.json."""
    name = {"train": "train.npz", "test": "test.npz", "manifest": "manifest.json"}[kind]
    return lambda wildcards: f"{data_dir(wildcards.arch)}/{name}"


def keras_model(wildcards):
    """Sparsity 0 is the trained model itself; others are its pruned copies."""
    if wildcards.sparsity == "0":
        return rules.train_model.output.model.format(**wildcards)
    return rules.prune_model.output.model.format(**wildcards)


def convert_source(wildcards):
    """What a cell's .tflite is converted from (pqgrid.core.catalog.convert_source)."""
    source = convert_source_of(config["architectures"][wildcards.arch], wildcards.quant)
    if source == "fp32_tflite":
        return rules.convert_tflite.output.tflite.format(
            **{**wildcards, "quant": "fp32"}
        )
    if source == "qat_model":
        return rules.qat_model.output.model.format(**wildcards)
    if source == "tflite_file":
        return workflow_path(config["architectures"][wildcards.arch]["tflite"])
    return keras_model(wildcards)


def model_files_digest(wildcards):
    """The content of the files a model is made from that are no pipeline output
    (pqgrid.core.provenance.model_file_digests)."""
    return model_file_digests(config["architectures"][wildcards.arch])


def reference_metrics(wildcards):
    """What a cell's accuracy is compared with (pqgrid.core.catalog.accuracy_reference)."""
    reference = accuracy_reference(
        config["architectures"][wildcards.arch], wildcards.quant
    )
    if reference == "keras":
        return {"keras": rules.evaluate_keras.output.metrics.format(**wildcards)}
    if reference is None:
        return {}
    return {
        "reference": rules.evaluate_tflite.output.metrics.format(
            **{**wildcards, "quant": "fp32"}
        )
    }


def qat_inputs(wildcards):
    """A qat cell's evaluation also reads the QAT Keras model's metrics."""
    if mode(wildcards.quant).from_qat_model:
        return {"qat": rules.qat_model.output.metrics.format(**wildcards)}
    return {}


def long_tables(names):
    """Named paths of the long tables (summary, per_class, bench, layer_error) among `names`."""
    paths = {
        "summary": rules.summarize_grid.output.csv,
        "per_class": rules.summarize_grid.output.per_class,
        "bench": rules.collect_bench.output.csv,
        "layer_error": rules.collect_layer_error.output.csv,
        "pie": rules.collect_pie.output.csv,
        "pie_per_class": rules.collect_pie.output.per_class,
    }
    return {n: paths[n] for n in names}


def report_inputs(wildcards):
    """What a table or figure reads (report_entries.py), bench only where devices exist: a
    per-class figure does not wait for (or rerun after) device benchmarks."""
    name = wildcards.get("table") or wildcards.get("figure")
    return long_tables(
        report_entries.inputs(
            name, have_bench=bool(DEVICES), have_layer_error=bool(layer_error_models())
        )
    )


def findings_inputs(wildcards):
    return long_tables(
        ["summary", "per_class", "pie", "pie_per_class"]
        + (["bench"] if DEVICES else [])
    )


# ---------------------------------------------------------------- params functions
def model_params(wildcards):
    """The architecture's model definition, without its fine-tuning overrides."""
    return settings.model_settings(config, wildcards.arch)


def calibration_params(wildcards):
    return settings.calibration_samples(config, wildcards.quant)


def train_params(wildcards):
    return settings.training_settings(config, wildcards.arch)


def fit_threads(wildcards):
    """Threads of a training, pruning or QAT job: the architecture's `training.threads`."""
    return train_params(wildcards)["threads"]


def prune_params(wildcards):
    return settings.pruning_settings(
        config, wildcards.arch, sparsity_value(wildcards.sparsity)
    )


def qat_params(wildcards):
    return settings.qat_settings(
        config, wildcards.arch, sparsity_value(wildcards.sparsity)
    )


def cell(wildcards):
    return settings.cell(
        wildcards.arch, wildcards.seed, wildcards.sparsity, wildcards.get("quant")
    )


def cell_settings(wildcards):
    return settings.cell_settings(
        config, wildcards.arch, wildcards.sparsity, wildcards.quant
    )


def device_params(stage):
    """The device's settings that `stage` (latency, energy, accuracy) reads."""
    return lambda wildcards: settings.device_settings(config, wildcards.device, stage)


def device_setup(wildcards):
    """A board with `setup: packages` is set up before any job measures on it."""
    if config["devices"][wildcards.device].get("setup"):
        return rules.setup_device.output.setup.format(device=wildcards.device)
    return []


def device_slot(name):
    """Resource `bench_<name>`: 1 for jobs on that device, 0 otherwise."""
    return lambda wildcards: int(wildcards.device == name)


def device_threads(wildcards):
    if not DEVICE_TYPES[config["devices"][wildcards.device]["type"]].on_host:
        return 1
    try:
        return workflow.cores
    except WorkflowError:  # no --cores (cluster executors): other jobs run elsewhere
        return 1


def figure_category(wildcards):
    return report_entries.resolve(wildcards.figure)[0].category


def figure_labels(wildcards):
    return report_entries.labels(wildcards.figure)


def figure_caption(wildcards):
    return report_entries.resolve(wildcards.figure)[0].caption


def table_caption(wildcards):
    return report_entries.resolve(wildcards.table)[0].caption


def thesis_files():
    """sha256 of the thesis' table CSVs in report.thesis_dir (relative to the workflow's
    folder): editing one redraws the tables, moving the checkout does not."""
    path = config["report"].get("thesis_dir")
    return folder_digest(os.path.join(workflow.basedir, path)) if path else None


def figure_settings(wildcards):
    return settings.figure_settings(config, wildcards.figure)


def findings_context(wildcards):
    return settings.findings_context(config, DEVICES)


# ---------------------------------------------------------------- repair candidates (ship.smk)
def repair_plan(wildcards):
    """The candidates plan_repair named for this device (after the checkpoint ran)."""
    plan = checkpoints.plan_repair.get(device=wildcards.device).output.plan
    with open(
        plan
    ) as fh:  # plan_repair's JSON (pqgrid/ship/search.py); no pandas at parse time
        return json.load(fh)["candidates"]


def repair_files(pattern, **extra):
    """`pattern` for every planned candidate of the device (tokens as `repair`)."""

    def files(wildcards):
        return [
            pattern.format(
                arch=c["arch"],
                seed=c["seed"],
                sparsity=c["sparsity"],
                repair=c["token"],
                device=wildcards.device,
                **extra,
            )
            for c in repair_plan(wildcards)
        ]

    return files


def repair_references(pattern):
    """`pattern` for the fp32 cell each planned candidate is measured against."""

    def files(wildcards):
        cells = {(c["arch"], c["seed"], c["sparsity"]) for c in repair_plan(wildcards)}
        return [
            pattern.format(arch=a, seed=s, sparsity=p, quant="fp32")
            for a, s, p in sorted(cells)
        ]

    return files


def repair_bench_files(wildcards):
    repeats = config["devices"][wildcards.device]["repeats"]
    return [
        f
        for r in range(repeats)
        for f in repair_files(rules.bench_repair.output.bench, repeat=r)(wildcards)
    ]


def repair_keras(wildcards):
    """The Keras models' metrics of the planned candidates (a .tflite architecture has none)."""
    cells = {(c["arch"], c["seed"], c["sparsity"]) for c in repair_plan(wildcards)}
    return [
        rules.evaluate_keras.output.metrics.format(arch=a, seed=s, sparsity=p)
        for a, s, p in sorted(cells)
        if has_keras_model(config["architectures"][a])
    ]


def repair_source(wildcards):
    """A candidate's inputs: the cell's fp32 .tflite, calibration images and, for the ones
    keeping the worst tensors float, the model's per-layer error."""
    model = {**wildcards, "quant": "fp32"}
    out = {"fp32": rules.convert_tflite.output.tflite.format(**model)}
    if wildcards.repair != "int8ma":
        out["layer_error"] = rules.layer_error.output.csv.format(**wildcards)
    return out


def repair_reference(wildcards):
    """What a candidate's accuracy is compared with, as for any cell (reference_metrics)."""
    model = dict(arch=wildcards.arch, seed=wildcards.seed, sparsity=wildcards.sparsity)
    if has_keras_model(config["architectures"][wildcards.arch]):
        return {"keras": rules.evaluate_keras.output.metrics.format(**model)}
    return {
        "reference": rules.evaluate_tflite.output.metrics.format(**model, quant="fp32")
    }


def repair_cell(wildcards):
    return settings.cell(
        wildcards.arch, wildcards.seed, wildcards.sparsity, wildcards.repair
    )


def repair_settings(wildcards):
    """The int8 cell's settings, and which candidate this is."""
    base = settings.cell_settings(config, wildcards.arch, wildcards.sparsity, "int8")
    return {**base, "repair": wildcards.repair}
