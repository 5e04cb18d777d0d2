"""Stage `qat_model`: quantization-aware fine-tuning (QAT) of a trained model, and
pruning-preserving QAT (PQAT) of a pruned one, with tfmot - plus what keras.applications
models need before tfmot accepts them.

tfmot's `quantize_model` rejects most of the thesis' architectures:
- MobileNetV3 builds hard-sigmoid from `TFOpLambda` layers (`x + 3.0`, `* (1/6)`); tfmot
  hands such a layer a list and fails ("'list' object has no attribute 'dtype'", tfmot
  #546/#730/#980/#1145). `rewrite_for_qat` replaces each with `ConstantOp`, a layer of ours
  computing the same, and checks the rewritten model's outputs equal the original's.
- `Multiply` (squeeze-excite, hard-swish), `ConstantOp` and the preprocessing layers
  `Rescaling`/`Normalization` (MobileNetV3, EfficientNet) are not in tfmot's registry: they get
  an output quantizer only (`OutputQuantizeConfig`, the workaround of tfmot #763). Leaving the
  preprocessing in float instead (no quantizer, ranges from calibration) is what tfmot #647
  suggests, and it broke EfficientNet-B0: on the laptop preset its QAT Keras model scored
  45.2 % and the .tflite 10.0 % (chance); with an output quantizer the two agree.
Every other layer gets tfmot's default 8-bit configuration; a layer tfmot cannot handle
fails the job with one line naming it.

PQAT uses tfmot's `Default8BitPrunePreserveQuantizeScheme`, which keeps most Conv2D/Dense zeros
but skips DepthwiseConv2D (`_DISABLE_PRUNE_PRESERVE` in its registry; pqgrid prunes depthwise
kernels too) and, measured, MobileNetV3's head convolution `Conv_2` (50 -> 46 % zeros in one
epoch). `KeepZeros` therefore re-applies every pruned kernel's mask after each step."""

from __future__ import annotations

import logging

import numpy as np

from pqgrid.core import runtime
from pqgrid.core.catalog import input_scaling
from pqgrid.core.io import check_file, damaged, sha256_file, write_json
from pqgrid.data import arrays
from pqgrid.jobs.tfsetup import tensorflow
from pqgrid.models import builders, fit

log = logging.getLogger("pqgrid")

# TFOpLambda functions that keras.applications uses with one constant operand (hard-sigmoid).
CONSTANT_OPS = {"__operators__.add": "add", "math.multiply": "multiply"}
# Largest |difference| allowed between the rewritten and the original model's outputs.
REWRITE_TOLERANCE = 1e-5


def _layers():
    """The Keras layer and QuantizeConfig classes, built on first use (TensorFlow is only
    imported by jobs that need it)."""
    global _CLASSES
    if _CLASSES:
        return _CLASSES
    import tensorflow_model_optimization as tfmot
    import tf_keras

    quant = tfmot.quantization.keras

    class ConstantOp(tf_keras.layers.Layer):
        """`x + value` or `x * value`: a TFOpLambda with a constant, as a layer tfmot can wrap."""

        def __init__(self, op="add", value=0.0, **kwargs):
            super().__init__(**kwargs)
            if op not in ("add", "multiply"):
                raise ValueError(f"ConstantOp: unknown op {op!r}")
            self.op, self.value = op, float(value)

        def call(self, x):
            return x + self.value if self.op == "add" else x * self.value

        def get_config(self):
            return {**super().get_config(), "op": self.op, "value": self.value}

    class NoQuantizeConfig(quant.QuantizeConfig):
        """No weight, activation or output quantizer: the base of OutputQuantizeConfig (and
        still loadable from QAT .h5 files that used it for preprocessing layers)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    class OutputQuantizeConfig(NoQuantizeConfig):
        """Quantize the output only (8 bit, asymmetric, per tensor), as tfmot #763 posted."""

        def get_output_quantizers(self, layer):
            return [
                quant.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)
            ]

    _CLASSES.update(ConstantOp=ConstantOp, NoQuantizeConfig=NoQuantizeConfig, OutputQuantizeConfig=OutputQuantizeConfig)
    return _CLASSES


_CLASSES: dict = {}


def custom_objects() -> dict:
    """What loading a QAT .h5 needs besides tfmot's own classes (used inside quantize_scope)."""
    return dict(_layers())


def rewrite_for_qat(model, probe):
    """The same network with every constant TFOpLambda (hard-sigmoid's `+ 3`, `* 1/6`) as a
    ConstantOp layer, weights copied. Raises ValueError if another TFOpLambda is met or the
    outputs on `probe` differ by more than REWRITE_TOLERANCE. Returns (model, report)."""
    import tf_keras

    cfg = model.get_config()
    rewritten = 0
    for layer in cfg["layers"]:
        if layer["class_name"] != "TFOpLambda":
            continue
        fn = layer["config"].get("function")
        node = layer["inbound_nodes"][0]
        kwargs = node[3] if len(node) == 4 and isinstance(node[3], dict) else {}
        if fn not in CONSTANT_OPS or not isinstance(kwargs.get("y"), (int, float)):
            raise ValueError(
                f"layer {layer['config']['name']!r} (TFOpLambda {fn}) cannot be quantization-aware "
                "trained: only a constant add or multiply is rewritten (pqgrid/models/qat.py CONSTANT_OPS)"
            )
        layer.update(
            class_name="ConstantOp",
            config={
                "name": layer["config"]["name"],
                "trainable": True,
                "dtype": layer["config"].get("dtype", "float32"),
                "op": CONSTANT_OPS[fn],
                "value": float(kwargs["y"]),
            },
            inbound_nodes=[[[node[0], node[1], node[2], {}]]],
        )
        layer.pop("module", None)
        layer.pop("registered_name", None)
        rewritten += 1
    if not rewritten:
        return model, {"rewritten_layers": 0, "rewrite_max_abs_diff": 0.0}
    new = tf_keras.Model.from_config(cfg, custom_objects=custom_objects())
    new.set_weights(model.get_weights())
    diff = float(np.max(np.abs(np.asarray(new(probe, training=False)) - np.asarray(model(probe, training=False)))))
    if not diff <= REWRITE_TOLERANCE:
        raise ValueError(
            f"rewriting {rewritten} TFOpLambda layers changed the outputs by {diff:.2e} "
            f"(> {REWRITE_TOLERANCE:g}); QAT would fine-tune another network"
        )
    log.info("rewrote %d TFOpLambda layers as ConstantOp; outputs equal within %.1e", rewritten, diff)
    return new, {"rewritten_layers": rewritten, "rewrite_max_abs_diff": diff}


def _classifier():
    """How QAT quantizes a layer: "default" (tfmot's 8-bit scheme, or folded/no computation),
    "output" (an output quantizer only), or why it cannot (a text)."""
    import tf_keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (
        Default8BitQuantizeRegistry,
    )

    cls = _layers()
    registry = Default8BitQuantizeRegistry()
    output_only = (
        tf_keras.layers.Multiply,
        cls["ConstantOp"],
        tf_keras.layers.Rescaling,
        tf_keras.layers.Normalization,
    )
    # Folded into the convolution before them by tfmot's layout transforms, or no computation.
    passthrough = (tf_keras.layers.BatchNormalization, tf_keras.layers.InputLayer)

    def classify(layer) -> str:
        if isinstance(layer, output_only):
            return "output"
        if isinstance(layer, passthrough) or registry.supports(layer):
            return "default"
        return (
            "has no quantization config in tfmot's default 8-bit scheme nor in pqgrid/models/qat.py; "
            "QAT cannot fine-tune this architecture"
        )

    return classify


def qat_problems(model) -> list:
    """Every layer QAT cannot quantize, one line each with what to do (empty: QAT can
    fine-tune `model`). A model whose layers all pass can still fail in tfmot's
    quantize_apply: that error is the one line then."""
    classify = _classifier()
    problems = []
    for layer in model.layers:
        if type(layer).__name__ == "TFOpLambda":
            fn = getattr(layer, "symbol", None) or layer.get_config().get("function")
            if fn not in CONSTANT_OPS:
                problems.append(
                    f"layer {layer.name!r} (TFOpLambda {fn}): only a constant add or multiply is rewritten; "
                    "write it as a Keras layer"
                )
            continue
        how = classify(layer)
        if how not in ("default", "output"):
            problems.append(
                f"layer {layer.name!r} ({type(layer).__name__}): no quantization config in tfmot's 8-bit scheme; "
                "give it one (tfmot quantize_annotate_layer + QuantizeConfig) or replace it"
            )
    if problems:
        return problems
    probe = np.zeros((1, *model.input_shape[1:]), dtype=np.float32)
    try:
        quantize_for_training(rewrite_for_qat(model, probe)[0], preserve_sparsity=False)
    except (ValueError, TypeError, AttributeError, RuntimeError) as e:
        return [str(e).splitlines()[0]]
    return []


def quantize_for_training(model, preserve_sparsity: bool):
    """Annotate every layer (see the module docstring) and apply tfmot's default 8-bit scheme,
    or its pruning-preserving variant. A layer tfmot cannot quantize: ValueError naming it."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    quant = tfmot.quantization.keras
    cls = _layers()
    classify = _classifier()

    def annotate(layer):
        how = classify(layer)
        if how == "output":
            return quant.quantize_annotate_layer(layer, cls["OutputQuantizeConfig"]())
        if how == "default":
            return quant.quantize_annotate_layer(layer)
        raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) {how}")

    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    scheme = (
        tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        if preserve_sparsity
        else quant.default_8bit.Default8BitQuantizeScheme()
    )
    with quant.quantize_scope(custom_objects()):
        try:
            return quant.quantize_apply(annotated, scheme)
        except (ValueError, TypeError, AttributeError) as e:
            raise ValueError(f"tfmot's quantize_apply failed: {str(e).splitlines()[0][:200]}") from None


def load_qat(path):
    """A QAT .h5 (fake-quantization wrappers and pqgrid's layers) for conversion."""
    import tf_keras

    check_file(path)
    with tfmot_scope():
        try:
            return tf_keras.models.load_model(path, compile=False)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise damaged(path, e) from None


def pruned_masks(model) -> list:
    """(kernel variable, mask) of every Conv2D/Dense/DepthwiseConv2D kernel with zeros in a
    QAT model. The variable is looked up among the wrapper's weights: inside a QuantizeWrapper
    the layer's `kernel` attribute is the fake-quantized tensor of the last call."""
    import tf_keras

    kinds = (tf_keras.layers.Conv2D, tf_keras.layers.Dense, tf_keras.layers.DepthwiseConv2D)
    out = []
    for wrapper in model.layers:
        if not isinstance(getattr(wrapper, "layer", None), kinds):
            continue
        for var in wrapper.trainable_weights:
            if var.name.split("/")[-1].split(":")[0] in ("kernel", "depthwise_kernel"):
                mask = (var.numpy() != 0).astype(np.float32)
                if mask.min() == 0:
                    out.append((var, mask))
    return out


def keep_zeros_callback(masks):
    """Re-applies pruning masks after every training step: what tfmot's PQAT leaves free
    (depthwise kernels; MobileNetV3's head `Conv_2`, measured 50 -> 46 % zeros without it)."""
    import tf_keras

    class KeepZeros(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            for kernel, mask in masks:
                kernel.assign(kernel * mask)

    return KeepZeros()


def kernel_zero_share(model) -> float:
    """Zeros over all Conv2D/Dense/DepthwiseConv2D kernel entries: what the .tflite read-back
    (`tflite_kernel_sparsity`) measures, for the model before QAT."""
    import tf_keras

    zeros = total = 0
    for layer in builders.all_layers(model):
        if isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            k = layer.depthwise_kernel.numpy()
        elif isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense)):
            k = layer.kernel.numpy()
        else:
            continue
        zeros += int(np.sum(k == 0))
        total += k.size
    return zeros / total if total else 0.0


def qat_model(
    *,
    source_h5,
    train_npz,
    test_npz,
    manifest,
    model_out,
    history_csv,
    metrics_json,
    arch_cfg,
    settings,
    seed,
    threads=None,
):
    """Fine-tune `source_h5` (trained for s0, pruned for s>0) with fake quantization and save
    the QAT .h5; resumable after kill -9 like training. `metrics_json` holds the QAT Keras
    model's test top-1, the rewrite check and the kernel zeros before QAT."""

    tensorflow(threads, seed, settings.get("deterministic", True))
    man = arrays.load_manifest(manifest)
    (x, y), val = fit.train_val(train_npz, test_npz, settings, seed)
    num_classes = len(man["classes"])
    scaling = input_scaling(arch_cfg)
    base = builders.load_keras(source_h5, arch_cfg.get("custom_objects"))
    builders.set_batchnorm_momentum(base, settings.get("batchnorm_momentum"))
    zeros_before = kernel_zero_share(base)
    probe = runtime.scale_inputs(x[:32], scaling)
    try:
        rewritten, report = rewrite_for_qat(base, probe)
        model = quantize_for_training(rewritten, preserve_sparsity=settings["preserve_sparsity"])
    except ValueError as e:
        raise SystemExit(f"{arch_cfg['builder']}: {e}") from None
    masks = pruned_masks(model) if settings["preserve_sparsity"] else []
    kind = "pruning-preserving QAT" if settings["preserve_sparsity"] else "QAT"
    log.info("%s of %s: %d epochs, learning rate %g -> %g; masks of %d pruned kernels re-applied after each step",
             kind, source_h5, settings["epochs"], settings["learning_rate"], settings["final_learning_rate"],
             len(masks))  # fmt: skip
    fit.fine_tune(
        model,
        settings,
        (x, y),
        val,
        epochs=settings["epochs"],
        seed=seed + 2000,  # another order than training's and pruning's epochs
        scaling=scaling,
        num_classes=num_classes,
        model_out=model_out,
        history_csv=history_csv,
        run_id=fit.fingerprint(arch_cfg, settings, seed, sha256_file(source_h5), man["npz_sha256"]),
        callbacks=[keep_zeros_callback(masks)] if masks else [],
    )
    top1 = _test_top1(model, test_npz, scaling)
    log.info("QAT Keras model: test top-1 %.4f", top1)
    write_json(metrics_json, {"keras_qat_top1": top1, "kernel_sparsity_before_qat": zeros_before,
                              "preserve_sparsity": bool(settings["preserve_sparsity"]), **report})  # fmt: skip
    with tfmot_scope():
        fit.save_model(model, model_out, f"{model_out}.resume")


def _test_top1(model, test_npz, scaling) -> float:
    """The Keras model's top-1 on the test set."""
    xt, yt = arrays.load_npz(test_npz)
    return float((builders.predict_keras(model, xt, scaling).argmax(axis=1) == yt).mean())


def tfmot_scope():
    """tfmot's quantize_scope with pqgrid's layers: what saving and loading a QAT .h5 needs."""
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras.quantize_scope(custom_objects())
