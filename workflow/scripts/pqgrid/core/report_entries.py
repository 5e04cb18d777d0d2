"""Every table and figure of the report, defined once: name -> kind, report category,
caption, the long tables it reads (`needs`) and the per-figure settings it reads.

The rules read it to give each target only its own inputs and params (a per-class figure
does not wait for device benchmarks; changing one figure's setting reruns that figure), the
report reads its categories and captions, and the tests check that every entry has exactly
one function (tables.py / figures.py) and vice versa. Pure Python: a dry run imports it
without pandas or matplotlib."""

from __future__ import annotations

from dataclasses import dataclass

# results/tables/<name>.csv
LONG_TABLES = ("summary", "per_class", "bench", "layer_error", "pie", "pie_per_class")


@dataclass(frozen=True)
class Entry:
    name: str  # a target name, or a family prefix ending in "_" (one target per arch/device)
    kind: str  # "table" | "figure"
    category: str  # section of the HTML report
    caption: str
    needs: tuple  # long tables read; "bench"/"layer_error" only where the run makes them
    family: str | None = None  # "arch" | "device" for a family prefix
    settings: tuple = ()  # keys it reads from report.figures.per_figure.<name>


# Every per-figure setting a figure may read (`Entry.settings`), with its JSON-schema type;
# report.figures.per_figure.<figure> is checked against these before any job.
FIGURE_SETTINGS = {
    "size": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 2, "maxItems": 2},
    "modes": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "device": {"type": "string"},
    "x": {"enum": ["exact_sparsity_pct", "sparsity_pct"]},
    "label_top": {"type": "integer", "minimum": 0},
    "xscale": {"enum": ["log", "linear", "symlog"]},
    "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "top_layers": {"type": "integer", "minimum": 1},
}
# The shared seaborn settings (report.figures.*) may also be set for one figure.
SHARED_FIGURE_SETTINGS = {
    "style": {"type": "string"},
    "context": {"type": "string"},
    "palette": {"type": "string"},
    "dpi": {"type": "integer", "minimum": 50},
}


def figure_settings_schema(name: str) -> dict:
    """The schema of report.figures.per_figure.<name>: its own settings and the shared ones."""
    own = {k: FIGURE_SETTINGS[k] for k in resolve(name)[0].settings}
    return {"type": "object", "properties": {**SHARED_FIGURE_SETTINGS, **own}, "additionalProperties": False}


def _table(name, caption, needs=("summary",)):
    return Entry(name, "table", "tables", caption, needs)


def _figure(name, category, caption, needs=("summary",), family=None, settings=()):
    return Entry(name, "figure", category, caption, needs, family, ("size", *settings))


ENTRIES = (
    _table("table_4_1_training", "Table 4.1: parameters and top-1/top-3 (train, test) of the trained models"),
    _table("table_4_2_fp32_device", "Table 4.2: fp32 models on each device", ("summary", "bench")),
    _table("table_4_3_int8_device", "Table 4.3: int8 models on each device", ("summary", "bench")),
    _table("table_4_4_depthwise", "Table 4.4: depthwise share of the parameters"),
    _table(
        "table_4_5_pruned_fp32", "Table 4.5: pruned fp32 models: exact sparsity, size, latency", ("summary", "bench")
    ),
    _table("table_4_6_per_class", "Table 4.6: per-class top-1 by pruning and quantization", ("per_class",)),
    _table(
        "table_4_7_minimalistic_fp32", "Table 4.7: MobileNetV3 variants incl. minimalistic, fp32", ("summary", "bench")
    ),
    _table(
        "table_4_8_minimalistic_int8", "Table 4.8: MobileNetV3 variants incl. minimalistic, int8", ("summary", "bench")
    ),
    _table(
        "table_remedies",
        "Remedies for int8 loss: fp32 vs int8 PTQ vs int16x8 vs QAT top-1 (and PQAT sparsity), thesis' int8 beside",
    ),
    _table(
        "table_widths",
        "Width and input size per device (the MobileNet/Caltech-101 study's table): top-1, latency, size in fp32 and int8",
        ("summary", "bench"),
    ),
    _table(
        "table_devices",
        "Boards side by side: latency, memory, power, energy per inference, host vs on-device top-1, throttling",
        ("summary", "bench"),
    ),
    _table(
        "table_methods",
        "Pruning methods side by side: top-1, size, MACs read back from the .tflite and p50 latency, "
        "each against the dense model",
        ("summary", "bench"),
    ),
    _figure(
        "fig_4_1_quantization_change",
        "device",
        "Fig. 4.1: change of size, RAM, latency, top-1/3 by quantization",
        ("summary", "bench"),
        settings=("modes", "device"),
    ),
    _figure("fig_4_2_top1_vs_sparsity_fp32", "accuracy", "Fig. 4.2: top-1 vs exact sparsity (fp32)", settings=("x",)),
    _figure("fig_4_3_gzip_vs_sparsity_fp32", "size", "Fig. 4.3: gzip size vs sparsity (fp32)", settings=("x",)),
    _figure("fig_4_4_top1_vs_sparsity_int8", "accuracy", "Fig. 4.4: top-1 vs sparsity after int8", settings=("x",)),
    _figure("fig_4_5_gzip_vs_sparsity_int8", "size", "Fig. 4.5: gzip size vs sparsity after int8", settings=("x",)),
    _figure(
        "fig_4_9_quantization_change_v3",
        "device",
        "Fig. 4.9: the same for MobileNetV3 incl. minimalistic",
        ("summary", "bench"),
        settings=("modes", "device"),
    ),
    _figure(
        "fig_4_10_top1_vs_sparsity_v3",
        "accuracy",
        "Fig. 4.10: top-1 vs sparsity, MobileNetV3 variants, fp32 and int8",
        settings=("x",),
    ),
    _figure(
        "fig_4_11_gzip_vs_sparsity_v3",
        "size",
        "Fig. 4.11: gzip size vs sparsity, MobileNetV3 variants",
        settings=("x",),
    ),
    _figure(
        "layer_error_worst",
        "accuracy",
        "Where int8 hurts: the ops with the largest int8 error (rmse in quantization steps), unpruned models",
        ("layer_error",),
        settings=("top_layers",),
    ),
    _figure(
        "pie_rate",
        "forgetting",
        "PIE rate vs sparsity per quantization mode: test images whose modal label over the compressed seed "
        "population differs from the uncompressed population's (Hooker et al. 2019)",
        ("pie",),
    ),
    _figure(
        "energy_vs_top1",
        "device",
        "Energy per inference vs test top-1, one panel per device with a power source (how power was known in the title)",
        ("summary", "bench"),
        settings=("xscale",),
    ),
    _figure("quant_modes", "accuracy", "All quantization modes side by side: top-1 and gzip size (unpruned)"),
    _figure(
        "pareto_gzip",
        "size",
        "Pareto view: test top-1 vs gzip size, non-dominated cells labelled",
        settings=("label_top", "xscale"),
    ),
    _figure(
        "per_class_pruning_",
        "per class",
        "Figs. 4.6/4.7: per-class Δ top-1 by pruning, one per architecture",
        ("per_class",),
        family="arch",
        settings=("alpha",),
    ),
    _figure(
        "per_class_quantization_",
        "per class",
        "Fig. 4.8: per-class Δ top-1 by quantization, one per architecture",
        ("per_class",),
        family="arch",
        settings=("alpha",),
    ),
    _figure(
        "pareto_latency_",
        "device",
        "Pareto view: test top-1 vs latency, one per device",
        ("summary", "bench"),
        family="device",
        settings=("label_top", "xscale"),
    ),
)
BY_NAME = {e.name: e for e in ENTRIES}
TABLES = [e.name for e in ENTRIES if e.kind == "table"]
FIGURES = [e.name for e in ENTRIES if e.kind == "figure"]


def resolve(name: str) -> tuple[Entry, str | None]:
    """'per_class_pruning_mobilenet' -> (its family's entry, 'mobilenet')."""
    if name in BY_NAME and BY_NAME[name].family is None:
        return BY_NAME[name], None
    for e in ENTRIES:
        if e.family and name.startswith(e.name) and len(name) > len(e.name):
            return e, name[len(e.name) :]
    raise KeyError(f"unknown table or figure {name!r}; known: {', '.join(BY_NAME)}")


def labels(name: str) -> dict:
    """A figure's labels in the HTML report (its table of results can be filtered by them):
    the figure, and the architecture or device it is drawn for ("all" for every one)."""
    entry, member = resolve(name)
    return {
        "figure": entry.name.rstrip("_"),
        "architecture": member if entry.family == "arch" else "all",
        "device": member if entry.family == "device" else "all",
    }


# Figures that only a device with a power source can fill: left out of a run without one
# (never a placeholder in `all` or the report).
NEEDS_POWER = ("energy_vs_top1",)


def figure_names(architectures: list, devices: list, with_energy: bool = True) -> list:
    """Every figure target of a run: single figures, then one per architecture/device."""
    members = {"arch": architectures, "device": devices}
    names = []
    for e in ENTRIES:
        if e.kind == "figure" and (with_energy or e.name not in NEEDS_POWER):
            names += [e.name + m for m in members[e.family]] if e.family else [e.name]
    return names


def inputs(name: str, have_bench: bool, have_layer_error: bool = False) -> list:
    """The long tables a target reads; bench only where devices are configured, layer_error
    only where the grid has an int8 post-training cell."""
    have = {"bench": have_bench, "layer_error": have_layer_error}
    return [n for n in resolve(name)[0].needs if have.get(n, True)]
