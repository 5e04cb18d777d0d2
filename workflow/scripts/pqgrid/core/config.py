"""Pure-Python view of the configuration: builders, grid expansion and the semantic checks
that the JSON schema cannot express. No TensorFlow import here: the Snakefile calls these at
parse time, and a dry run must stay fast (benchmark P3)."""

from __future__ import annotations

import ast
import copy
import importlib.util
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
    is_user_builder,
    pruning_methods,
)
from pqgrid.core.devices import DEVICE_TYPES
from pqgrid.core.modes import MODES, SPARSE_SUFFIX, derives_from_fp32, mode, split_quant
from pqgrid.core.pruning_methods import METHODS, method_of, token_for

DATASET_SOURCES = ("keras", "synthetic", "synthetic-photos")  # plus a path (folder, tar, CIFAR python batches)


# The checkout. Relative paths in the config (dataset.source, architectures.*.weights,
# report.thesis_dir) start here, not in the run folder or wherever snakemake was started:
# the same config means the same files from any folder, and params hold the path as written
# (moving a run folder or the checkout reruns nothing).
# this file is <root>/workflow/scripts/pqgrid/core/config.py
WORKFLOW_DIR = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
)
SCHEMA_PATH = os.path.join(WORKFLOW_DIR, "workflow", "schemas", "config.schema.yaml")


class ConfigError(ValueError):
    """A configuration mistake, reported as one line naming the key and the fix."""


# Structured patterns hardware can exploit: "M:N" = at least M zeros in every N consecutive
# input-channel weights. 2:4 is what sparse tensor cores and XNNPACK-style kernels use.
PATTERNS = {"2:4": (2, 4)}


# Pruning methods: one record each in core/pruning_methods.py.


def sparsity_method(token) -> tuple:
    """A {sparsity} token or config value -> (method, percentage or pattern): "ch50" ->
    ("channels", 50), "50" or 50 -> ("magnitude", 50), "2of4" or "2:4" -> ("magnitude", "2:4")."""
    if token in PATTERNS:
        return "magnitude", token
    method = method_of(token)
    if method != "magnitude":
        return method, int(str(token)[len(METHODS[method].prefix) :])
    return "magnitude", sparsity_value(str(token))


def sparsity_token(value) -> str:
    """Config value -> the `{sparsity}` wildcard: 30 -> "30", "2:4" -> "2of4" (no colon in
    file names; the two kinds can never collide since one is all digits)."""
    if isinstance(value, str) and value in PATTERNS:
        return value.replace(":", "of")
    return str(value)


def sparsity_value(token: str):
    """Inverse of sparsity_token; a method's token stays as it is ("ch50")."""
    if any(m.prefix and token.startswith(m.prefix) for m in METHODS.values()):
        return token
    return token.replace("of", ":") if "of" in token else int(token)


def schedule_for(pruning: dict, sparsity):
    """YAML gives integer keys, `--config` on the command line may give strings."""
    schedules = pruning.get("schedules") or {}
    return schedules.get(sparsity, schedules.get(str(sparsity)))


def grid(config: dict) -> dict:
    """The grid's axes as lists of strings (wildcard values)."""
    return {
        "arch": selected_architectures(config),
        "seed": [str(s) for s in config["seeds"]],
        "sparsity": _sparsity_tokens(config["pruning"]),
        "quant": list(config["quantization"]["modes"]),
    }


def _sparsity_tokens(pruning: dict) -> list:
    """The {sparsity} values of the grid: 0 (the trained model) once, then each method's
    cells - magnitude's bare (percentages and patterns), the others' with their prefix
    (percentages only)."""
    methods = pruning.get("methods", ["magnitude"])
    tokens = [sparsity_token(s) for s in pruning["sparsities"] if s == 0 or "magnitude" in methods]
    for m in methods:
        if m != "magnitude":
            tokens += [token_for(m, s) for s in pruning["sparsities"] if isinstance(s, int) and s > 0]
    return tokens


def from_tflite_file(arch_cfg: dict, sparsity: str, quant: str) -> bool:
    """Whether a cell can be made for the architecture: any for a builder or a Keras model;
    for a `.tflite` only the file itself (fp32) and the modes derived from a float .tflite,
    at sparsity 0 (no Keras model: no pruning, QAT or converter-only modes)."""
    if arch_kind(arch_cfg) != "tflite":
        return True
    return sparsity_token(sparsity) == "0" and (quant == "fp32" or derives_from_fp32(quant))


def cells(config: dict) -> list:
    """Every (arch, seed, sparsity, quant) of the grid as wildcard dicts: the product of the
    axes, less what `quantization.subsets` leaves out (a mode run on part of the grid)."""
    g = grid(config)
    subsets = config["quantization"].get("subsets") or {}
    out = []
    for a in g["arch"]:
        for s in g["seed"]:
            for p in g["sparsity"]:
                for q in g["quant"]:
                    if not from_tflite_file(config["architectures"][a], p, q):
                        continue
                    if method_of(p) not in pruning_methods(config["architectures"][a]):
                        continue
                    sub = subsets.get(q) or {}
                    if "architectures" in sub and a not in sub["architectures"]:
                        continue
                    if "sparsities" in sub and p not in [sparsity_token(v) for v in sub["sparsities"]]:
                        continue
                    out.append(dict(arch=a, seed=s, sparsity=p, quant=q))
    return out


def selected_architectures(config: dict) -> list:
    chosen = config.get("grid_architectures")
    return list(config["architectures"]) if chosen is None else list(chosen)


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
        _validate(config, schema, "")
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
        _validate(
            builder_kwargs(a),
            {"type": "object", "properties": kwargs, "additionalProperties": False},
            f"architectures.{name}",
            fix=f"{b} takes: {', '.join(sorted(kwargs)) or 'no arguments'}",
        )


def arch_label(arch_cfg: dict, px: int) -> str:
    """A readable name for tables and figures: builder, the settings that make it differ from
    the plain builder, and the input size, e.g. "MobileNet α0.5 cifar-stem 96px"."""
    given = arch_cfg.get("model") or arch_cfg.get("tflite")  # a file: its name says what it is
    parts = [arch_cfg.get("builder") or os.path.basename(os.path.normpath(given))]
    for key, value in sorted(builder_kwargs(arch_cfg).items()):
        if key == "alpha":
            parts.append(f"α{value:g}")
        elif value is True:
            parts.append(key)
        elif value is not False:
            parts.append(f"{key}={value}")
    if arch_cfg.get("stem", "imagenet") != "imagenet":
        parts.append(f"{arch_cfg['stem']}-stem")
    if arch_cfg.get("weights"):
        parts.append("imagenet-init" if arch_cfg["weights"] == "imagenet" else "pretrained")
    parts.append(f"{px}px")
    return " ".join(parts)


def input_size(config: dict, arch: str):
    """The image side an architecture runs at: its own `input_size`, else dataset.image_size
    (None: the source's own size, decided by the data stage)."""
    a = config["architectures"][arch]
    return a.get("input_size", config["dataset"].get("image_size"))


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


def user_builder_file(builder: str) -> str | None:
    """The file a `module:function` builder lives in (module_file)."""
    return module_file(builder.rsplit(":", 1)[0])


def module_file(module: str) -> str | None:
    """The file of a module the config names, found without importing it: a path (relative
    to the workflow's folder), a module under the workflow's folder, or an installed module;
    None when there is none."""
    if module.endswith(".py"):
        path = workflow_path(module)
        return path if os.path.isfile(path) else None
    for candidate in (module.replace(".", os.sep) + ".py", os.path.join(module.replace(".", os.sep), "__init__.py")):
        if os.path.isfile(os.path.join(WORKFLOW_DIR, candidate)):
            return os.path.join(WORKFLOW_DIR, candidate)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin and os.path.isfile(spec.origin) else None


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
        if left and arch_kind(a) != "tflite":
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


def ship_devices(config: dict) -> list:
    """The devices `ship:` chooses for: those it names, else every device."""
    names = (config.get("ship") or {}).get("devices")
    return list(names) if names else list(config.get("devices") or {})


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
        _validate(values, report_entries.figure_settings_schema(name), f"report.figures.per_figure.{name}")


def load_schema(path=None) -> dict:
    """The config's JSON schema (default: the workflow's own)."""
    import yaml

    with open(path or SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def with_defaults(instance: dict, schema: dict) -> dict:
    """A copy of `instance` with the schema's defaults filled in, nested ones too - what
    Snakemake's validate does to the config (the recipe of jsonschema's FAQ), for code that
    gets a setting without the workflow (tests, a direct call). Defaults live only in the
    schema."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def fill(validator, properties, inst, sch):
        if isinstance(inst, dict):
            for key, sub in properties.items():
                if "default" in sub:
                    inst.setdefault(key, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, inst, sch)

    filled = copy.deepcopy(instance)
    for _ in validators.extend(Draft202012Validator, {"properties": fill})(schema).iter_errors(filled):
        pass
    return filled


def device_with_defaults(device: dict) -> dict:
    """One device's settings with the schema's defaults (devices.<name>)."""
    return with_defaults(device, load_schema()["properties"]["devices"]["additionalProperties"])


def _validate(instance, schema: dict, prefix: str, fix: str = "") -> None:
    """JSON-schema validation whose first error becomes one line naming the dotted key."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(instance))
    if error is not None:
        raise ConfigError(_one_line(error, schema, prefix, fix))


def _one_line(e, root: dict, prefix: str, fix: str) -> str:
    path = ".".join(p for p in [prefix, *map(str, e.absolute_path)] if p)
    v, value = e.validator, _short(e.instance)
    if v in ("additionalProperties", "unevaluatedProperties"):
        key = re.findall(r"'([^']*)'", e.message)
        allowed = sorted(_properties(e.schema, root))
        where = f"{path}.{key[0]}" if path and key else (key[0] if key else path)
        return f"{where}: unknown key ({fix or 'allowed: ' + (', '.join(allowed) or 'none')})"
    if v == "type":
        want = e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
        return f"{path}: {value} is not {' or '.join(want)} (give {' or '.join(want)}{'; ' + fix if fix else ''})"
    if v == "enum":
        return f"{path}: {value} is not allowed (choose one of {', '.join(map(str, e.validator_value))})"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return f"{path}: {value} is out of range (must be {sign} {e.validator_value})"
    if v == "uniqueItems":
        return f"{path}: {value} lists an entry twice (give each once)"
    if v == "required":
        missing = re.findall(r"'([^']*)'", e.message)
        return f"{path + '.' if path else ''}{missing[0] if missing else '?'}: missing (add it; config.yaml shows it)"
    if v in ("minItems", "minProperties"):
        return f"{path}: {value} is empty or too short (give at least {e.validator_value})"
    if v == "maxItems":
        return f"{path}: {value} is too long (give at most {e.validator_value})"
    return f"{path}: {e.message[:160]}"


def _properties(schema: dict, root: dict) -> set:
    """Keys a (sub)schema allows, following a local $ref."""
    keys = set(schema.get("properties", {}))
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        keys |= set(root.get("$defs", {}).get(ref.split("/")[-1], {}).get("properties", {}))
    return keys


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def workflow_path(path: str) -> str:
    """A path from the config as a job opens it: relative paths start at the workflow's
    folder (the checkout), absolute and ~ paths as given."""
    return os.path.join(WORKFLOW_DIR, os.path.expanduser(path))


def source_path(source: str) -> str:
    """dataset.source as the data stage opens it: a named source as is, else a path."""
    return source if source in DATASET_SOURCES else workflow_path(source)


def check_dataset_source(source: str) -> None:
    if source in DATASET_SOURCES:
        return
    if not os.path.exists(source_path(source)):
        raise ConfigError(
            f"dataset.source: {source!r} does not exist (relative paths start at {WORKFLOW_DIR}); give 'keras', 'synthetic', an "
            "image-folder directory or .tar/.tar.gz, CIFAR-10 python batches "
            "(directory or cifar-10-python.tar.gz) or an .npz of uint8 images (x, y)"
        )
