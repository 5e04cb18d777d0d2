"""The settings each job receives as Snakemake `params`: exactly what the job reads, so a
change reruns the stage that reads it and what follows, nothing else. One function per
stage; `workflow/schemas/stages.yaml` says which stage each config key reaches, and
tests/test_staleness.py checks it on a finished run. Pure Python, called by the rule files
at parse time."""

from __future__ import annotations

import copy

from pqgrid.core.catalog import arch_kind, input_scaling
from pqgrid.core.grid import PATTERNS, grid, input_size, schedule_for, sparsity_method, sparsity_value
from pqgrid.core.modes import mode

__all__ = [
    "calibration_samples",
    "cell",
    "cell_settings",
    "device_settings",
    "devices_with",
    "figure_settings",
    "findings_context",
    "data_settings",
    "model_settings",
    "pruning_settings",
    "qat_settings",
    "sparsity_value",
    "training_settings",
]

# Fine-tuning validates like training did and keeps training's BatchNorm setting.
FROM_TRAINING = ("validation", "holdout_fraction", "batchnorm_momentum", "threads")


# An architecture's fine-tuning overrides: each reaches its own stage only (training,
# pruning, QAT), never the model's definition.
STAGE_OVERRIDES = ("training", "pruning", "qat")


def data_settings(config: dict) -> dict:
    """What the data stage reads of `dataset`; the image side comes from the target's
    folder, so changing dataset.image_size leaves the folders of other sizes alone."""
    return {k: v for k, v in config["dataset"].items() if k != "image_size"}


def model_settings(config: dict, arch: str) -> dict:
    """What defines an architecture's model: builder, its keyword arguments, input_size,
    stem and weights, without the fine-tuning overrides (a QAT learning rate must not
    retrain the model)."""
    return {k: v for k, v in config["architectures"][arch].items() if k not in STAGE_OVERRIDES}


def training_settings(config: dict, arch: str) -> dict:
    """Global training settings with the architecture's overrides applied. `transfer` only
    for a pretrained start (`weights:`): training from scratch does not read it."""
    merged = copy.deepcopy(config["training"])
    own = config["architectures"][arch].get("training", {})
    merged.update(own)
    if arch_kind(config["architectures"][arch]) == "model":  # trained already: fine-tuned only when asked
        merged["epochs"] = own.get("epochs", 0)
    if config["architectures"][arch].get("weights"):
        # merged key by key: an architecture may change head_epochs alone
        merged["transfer"] = {**config["training"]["transfer"], **own.get("transfer", {})}
    else:
        merged.pop("transfer", None)
    return merged


def calibration_samples(config: dict, quant: str) -> int | None:
    """Representative images of a calibrated mode's conversion (qat too: the converter
    calibrates what fake-quant ranges leave open; 5 and 20 samples give different files);
    None for the others, which no calibration touches."""
    return config["quantization"]["calibration_samples"] if mode(quant).calibrated else None


def pruning_settings(config: dict, arch: str, sparsity) -> dict:
    """Fine-tuning settings and the schedule of one target sparsity (an int percentage or a
    pattern like "2:4"), overrides applied, plus what fine-tuning shares with training."""
    pr = config["pruning"]
    merged = {k: copy.deepcopy(v) for k, v in pr.items() if k not in ("sparsities", "schedules", "methods")}
    merged.update(config["architectures"][arch].get("pruning", {}))
    method, sparsity = sparsity_method(sparsity)
    if method != "magnitude":  # only where set: adding a method leaves magnitude cells' params alone
        merged["method"] = method
    merged["schedule"] = dict(schedule_for(pr, sparsity))
    if sparsity in PATTERNS:
        m, n = PATTERNS[sparsity]
        merged["m_by_n"] = [m, n]
        merged["target_sparsity"] = round(100 * m / n)
    else:
        merged["target_sparsity"] = sparsity
    train = training_settings(config, arch)
    for key in FROM_TRAINING:
        merged[key] = train[key]
    if "deterministic" in train:  # only where set: a config without the key plans the same jobs
        merged["deterministic"] = train["deterministic"]
    return merged


def qat_settings(config: dict, arch: str, sparsity) -> dict:
    """Quantization-aware fine-tuning settings, the architecture's overrides applied, plus what
    fine-tuning shares with training. A pruned model (sparsity != 0) keeps its zeros (PQAT)."""
    merged = copy.deepcopy(config["quantization"]["qat"])
    merged.update(config["architectures"][arch].get("qat", {}))
    train = training_settings(config, arch)
    for key in FROM_TRAINING:
        merged[key] = train[key]
    if "deterministic" in train:  # only where set: a config without the key plans the same jobs
        merged["deterministic"] = train["deterministic"]
    merged["preserve_sparsity"] = sparsity not in (0, "0")
    return merged


def cell(arch: str, seed: str, sparsity: str, quant: str | None = None) -> dict:
    """A cell's identity from its wildcards, typed: {"arch", "seed": int, "sparsity", "quant"}."""
    out = {"arch": arch, "seed": int(seed), "sparsity": sparsity_value(sparsity)}
    if quant is not None:
        out["quant"] = quant
    return out


def cell_settings(config: dict, arch: str, sparsity: str, quant: str) -> dict:
    """Everything that made a cell, recorded in its metrics JSON: the settings of every
    stage upstream of it, and nothing the cell did not go through."""
    model = model_settings(config, arch)
    return {
        "architecture": model,
        "input_scaling": input_scaling(model),
        "training": training_settings(config, arch),
        "pruning": pruning_settings(config, arch, sparsity_value(sparsity)) if sparsity != "0" else None,
        "quantization": {
            "mode": quant,
            "calibration_samples": calibration_samples(config, quant),
            **({"qat": qat_settings(config, arch, sparsity)} if mode(quant).from_qat_model else {}),
        },
        "dataset": {**data_settings(config), "image_size": input_size(config, arch)},
    }


def figure_settings(config: dict, name: str) -> dict:
    """The shared plot settings with the figure's own (report.figures.per_figure.<name>)."""
    f = config["report"]["figures"]
    out = {k: v for k, v in f.items() if k != "per_figure"}
    out.update((f.get("per_figure") or {}).get(name, {}))
    return out


def findings_context(config: dict, devices: list) -> str:
    """The line above the findings: what this run was."""
    d, g = config["dataset"], grid(config)
    return (
        f"Dataset: {d['source']} (per class: {d.get('train_per_class') or 'all'} train, "
        f"{d.get('test_per_class') or 'all'} test); architectures: {', '.join(g['arch'])}; "
        f"seeds: {', '.join(g['seed'])}; devices: {', '.join(devices) or 'none'}; "
        f"epochs: {config['training']['epochs']}; pruning.depthwise: "
        f"{config['pruning'].get('depthwise', True)} (false reproduces tfmot's default)."
    )


# What each device stage does not read: changing it does not rerun that stage's jobs
# (turning on `accuracy` does not retime every cell).
DEVICE_KEYS_UNUSED = {
    # `repeats` says how many session files there are, not how one is measured: raising it
    # measures only the new sessions
    "latency": ("accuracy", "power", "repeats"),
    "energy": ("accuracy", "num_runs", "repeats", "tool", "benchmark_model", "op_profiling"),
    "accuracy": ("power", "cooldown", "num_runs", "repeats", "warmup_runs", "tool", "benchmark_model", "op_profiling"),
    "setup": (
        *("accuracy", "power", "cooldown", "num_runs", "repeats", "warmup_runs", "tool", "benchmark_model"),
        "op_profiling",
        "threads",
    ),
}


def device_settings(config: dict, name: str, stage: str) -> dict:
    """A device's settings as one device stage (latency, energy, accuracy) reads them, keys
    sorted: Snakemake compares params by their text, and a --configfile overlay may list
    the same settings in another order."""
    dev = config["devices"][name]
    return {k: dev[k] for k in sorted(dev) if k not in DEVICE_KEYS_UNUSED[stage]}


def devices_with(config: dict, key: str) -> list:
    """The devices that set `key` (power: energy is measured; accuracy: on-device accuracy)."""
    return [name for name, dev in (config.get("devices") or {}).items() if dev.get(key)]
