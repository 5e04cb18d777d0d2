"""Build the configured models (keras.applications or architectures.py), load pretrained
weights, and give each its expected input scaling."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
from pathlib import Path

import numpy as np

from pqgrid.core.catalog import builder_entry, builder_kwargs
from pqgrid.core.io import check_file, damaged
from pqgrid.core.paths import WORKFLOW_DIR, workflow_path

# uint8 images -> what the model takes: defined in core/runtime.py (the device runs it too).
from pqgrid.core.runtime import scale_inputs
from pqgrid.models.weights import ModelError, load_weights_file


def predict_keras(model, x, scaling: str, batch_size=256) -> np.ndarray:
    """Class scores of uint8 images, scaled batch by batch (a float copy of all images would
    need 4x their uint8 size: 5.5 GB for a Caltech-101-sized training split at 224 px)."""
    return np.concatenate(
        [
            np.asarray(model.predict_on_batch(scale_inputs(x[i : i + batch_size], scaling)))
            for i in range(0, len(x), batch_size)
        ]
    )


def scale_inputs_tf(x, scaling: str):
    import tensorflow as tf

    x = tf.cast(x, tf.float32)
    return x / 127.5 - 1.0 if scaling == "tf" else x


# The classifier put on a pretrained base (`weights:`): dropout, then a new softmax layer.
HEAD_LAYERS = ("head_dropout", "predictions")


def builder_function(name: str):
    """The catalog's function for a builder ("module:attribute": keras.applications',
    pqgrid's own in architectures.py, or the user's own module or file), imported here, when
    a model is built."""
    module, attribute = builder_entry(name)["function"].rsplit(":", 1)
    return getattr(user_module(module), attribute)


def user_module(module: str):
    """A module the config names: a dotted name importable from the workflow's folder (or
    installed), or a path to a .py file (relative to the workflow's folder), imported under
    a name of its own."""
    if module.endswith(".py"):
        path = workflow_path(module)
        spec = importlib.util.spec_from_file_location(f"pqgrid_user_{Path(path).stem}", path)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded
    if WORKFLOW_DIR not in sys.path:
        sys.path.append(WORKFLOW_DIR)
    return importlib.import_module(module)


def custom_objects(module: str | None) -> dict:
    """The custom layers of a user's model (`custom_objects: <module>`): importing the module
    registers those it decorates with `register_keras_serializable`; a `custom_objects` dict
    in it names the others."""
    if not module:
        return {}
    try:
        return dict(getattr(user_module(module), "custom_objects", {}))
    except (ImportError, OSError, SyntaxError, AttributeError) as e:
        raise ModelError(f"custom_objects {module}: cannot import it ({type(e).__name__}: {e})") from None


def _call(fn, entry, input_shape, num_classes, kwargs, stem):
    """A builder's model from scratch. keras.applications' and pqgrid's own take their full
    signature; a user's function gets input_shape and classes, and weights, include_top,
    classifier_activation and stem only where it names them."""
    call = dict(input_shape=tuple(input_shape), classes=num_classes, **kwargs)
    fixed = {"weights": None, "include_top": True, "classifier_activation": "softmax"}
    if entry["source"] != "user":
        return fn(**call, **fixed)
    named = inspect.signature(fn).parameters
    call.update({k: v for k, v in {**fixed, "stem": stem}.items() if k in named})
    return fn(**call)


def build(arch_cfg: dict, num_classes: int, input_shape, batchnorm_momentum=None, load_weights=True):
    """The configured architecture for `num_classes` classes at `input_shape`: from scratch
    (the thesis, §3.3: ImageNet weights do not fit 32x32), or with `weights:` (imagenet or an
    .h5 file) as a pretrained base under a new classifier (HEAD_LAYERS). `load_weights=False`
    gives the same architecture without reading any weights (to copy weights into)."""
    import tf_keras

    name = arch_cfg["builder"]
    entry = builder_entry(name)
    fn = builder_function(name)
    kwargs = dict(builder_kwargs(arch_cfg))
    stem = arch_cfg.get("stem", "imagenet")
    own = entry["source"] == "pqgrid" or (entry["source"] == "user" and "stem" in inspect.signature(fn).parameters)
    if entry["source"] == "pqgrid":
        kwargs["stem"] = stem
    weights = arch_cfg.get("weights")
    if weights is None:
        model = _call(fn, entry, input_shape, num_classes, kwargs, stem)
    else:
        base = _pretrained_base(fn, name, weights if load_weights else None, input_shape, kwargs)
        x = tf_keras.layers.Dropout(0.2, name=HEAD_LAYERS[0])(base.output)
        out = tf_keras.layers.Dense(num_classes, activation="softmax", name=HEAD_LAYERS[1])(x)
        model = tf_keras.Model(base.input, out, name=base.name)
    if stem == "cifar" and not own:
        model = cifar_stem(model)
    set_batchnorm_momentum(model, batchnorm_momentum)
    return model


def _pretrained_base(fn, name, weights, input_shape, kwargs):
    common = dict(input_shape=tuple(input_shape), include_top=False, pooling="avg", **kwargs)
    if weights != "imagenet":
        base = fn(weights=None, **common)
        if weights is not None:
            load_weights_file(base, weights)
        return base
    try:
        return fn(weights="imagenet", **common)
    except ValueError as e:  # keras.applications: no ImageNet weights for this alpha/size
        raise ModelError(
            f"{name} weights: imagenet: {str(e).splitlines()[0]} (choose a setting with "
            "ImageNet weights or give weights: <path to .h5>)"
        ) from None
    except Exception as e:  # noqa: BLE001 - any download failure means the same to a user
        raise ModelError(
            f"{name} weights: imagenet: could not download the ImageNet weights ({type(e).__name__}; offline?); "
            "copy the file keras names into ~/.keras/models/ or give weights: <path to .h5>"
        ) from None


def cifar_stem(model):
    """The same network with the stride of its first two stride-2 convolutions (the stem and
    the first downsampling block) set to 1, so a 32x32 input keeps 4x more resolution in every
    later layer: the last feature map of a MobileNet at 32 px grows from 1x1 to 4x4, at ~16x
    the multiply-adds (README, "Input size and stem"). Weights are kept (strides do not change
    any shape of a weight)."""
    import tf_keras

    config = model.get_config()
    by_name = {layer["name"]: layer for layer in config["layers"]}
    changed = 0
    for layer in config["layers"]:
        cfg = layer["config"]
        if layer["class_name"] in ("Conv2D", "DepthwiseConv2D") and tuple(cfg.get("strides", (1, 1))) == (2, 2):
            cfg["strides"] = (1, 1)
            if cfg.get("padding") == "valid":  # keras pads a stride-2 conv by hand (ZeroPadding2D)
                cfg["padding"] = "same"
                source = by_name.get(layer["inbound_nodes"][0][0][0])
                if source and source["class_name"] == "ZeroPadding2D":
                    source["config"]["padding"] = ((0, 0), (0, 0))
            changed += 1
            if changed == 2:
                break
    rebuilt = tf_keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def multiply_adds(model) -> int:
    """Multiply-accumulates of one image through the Conv2D/DepthwiseConv2D/Dense layers (the
    compute a stem setting or input size changes; pooling and activations left out)."""
    import tf_keras

    total = 0
    for layer in all_layers(model):
        if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            out = layer.output_shape
            total += int(np.prod(out[1:])) * int(np.prod(layer.kernel_size))
        elif isinstance(layer, tf_keras.layers.Conv2D):
            out = layer.output_shape
            total += int(np.prod(out[1:])) * int(np.prod(layer.kernel_size)) * int(layer.input_shape[-1])
        elif isinstance(layer, tf_keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def set_batchnorm_momentum(model, momentum):
    """keras.applications uses momentum 0.999 (MobileNetV3, EfficientNet): the moving
    statistics then average over ~1000 steps and lag far behind the weights in a short run,
    so inference-mode accuracy stays near chance although training accuracy rises. 0.9
    (~10 steps) tracks them; `None` keeps the builder's value (the thesis' 150 epochs)."""
    if momentum is None:
        return 0
    import tf_keras

    n = 0
    for layer in all_layers(model):
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            n += 1
    return n


def recalibrate_batchnorm(model, x, *, batch_size, batches, scaling, seed=0):
    """Re-estimate every BatchNorm layer's moving mean/variance at the model's current weights:
    forward passes in training mode over `batches` seeded training batches, weights untouched.

    Pruning changes the weights under the BatchNorm layers in jumps (tfmot's last mask update
    comes on the last fine-tuning step), while the moving statistics are an average over
    earlier, denser weights; inference then normalises with the wrong statistics. As in
    PyTorch's `torch.optim.swa_utils.update_bn`, the statistics become the plain average
    over the batches, so the result does not depend on the layer's momentum. Dropout is
    switched off meanwhile (EfficientNet's stochastic depth would bias the statistics).
    Returns the number of BatchNorm layers.

    How: in training mode a BatchNorm layer normalises with the batch's own statistics, so
    each batch's statistics do not depend on the moving ones. With momentum 0 the layer's
    fused update stores exactly those (mean, Bessel-corrected variance); one traced
    function runs a batch and reads them, and the average is taken in float64 (an eager
    float32 running average with momentum 1 - 1/i measured ~3x slower, with moving
    statistics equal to ~1e-6 relative)."""
    import tensorflow as tf
    import tf_keras

    if not batches:
        return 0
    layers = list(all_layers(model))
    bns = [layer for layer in layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    drops = [layer for layer in layers if isinstance(layer, tf_keras.layers.Dropout)]
    if not bns:
        return 0
    saved = [(layer, layer.momentum) for layer in bns], [(layer, layer.rate) for layer in drops]
    order = np.random.default_rng(seed).permutation(len(x))
    moving = [v for layer in bns for v in (layer.moving_mean, layer.moving_variance)]
    sums = [np.zeros(v.shape, np.float64) for v in moving]

    @tf.function(reduce_retracing=True)
    def batch_statistics(images):
        model(images, training=True)
        return [tf.identity(v) for v in moving]

    try:
        for layer in drops:
            layer.rate = 0.0
        for layer in bns:
            layer.momentum = 0.0  # a Python float: keeps the fused update
        n = min(int(batches), math.ceil(len(x) / batch_size))
        for i in range(n):
            idx = order[i * batch_size : (i + 1) * batch_size]
            for total, value in zip(sums, batch_statistics(tf.constant(scale_inputs(x[idx], scaling))), strict=True):
                total += value.numpy()
        for var, total in zip(moving, sums, strict=True):
            var.assign((total / n).astype(var.dtype.as_numpy_dtype))
    finally:
        for layer, m in saved[0]:
            layer.momentum = m
        for layer, r in saved[1]:
            layer.rate = r
    return len(bns)


def all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)
        if hasattr(layer, "layer"):  # tfmot wrappers
            yield layer.layer


def load_keras(path, custom_layers=None):
    """A saved .h5 for inference or fine-tuning (compiled later by whoever trains it);
    `custom_layers`: the module of a user model's own layers (`custom_objects:`)."""
    import tf_keras

    check_file(path)
    objects = custom_objects(custom_layers)
    try:
        return tf_keras.models.load_model(path, custom_objects=objects, compile=False)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise damaged(path, e) from None


def parameter_stats(model) -> dict:
    """Parameter counts (thesis Tables 4.1/4.4) and sparsity: the thesis' exact sparsity
    (zeros over all parameters) and the zero share of Conv2D/Dense kernels and of
    depthwise kernels separately."""
    import tf_keras

    total = sum(int(np.prod(w.shape)) for w in model.weights)
    zeros = sum(int(np.sum(w.numpy() == 0)) for w in model.weights)
    kinds = {"depthwise": [0, 0], "conv_dense": [0, 0]}
    for layer in all_layers(model):
        if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            kinds["depthwise"][0] += int(np.sum(layer.depthwise_kernel.numpy() == 0))
            kinds["depthwise"][1] += int(np.prod(layer.depthwise_kernel.shape))
        elif isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense)):
            kinds["conv_dense"][0] += int(np.sum(layer.kernel.numpy() == 0))
            kinds["conv_dense"][1] += int(np.prod(layer.kernel.shape))
    dw = kinds["depthwise"][1]
    return {
        "params": total,
        "depthwise_params": dw,
        "depthwise_share": dw / total if total else 0.0,
        "zero_fraction": zeros / total if total else 0.0,
        "conv_dense_sparsity": _ratio(*kinds["conv_dense"]),
        "depthwise_sparsity": _ratio(*kinds["depthwise"]),
    }


def _ratio(a, b):
    return a / b if b else 0.0


__all__ = [
    "ModelError",
    "all_layers",
    "build",
    "cifar_stem",
    "load_weights_file",
    "multiply_adds",
    "load_keras",
    "parameter_stats",
    "predict_keras",
    "scale_inputs",
    "scale_inputs_tf",
]
