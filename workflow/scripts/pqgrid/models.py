"""Build keras.applications models and give each its expected input scaling."""

from __future__ import annotations

import math

import numpy as np

from .config import BUILDERS, builder_kwargs
from .io import check_file, damaged


def scale_inputs(x, scaling: str) -> np.ndarray:
    """uint8 images -> what the model takes (numpy; `scale_inputs_tf` is the same in TF).
    'tf': MobileNet/MobileNetV2 `preprocess_input` (x/127.5 - 1), done outside the model.
    'raw': MobileNetV3/EfficientNet rescale inside the model and take 0..255 floats."""
    x = np.asarray(x, dtype=np.float32)
    if scaling == "tf":
        return x / 127.5 - 1.0
    if scaling == "raw":
        return x
    raise ValueError(f"unknown input scaling {scaling!r}")


def scale_inputs_tf(x, scaling: str):
    import tensorflow as tf

    x = tf.cast(x, tf.float32)
    return x / 127.5 - 1.0 if scaling == "tf" else x


def build(arch_cfg: dict, num_classes: int, input_shape, batchnorm_momentum=None):
    import tf_keras

    builder = getattr(tf_keras.applications, arch_cfg["builder"])
    model = builder(
        input_shape=tuple(input_shape),
        weights=None,  # from scratch: ImageNet weights do not fit 32x32 (thesis §3.3)
        classes=num_classes,
        include_top=True,
        classifier_activation="softmax",
        **builder_kwargs(arch_cfg),
    )
    set_batchnorm_momentum(model, batchnorm_momentum)
    return model


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
    PyTorch's `torch.optim.swa_utils.update_bn`, the statistics become a cumulative average:
    batch i enters with weight 1/i (momentum 1 - 1/i), so the result does not depend on the
    layer's momentum. Dropout is switched off meanwhile (EfficientNet's stochastic depth
    would bias the statistics). Returns the number of BatchNorm layers."""
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
    try:
        for layer in drops:
            layer.rate = 0.0
        for i in range(min(int(batches), math.ceil(len(x) / batch_size))):
            for layer in bns:
                layer.momentum = 1.0 - 1.0 / (i + 1)
            idx = order[i * batch_size : (i + 1) * batch_size]
            model(tf.constant(scale_inputs(x[idx], scaling)), training=True)
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


def load_keras(path):
    """A saved .h5 for inference or fine-tuning (compiled later by whoever trains it)."""
    import tf_keras

    check_file(path)
    try:
        return tf_keras.models.load_model(path, compile=False)
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


__all__ = ["BUILDERS", "all_layers", "build", "load_keras", "parameter_stats", "scale_inputs", "scale_inputs_tf"]
