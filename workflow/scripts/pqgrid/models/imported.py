"""A model trained outside pqgrid as an architecture (`architectures.<name>.model`): a
.keras, .h5 or SavedModel file, with its custom layers from a module the user names.

`inspect_model` is what the config check learns before any job - input shape, output
width, which layers pruning wraps and whether QAT can quantize every layer - run once per
file content in a child Python (it needs TensorFlow, which the rule files never import) and
kept in a cache. `import_model` is the model's `train_model` stage: it loads the file, checks
it against the prepared data, fine-tunes it when the architecture asks for epochs, and saves
it as the grid's trained .h5, from which pruning, QAT, conversion and evaluation go on as
for any other architecture."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pqgrid import __version__
from pqgrid.core.catalog import arch_kind, input_scaling, output_order
from pqgrid.core.grid import cells, grid
from pqgrid.core.modes import mode
from pqgrid.core.paths import workflow_path
from pqgrid.core.provenance import file_digest, folder_digest
from pqgrid.core.schema import ConfigError
from pqgrid.data import arrays
from pqgrid.data.sources import CIFAR10_CLASSES
from pqgrid.jobs.tfsetup import tensorflow
from pqgrid.models import builders, fit
from pqgrid.models.prune import prunable_layer_names
from pqgrid.models.qat import qat_problems
from pqgrid.models.weights import ModelError

log = logging.getLogger("pqgrid")

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pqgrid" / "models"


def load_model_file(path, module=None):
    """The user's model, loaded for inference or fine-tuning; one line when it cannot be."""
    import tf_keras

    objects = builders.custom_objects(module)
    try:
        return tf_keras.models.load_model(path, custom_objects=objects, compile=False)
    except (OSError, ValueError, TypeError, KeyError, ImportError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(
            f"model {path}: cannot be loaded ({first[:300]}); a custom layer needs `custom_objects: <module>` "
            "that defines or registers it"
        ) from None


def inspect_model(path: str, module: str | None = None) -> dict:
    """What pqgrid needs to know of a model before any job: input (h, w, channels), output
    width, the layers pruning wraps and every layer QAT cannot quantize (one line each).
    Runs in this process (TensorFlow imported here)."""
    tensorflow(1, 0)
    model = load_model_file(path, module)
    shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    return {
        "inputs": len(model.inputs),
        "input_shape": list(shape) if shape else None,
        "output_shape": list(model.output_shape[1:]) if not isinstance(model.output_shape, list) else None,
        "layers": len(model.layers),
        "pruned_layers": prunable_layer_names(model),
        "qat_problems": qat_problems(model),
        "class_layer": class_layer(model),
    }


# Layers after the one that scores the classes that keep the class order (softmax, dropout).
CLASSWISE = ("Activation", "Softmax", "Dropout")


def class_layer(model) -> str | None:
    """The Dense layer whose units score the classes (the output layer, or the layer before
    class-wise ones such as a separate softmax): the layer `classes:` reorders. None when
    the scores come from anything else."""
    layer = model.layers[-1]
    while type(layer).__name__ in CLASSWISE:
        inbound = layer.inbound_nodes[0].inbound_layers if layer.inbound_nodes else None
        if not inbound or isinstance(inbound, list):
            return None
        layer = inbound
    return layer.name if type(layer).__name__ == "Dense" else None


def reorder_outputs(model, order) -> None:
    """Output j of the model becomes its output order[j] (`classes:` mapped onto the data
    set's order): the class layer's kernel columns and bias permuted in place, so every
    later stage sees a model in the data set's order."""
    name = class_layer(model)
    if name is None:
        raise ModelError(
            f"the model's scores do not come from a Dense layer (it ends in {model.layers[-1].name}); reorder "
            "its outputs in the model and remove classes"
        )
    dense = model.get_layer(name)
    weights = dense.get_weights()
    dense.set_weights([weights[0][:, order], *(w[order] for w in weights[1:])])
    log.info("reordered the outputs of %s to the data set's class order %s", name, order)


def inspected(path: str, module: str | None = None) -> dict:
    """`inspect_model` run in a child Python once per model content (and custom-layer module
    and pqgrid version), cached in ~/.cache/pqgrid/models: a dry run stays fast."""
    real = workflow_path(path)
    digest = folder_digest(real) if os.path.isdir(real) else file_digest(real)
    extra = file_digest(workflow_path(module)) if module and module.endswith(".py") else module
    key = hashlib.sha256(json.dumps([digest, extra, __version__]).encode()).hexdigest()[:20]
    cached = CACHE / f"{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    code = (
        "import json, sys; from pqgrid.models.imported import inspect_model; "
        "print(json.dumps(inspect_model(sys.argv[1], sys.argv[2] or None)))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, real, module or ""], capture_output=True, text=True, env=env, timeout=600
    )
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if "ModelError" in line or "Error" in line]
        raise ConfigError(f"model {path}: {(lines or ['could not be inspected'])[-1].split(': ', 1)[-1]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(report))
    return report


def import_model(*, train_npz, test_npz, manifest, model_out, history_csv, arch_cfg, settings, seed, threads=None):
    """Stage `train_model` of a `model:` architecture: the user's model checked against the
    prepared data, fine-tuned for `training.epochs` when the architecture sets them (0: as
    trained), saved as the grid's trained .h5."""
    tensorflow(threads, seed, settings.get("deterministic", True))
    man = arrays.load_manifest(manifest)
    (x, y), val = fit.train_val(train_npz, test_npz, settings, seed)
    model = load_model_file(workflow_path(arch_cfg["model"]), arch_cfg.get("custom_objects"))
    want, got = tuple(x.shape[1:]), tuple(model.input_shape[1:])
    if any(g is not None and g != w for g, w in zip(got, want, strict=False)) or len(got) != 3:
        raise ModelError(f"model {arch_cfg['model']}: takes {got}, the prepared images are {want}; set input_size")
    if model.output_shape[-1] != len(man["classes"]):
        raise ModelError(
            f"model {arch_cfg['model']}: outputs {model.output_shape[-1]} classes, the data set has "
            f"{len(man['classes'])}; give the matching data set or a model for it"
        )
    try:
        order = output_order(arch_cfg, man["classes"])
    except ValueError as e:
        raise ModelError(f"model {arch_cfg['model']}: {e}") from None
    if order is not None:
        reorder_outputs(model, order)
    epochs = settings.get("epochs", 0)
    log.info("imported %s: %d layers; fine-tuning %d epochs", arch_cfg["model"], len(model.layers), epochs)
    if epochs:
        fit.fine_tune(
            model,
            settings,
            (x, y),
            val,
            epochs=epochs,
            seed=seed,
            scaling=input_scaling(arch_cfg),
            num_classes=len(man["classes"]),
            model_out=model_out,
            history_csv=history_csv,
            run_id=fit.fingerprint(arch_cfg, settings, seed, man["npz_sha256"]),
            callbacks=[],
        )
    else:
        fit.write_history(history_csv, [])
    fit.save_model(model, model_out, f"{model_out}.resume")


def inspect_tflite(path) -> dict:
    """A .tflite's input and output tensors, read with LiteRT's interpreter (no TensorFlow)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        it = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as e:
        raise ConfigError(f"tflite {path}: LiteRT cannot read it ({str(e).splitlines()[0][:200]})") from None
    inputs, outputs = it.get_input_details(), it.get_output_details()
    return {
        "inputs": len(inputs),
        "input_shape": [int(v) for v in inputs[0]["shape"][1:]],
        "input_dtype": inputs[0]["dtype"].__name__,
        "output_shape": [int(v) for v in outputs[0]["shape"][1:]],
        "output_dtype": outputs[0]["dtype"].__name__,
    }


def _check_tflite(config: dict, name: str, a: dict, out) -> None:
    """A `.tflite` architecture: a float model taking square RGB images of the data's size,
    one score per class; one line saying which cells of the grid it cannot have."""
    key = f"architectures.{name}.tflite"
    t = inspect_tflite(workflow_path(a["tflite"]))
    if t["input_dtype"] != "float32" or t["output_dtype"] != "float32":
        raise ConfigError(
            f"{key}: takes {t['input_dtype']} input and gives {t['output_dtype']} output; give the float model "
            "(pqgrid quantizes it itself), or the Keras model as `model:`"
        )
    if t["inputs"] != 1 or len(t["input_shape"]) != 3 or t["input_shape"][2] != 3:
        raise ConfigError(
            f"{key}: takes {t['inputs']} inputs of shape {t['input_shape']}; pqgrid feeds one (h, w, 3) image"
        )
    h, w, _ = t["input_shape"]
    if h != w:
        raise ConfigError(f"{key}: takes {h}x{w} images; pqgrid feeds square images")
    size = a.get("input_size")
    if size is not None and size != h:
        raise ConfigError(f"architectures.{name}.input_size: {size}, but the .tflite takes {h}x{w}; remove input_size")
    a.setdefault("input_size", h)
    classes = dataset_classes(config)
    if len(t["output_shape"]) != 1 or (classes is not None and t["output_shape"][0] != classes):
        raise ConfigError(
            f"{key}: outputs {t['output_shape']}, the data set has {classes} classes; give the matching model"
        )
    _check_classes(config, name, a, t["output_shape"][0])
    grid = [c for c in full_grid(config) if c["arch"] == name]
    kept = {(c["sparsity"], c["quant"]) for c in cells(config) if c["arch"] == name}
    left = sorted({f"s{c['sparsity']} {c['quant']}" for c in grid if (c["sparsity"], c["quant"]) not in kept})
    print(
        f"pqgrid: {name}: a .tflite: evaluated, quantized from the file (modes made from fp32) and measured"
        + (f"; no Keras model, so not: {', '.join(left)}" if left else ""),
        file=out,
    )


def full_grid(config: dict) -> list:
    """Every arch x seed x sparsity x quant of the axes, before any subset or file limit."""
    g = grid(config)
    return [
        dict(arch=a, seed=s, sparsity=p, quant=q)
        for a in g["arch"]
        for s in g["seed"]
        for p in g["sparsity"]
        for q in g["quant"]
    ]


def dataset_class_names(config: dict) -> list | None:
    """The data set's class names in label order, where that is cheap to know before any job
    (None: an archive, records; the import job checks them against the prepared data)."""
    source = config["dataset"]["source"]
    if source == "keras":
        return list(CIFAR10_CLASSES)
    if source == "synthetic":
        return [f"class{c}" for c in range(10)]
    if source == "synthetic-photos":
        return None
    path = Path(workflow_path(source))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as d:
            if "classes" in d.files:
                return [str(c) for c in d["classes"]]
            return [str(c) for c in range(1 + int(max(d[k].max() for k in d.files if k.startswith("y"))))]
    if path.is_dir() and not any(".tfrecord" in p.name or p.name == "dataset_spec.pb" for p in path.rglob("*")):
        root = path / "train" if (path / "train").is_dir() else path
        return sorted(p.name for p in root.iterdir() if p.is_dir()) or None
    return None


def dataset_classes(config: dict) -> int | None:
    """How many classes the data set has, where that is cheap to know before any job."""
    names = dataset_class_names(config)
    return None if names is None else len(names)


def _check_classes(config: dict, name: str, a: dict, width: int, class_layer_name="") -> None:
    """`classes:` names the model's outputs: one name per output, the data set's names."""
    if "classes" not in a:
        return
    key = f"architectures.{name}.classes"
    if len(a["classes"]) != width:
        raise ConfigError(f"{key}: names {len(a['classes'])} classes, the model outputs {width}; name each output")
    if class_layer_name is None:
        raise ConfigError(
            f"{key}: the model's scores do not come from a Dense layer, so pqgrid cannot reorder them; reorder the "
            "outputs in your model and remove classes"
        )
    names = dataset_class_names(config)
    if names is not None:
        try:
            output_order(a, names)
        except ValueError as e:
            raise ConfigError(f"architectures.{name}.{e}") from None


def check_outside_models(config: dict, out=sys.stderr) -> None:
    """Before any job: every `model:` architecture loads, takes square RGB images of a size
    the config agrees with (its size becomes the architecture's input_size when the config
    gives none), outputs one score per class of the data set, and QAT (when the grid asks for
    it) can quantize every layer. One line each for what is wrong; one line per model of what
    pruning and QAT will do with it."""
    grid_archs = set(config.get("grid_architectures") or config["architectures"])
    wants_qat = {c["arch"] for c in cells(config) if mode(c["quant"]).from_qat_model}
    for name, a in config["architectures"].items():
        if name not in grid_archs:
            continue
        if arch_kind(a) == "tflite":
            _check_tflite(config, name, a, out)
            continue
        if arch_kind(a) != "model":
            continue
        report = inspected(a["model"], a.get("custom_objects"))
        _check_model_input(name, a, report)
        _check_model_output(config, name, a, report)
        _say_what_pruning_and_qat_do(name, report, name in wants_qat, out)


def _check_model_input(name: str, a: dict, report: dict) -> None:
    """One image tensor, square and RGB, of the size the config gives (set from the model
    where the config gives none)."""
    key = f"architectures.{name}.model"
    shape = report["input_shape"]
    if report["inputs"] != 1 or not shape or len(shape) != 3:
        raise ConfigError(
            f"{key}: takes {report['inputs']} inputs of shape {shape}; pqgrid feeds one image tensor (h, w, 3)"
        )
    h, w, channels = shape
    if channels != 3:
        raise ConfigError(
            f"{key}: takes {channels}-channel images; pqgrid feeds RGB (3 channels): retrain or wrap the model"
        )
    if h is not None and w is not None and h != w:
        raise ConfigError(f"{key}: takes {h}x{w} images; pqgrid feeds square images: give a model with a square input")
    size = a.get("input_size")
    if h is not None and size is not None and size != h:
        raise ConfigError(f"architectures.{name}.input_size: {size}, but the model takes {h}x{w}; remove input_size")
    if h is not None and size is None:
        a["input_size"] = h  # the data are prepared at the size the model takes


def _check_model_output(config: dict, name: str, a: dict, report: dict) -> None:
    """One score per class of the data set, in an order `classes:` can name."""
    key = f"architectures.{name}.model"
    outputs = report["output_shape"]
    classes = dataset_classes(config)
    if not outputs or len(outputs) != 1:
        raise ConfigError(f"{key}: outputs shape {outputs}; pqgrid needs one score per class (batch, classes)")
    if classes is not None and outputs[0] != classes:
        raise ConfigError(
            f"{key}: outputs {outputs[0]} classes, the data set has {classes}; give the matching data set or model"
        )
    _check_classes(config, name, a, outputs[0], report["class_layer"])


def _say_what_pruning_and_qat_do(name: str, report: dict, wants_qat: bool, out) -> None:
    """A line per layer QAT cannot quantize (an error where the grid asks for QAT), then one
    line of what pruning wraps."""
    problems = report["qat_problems"]
    for line in problems:
        print(f"pqgrid: {name}: QAT cannot quantize {line}", file=out)
    if wants_qat and problems:
        raise ConfigError(
            f"architectures.{name}.model: QAT cannot fine-tune it ({len(problems)} layer{'s' * (len(problems) > 1)} "
            f"above, first: {problems[0]}); leave it out with quantization.subsets.qat.architectures"
        )
    qat = "QAT: every layer quantizable" if not problems else f"QAT: no ({len(problems)} layers listed above)"
    pruned = report["pruned_layers"]
    print(
        f"pqgrid: {name}: {report['layers']} layers, pruning wraps {len(pruned)} "
        f"({', '.join(pruned[:4])}{', ...' if len(pruned) > 4 else ''}); {qat}",
        file=out,
    )
