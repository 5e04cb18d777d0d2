"""The config checks: every value before any job - the JSON schema (core/schema.py), then
what a schema cannot express (architectures and their files, the grid and its subsets,
pruning methods, devices, the ship budget, figure settings), each mistake one line naming
the key and the fix. The grid itself is core/grid.py, paths core/paths.py. No TensorFlow
import here: the Snakefile calls these at parse time, and a dry run must stay fast
(benchmark P3)."""

from __future__ import annotations

import ast
import os
import re
import sys

from pqgrid.core import report_entries
from pqgrid.core.catalog import (
    BUILDERS,
    STEMS,
    arch_kind,
    builder_entry,
    builder_kwargs,
    has_keras_model,
    is_user_builder,
    pruning_methods,
)
from pqgrid.core.devices import DEVICE_TYPES
from pqgrid.core.grid import PATTERNS, cells, grid, schedule_for, selected_architectures, sparsity_token
from pqgrid.core.modes import MODES, SPARSE_SUFFIX, mode, split_quant
from pqgrid.core.paths import DATASET_SOURCES, WORKFLOW_DIR, module_file, source_path, user_builder_file, workflow_path
from pqgrid.core.pruning_methods import METHODS
from pqgrid.core.schema import ConfigError, validate


def check_config(config: dict, schema: dict | None = None) -> None:
    """Every value of the config, before any job: the JSON schema (types, ranges, enums,
    unknown keys; also inside per-architecture blocks), then what a schema cannot express.
    Raises ConfigError with one line: `<dotted.key.path>: <what is wrong> (<fix>)`."""
    devices = config.get("devices")
    for name, dev in devices.items() if isinstance(devices, dict) else ():
        if isinstance(dev, dict) and "password" in dev:
            raise ConfigError(
                f"devices.{name}.password: passwords are not accepted; use identity_file, an ssh agent or ~/.ssh/config"
            )
    if schema is not None:
        validate(config, schema, "")
    _check_architectures(config)
    _check_grid(config)
    _check_pruning(config)
    check_dataset_source(config["dataset"]["source"])
    _check_devices(config)
    _check_figures(config)
    _check_ship(config)


def _check_architectures(config: dict) -> None:
    archs = config.get("architectures") or {}
    if not archs:
        raise ConfigError("architectures: the grid is empty; name at least one architecture")
    for name, a in archs.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_]*", name):
            raise ConfigError(f"architectures.{name}: use letters, digits and '_' only in architecture names")
        if not any(k in a for k in ("builder", "model", "tflite")):
            raise ConfigError(
                f"architectures.{name}: give builder (to train it), model (a trained Keras model) or tflite (a float .tflite)"
            )
        if arch_kind(a) != "builder":
            _check_model_file(name, a)
            continue
        if "classes" in a:
            raise ConfigError(
                f"architectures.{name}.classes: names a model file's outputs; a builder trains on the data set's "
                "order - remove classes"
            )
        b = a.get("builder")
        if is_user_builder(b):
            check_user_builder(name, a)
        elif b not in BUILDERS:
            raise ConfigError(
                f"architectures.{name}.builder: unknown builder {b!r}; choose one of {', '.join(sorted(BUILDERS))}"
                " or give your own as module:function (or path/to/file.py:function)"
            )
        _check_arch_options(name, a, config)
        kwargs = builder_entry(b)["kwargs"]
        if kwargs is None:  # a user's function: check_user_builder compared them with its signature
            continue
        validate(
            builder_kwargs(a),
            {"type": "object", "properties": kwargs, "additionalProperties": False},
            f"architectures.{name}",
            fix=f"{b} takes: {', '.join(sorted(kwargs)) or 'no arguments'}",
        )


def _check_arch_options(name: str, a: dict, config: dict) -> None:
    b = a["builder"]
    stem = a.get("stem", "imagenet")
    if stem not in STEMS:
        raise ConfigError(f"architectures.{name}.stem: {stem!r} is not allowed (choose one of {', '.join(STEMS)})")
    size = a.get("input_size", config["dataset"].get("image_size"))
    key = f"architectures.{name}.input_size" if "input_size" in a else "dataset.image_size"
    smallest = builder_entry(b)["min_size"]
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < smallest):
        raise ConfigError(
            f"{key}: {size!r} is smaller than {b} allows or not a whole number (give an integer >= {smallest})"
        )
    weights = a.get("weights")
    if weights is None:
        return
    if not isinstance(weights, str):
        raise ConfigError(
            f"architectures.{name}.weights: {weights!r} is not a string (give imagenet or a path to an .h5)"
        )
    if builder_entry(b)["source"] == "user":
        raise ConfigError(
            f"architectures.{name}.weights: a builder of your own starts from scratch; to start from your "
            "trained model give it as `model: <.keras, .h5 or SavedModel>` instead of builder and weights"
        )
    if weights == "imagenet" and BUILDERS[b]["source"] != "keras":
        raise ConfigError(
            f"architectures.{name}.weights: {b} has no ImageNet weights to download "
            "(give weights: <path to an .h5 saved from the same builder> or leave weights out)"
        )
    if weights != "imagenet" and not os.path.isfile(workflow_path(weights)):
        raise ConfigError(
            f"architectures.{name}.weights: {weights!r} does not exist (relative paths start at {WORKFLOW_DIR}; "
            "give imagenet or a path to an .h5)"
        )


def _check_model_file(name: str, a: dict) -> None:
    """A trained model given as a file: what can be said without loading it (models/imported.py
    loads it once before any job: shapes, classes, layers)."""
    key = f"architectures.{name}"
    given = [k for k in ("builder", "model", "tflite") if k in a]
    if len(given) > 1:
        raise ConfigError(
            f"{key}: give one of builder (to train), model (a trained Keras model) or tflite, not {' and '.join(given)}"
        )
    kind = given[0]
    if not os.path.exists(workflow_path(a[kind])):
        raise ConfigError(f"{key}.{kind}: {a[kind]!r} does not exist (relative paths start at {WORKFLOW_DIR})")
    if kind == "tflite" and "custom_objects" in a:
        raise ConfigError(f"{key}.custom_objects: a .tflite carries its ops; remove custom_objects")
    for other in ("weights", "stem", *builder_kwargs(a)):
        if other in a:
            raise ConfigError(f"{key}.{other}: a trained model file takes no {other}; remove it")
    if a.get("scaling") is None:
        raise ConfigError(
            f"{key}.scaling: give the input scaling the model was trained with: raw (0..255), tf (x/127.5 - 1), "
            "torch (x/255, ImageNet mean/std) or {scale, mean, std}"
        )
    module = a.get("custom_objects")
    if module and module_file(module) is None:
        raise ConfigError(
            f"{key}.custom_objects: {module!r} not found; give a path/to/file.py or a module importable from {WORKFLOW_DIR}"
        )


def check_user_builder(name: str, a: dict) -> None:
    """A builder of the user's own, read without running it: the file exists, defines the
    function, the function takes `input_shape` and `classes` and every keyword argument the
    config gives it; the config says what scaling the model expects. (`stem: cifar` reaches
    the function when it takes `stem`, else the model's first two strides are set to 1.)"""
    key = f"architectures.{name}.builder"
    module, function = a["builder"].rsplit(":", 1)
    path = user_builder_file(a["builder"])
    if path is None:
        raise ConfigError(
            f"{key}: {module!r} not found; give a file (path/to/file.py:{function}, relative to {WORKFLOW_DIR}) "
            "or a module importable from there"
        )
    try:
        with open(path) as fh:
            tree = ast.parse(fh.read(), filename=path)
    except SyntaxError as e:
        raise ConfigError(f"{key}: {path} does not parse ({e.msg}, line {e.lineno})") from None
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if fn is None:
        raise ConfigError(f"{key}: {path} defines no function {function!r} at its top level")
    args = {x.arg for x in fn.args.args + fn.args.kwonlyargs}
    takes_any = fn.args.kwarg is not None
    missing = [p for p in ("input_shape", "classes") if p not in args and not takes_any]
    if missing:
        raise ConfigError(
            f"{key}: {function}() must take {' and '.join(missing)} (pqgrid calls it with input_shape=(h, w, 3), classes=n)"
        )
    extra = sorted(k for k in builder_kwargs(a) if k not in args and not takes_any)
    if extra:
        raise ConfigError(
            f"architectures.{name}.{extra[0]}: {function}() takes no {extra[0]!r}; remove it or add the argument"
        )
    if a.get("scaling") is None:
        raise ConfigError(
            f"architectures.{name}.scaling: a builder of your own needs the input scaling its model expects: "
            "raw (0..255), tf (x/127.5 - 1), torch (x/255, ImageNet mean/std) or {scale, mean, std}"
        )


def _check_grid(config: dict) -> None:
    archs = config.get("architectures") or {}
    chosen = config.get("grid_architectures")
    if chosen is not None:
        if not chosen:
            raise ConfigError("grid_architectures: the grid is empty; name at least one architecture or use null")
        for name in chosen:
            if name not in archs:
                raise ConfigError(
                    f"grid_architectures: {name!r} is not defined under architectures; "
                    f"define it or choose from {', '.join(archs)}"
                )
    modes = config["quantization"]["modes"]
    if not modes:
        raise ConfigError("quantization.modes: the grid is empty; name at least one mode")
    for m in modes:
        if split_quant(m)[0] not in MODES:
            raise ConfigError(
                f"quantization.modes: unknown mode {m!r}; choose from {', '.join(MODES)}"
                f" (each optionally with {SPARSE_SUFFIX!r})"
            )
    if not config.get("seeds"):
        raise ConfigError("seeds: the grid is empty; give at least one seed, e.g. [0]")
    _check_subsets(config)
    if any(mode(m).from_qat_model for m in modes if split_quant(m)[0] in MODES):
        for a in {c["arch"] for c in cells(config) if mode(c["quant"]).from_qat_model}:
            if arch_kind(archs[a]) == "model":
                continue  # a model file: models/imported.py tries QAT on it before any job
            b = archs[a]["builder"]
            if not builder_entry(b)["qat"]:
                raise ConfigError(
                    f"quantization.modes: qat is not supported for {a} ({b}: pqgrid/models/qat.py does not "
                    "know its layers); leave it out with quantization.subsets.qat.architectures"
                )


def _check_subsets(config: dict) -> None:
    q = config["quantization"]
    g = grid(config)
    for name, sub in (q.get("subsets") or {}).items():
        where = f"quantization.subsets.{name}"
        # A known mode absent from this run's modes is fine: an overlay may narrow the modes
        # (presets/two-archs.yaml on the laptop preset) without touching its subsets.
        if split_quant(str(name))[0] not in MODES:
            raise ConfigError(f"{where}: unknown mode {name!r}; choose from {', '.join(MODES)}")
        for a in sub.get("architectures", []):
            if a not in g["arch"]:
                raise ConfigError(
                    f"{where}.architectures: {a!r} is not in the grid; choose from {', '.join(g['arch'])}"
                )
        for s in sub.get("sparsities", []):
            if sparsity_token(s) not in g["sparsity"]:
                raise ConfigError(
                    f"{where}.sparsities: {s!r} is not in pruning.sparsities; choose from "
                    f"{', '.join(map(str, config['pruning']['sparsities']))}"
                )
    if not cells(config):
        raise ConfigError("quantization.subsets: no cell is left in the grid; widen a subset")


def _check_pruning(config: dict) -> None:
    archs = config.get("architectures") or {}
    pr = config["pruning"]
    if not pr["sparsities"]:
        raise ConfigError("pruning.sparsities: the grid is empty; use [0] for no pruning")
    for s in pr["sparsities"]:
        if isinstance(s, str) and ":" in s:
            if s not in PATTERNS:
                raise ConfigError(
                    f"pruning.sparsities: pattern {s!r} is not supported; use one of "
                    f"{', '.join(PATTERNS)} or a whole percentage"
                )
        elif not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= 99:
            raise ConfigError(
                f"pruning.sparsities: {s!r} is not a whole percentage in 0..99 nor a pattern ({', '.join(PATTERNS)})"
            )
        if s and schedule_for(pr, s) is None:
            raise ConfigError(
                f"pruning.schedules: no schedule for sparsity {s}; add "
                f"'{s}: {{frequency_epochs: ..., steps: ...}}' under pruning.schedules"
            )
        if s:
            sch = schedule_for(pr, s)
            if sch.get("frequency_epochs", 0) <= 0 or sch.get("steps", 0) < 1:
                raise ConfigError(f"pruning.schedules.{s}: frequency_epochs must be > 0 and steps >= 1")
    _check_methods(config)
    for regex_key in [("pruning", pr.get("exclude", ""))] + [
        (f"architectures.{n}.pruning", a.get("pruning", {}).get("exclude", "")) for n, a in archs.items()
    ]:
        try:
            re.compile(regex_key[1] or "")
        except re.error as e:
            raise ConfigError(f"{regex_key[0]}.exclude: invalid regex ({e})") from None


def _check_methods(config: dict) -> None:
    """pruning.methods: each needs a whole percentage to prune to; an architecture whose
    layout a method cannot take is left out of that method's cells, with one line."""
    pr = config["pruning"]
    methods = [m for m in pr.get("methods", ["magnitude"]) if m != "magnitude"]
    if methods and not any(isinstance(s, int) and s > 0 for s in pr["sparsities"]):
        raise ConfigError(
            f"pruning.methods: {', '.join(methods)} prune to a percentage; add one (e.g. 50) to pruning.sparsities"
        )
    for s in pr["sparsities"]:
        for m in methods:
            if isinstance(s, int) and s > METHODS[m].largest_sparsity:
                raise ConfigError(
                    f"pruning.sparsities: {s} % is beyond what {m} prunes (up to {METHODS[m].largest_sparsity} %); "
                    f"lower it or leave {m} out of pruning.methods"
                )
    for name in selected_architectures(config):
        a = config["architectures"][name]
        left = [m for m in methods if m not in pruning_methods(a)]
        if left and has_keras_model(a):
            needs = ", ".join(f"{m} needs {METHODS[m].layout}" for m in left)
            print(
                f"pqgrid: {name}: no {' or '.join(left)} cells (the layout of {a.get('builder')} does not allow it: {needs})",
                file=sys.stderr,
            )


def _check_devices(config: dict) -> None:
    for name, dev in (config.get("devices") or {}).items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
            raise ConfigError(f"devices.{name}: use letters, digits, '_' and '-' only in device names")
        for key, why in DEVICE_TYPES[dev.get("type", "local")].needs:
            if not dev.get(key):
                raise ConfigError(f"devices.{name}.{key}: {why}")
        if dev.get("setup") and dev.get("type", "local") != "ssh":
            raise ConfigError(
                f"devices.{name}.setup: sets up a board over SSH; remove it from a {dev.get('type', 'local')} device"
            )
        if dev.get("tool") == "benchmark_model" and not dev.get("benchmark_model"):
            raise ConfigError(
                f"devices.{name}.benchmark_model: tool benchmark_model needs the binary's path on the device"
            )
        if (
            dev.get("op_profiling")
            and (dev.get("tool") or ("benchmark_model" if dev.get("benchmark_model") else "harness"))
            != "benchmark_model"
        ):
            raise ConfigError(
                f"devices.{name}.op_profiling: only benchmark_model profiles ops; set benchmark_model: <path> or remove op_profiling"
            )
        _check_power(name, dev.get("power"))


def _check_power(name: str, power) -> None:
    """A device's power source: exactly one of command, rapl, watts."""
    if not power:
        return
    sources = [k for k in ("command", "rapl", "watts") if power.get(k) is not None]
    if len(sources) != 1:
        got = " and ".join(sources) if sources else "none"
        raise ConfigError(
            f"devices.{name}.power: give exactly one source - command (prints watts), rapl (a powercap zone) or watts (stated) - not {got}"
        )
    # `where: host` is the schema's default (filled in for every power source): only
    # `device` says something that a rapl zone or a stated wattage cannot do
    if power.get("where") == "device" and sources != ["command"]:
        raise ConfigError(f"devices.{name}.power.where: only a power command runs somewhere; remove `where`")
    if power.get("pattern"):
        try:
            if re.compile(power["pattern"]).groups < 1:
                raise ConfigError(
                    f"devices.{name}.power.pattern: needs one group around the watt value, e.g. '([0-9.]+) W'"
                )
        except re.error as e:
            raise ConfigError(f"devices.{name}.power.pattern: invalid regex ({e})") from None


def _check_ship(config: dict) -> None:
    """`ship:` needs devices to choose for, each one of `devices`, and for energy a power source."""
    ship, devices = config.get("ship") or {}, config.get("devices") or {}
    names = ship.get("devices")
    for name in names or ():
        if name not in devices:
            known = ", ".join(devices) or "none"
            raise ConfigError(
                f"ship.devices: {name!r} is not a device of this config (devices: {known}); name one of them"
            )
    if ship.get("objective") == "energy_mj":
        for name in names or devices:
            if not (devices.get(name) or {}).get("power"):
                raise ConfigError(
                    f"ship.objective: energy_mj needs a power source on {name} (devices.{name}.power), or choose another objective"
                )


def _check_figures(config: dict) -> None:
    # any configured architecture, also one this run leaves out of its grid
    names = report_entries.figure_names(list(config["architectures"]), list(config.get("devices") or {}))
    per_figure = ((config.get("report") or {}).get("figures") or {}).get("per_figure") or {}
    for name, values in per_figure.items():
        if name not in names:
            close = [n for n in names if n.startswith(str(name)[:6])] or names
            raise ConfigError(
                f"report.figures.per_figure.{name}: no such figure (figures: {', '.join(close[:6])}"
                f"{', ...' if len(close) > 6 else ''})"
            )
        validate(values, report_entries.figure_settings_schema(name), f"report.figures.per_figure.{name}")


def check_dataset_source(source: str) -> None:
    if source in DATASET_SOURCES:
        return
    if not os.path.exists(source_path(source)):
        raise ConfigError(
            f"dataset.source: {source!r} does not exist (relative paths start at {WORKFLOW_DIR}); give 'keras', 'synthetic', an "
            "image-folder directory or .tar/.tar.gz, CIFAR-10 python batches "
            "(directory or cifar-10-python.tar.gz) or an .npz of uint8 images (x, y)"
        )
