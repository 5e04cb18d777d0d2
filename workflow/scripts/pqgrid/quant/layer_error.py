"""Stage `layer_error`: where int8 post-training quantization hurts, layer by layer.

TensorFlow's `tf.lite.experimental.QuantizationDebugger` runs test images through a model in
which every quantized op is followed by a NumericVerify op comparing it with its float twin,
and averages the error per op. That model is built the way the debugger builds it from a
converter (calibrate-only conversion, then the MLIR quantizer with numeric verification), but
from the cell's fp32 .tflite and the int8 cell's calibration images (pqgrid/quant/convert.py:
calibrate_fp32): no second conversion of the Keras model. As in its official tutorial (which uses MobileNetV3-Small),
the error is put on the tensor's own scale: rmse/scale = sqrt(mean squared error) / scale,
i.e. the error in quantization steps (~0.29 is rounding alone; far above it, the range is
too wide for 256 steps). That measure is blind to one failure: a tensor whose range one channel
dominates (a channel 1000x the others, which the next layer divides back) rounds every other
channel to zero while its error stays under one step. `channel_noise` sees it: per channel,
the quantization noise's power over the float signal's, the median over channels (a few rarely
firing channels of a healthy layer do not count; ~1 means most channels are lost). The repair
of int8 (pqgrid/ship/repair.py) keeps the ops with the largest `channel_noise` in float. One CSV per Keras model serves both int8 and int8_full: they
quantize the same ops with the same calibration and differ in input/output type only.
int16x8 and qat are not covered: the debugger builds int8 NumericVerify models only, and a
QAT model has no float twin in the converter."""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import pandas as pd

from pqgrid.core.catalog import input_scaling
from pqgrid.core.io import atomic_path, read_csv
from pqgrid.core.runtime import scale_inputs
from pqgrid.jobs.tfsetup import tensorflow
from pqgrid.quant.convert import calibrate_fp32, calibration_images

log = logging.getLogger("pqgrid")

COLUMNS = [
    *("rank", "layer", "op", "rmse_over_scale", "channel_noise", "mean_error", "max_abs_error"),
    "mean_squared_error",
    *("stddev", "range", "scale", "zero_point", "num_elements", "tensor"),
]


# channel_noise is nan where a tensor's channels were all silent on every probe image
FILLED = [c for c in COLUMNS if c != "channel_noise"]


def channel_noise(float_values, quantized, scale, zero_point) -> float:
    """The median over channels (last axis) of the int8 noise's power over the float
    signal's, for one probe image (the debugger's `layer_direct_compare_metrics` signature;
    it averages over images). Channels silent on this image are left out; nan if all are."""
    f = np.asarray(float_values, dtype=np.float64)
    noise = (np.asarray(quantized, dtype=np.float64) - zero_point) * scale - f
    axes = tuple(range(f.ndim - 1))
    signal = np.mean(f**2, axis=axes)
    live = signal > 0
    if not live.any():
        return float("nan")
    return float(np.median(np.mean(noise**2, axis=axes)[live] / signal[live]))


def layer_error(
    *, fp32_tflite, train_npz, test_npz, out_csv, arch_cfg, calibration_samples, samples, seed, threads=None
):
    """Per-op int8 error of one model (its fp32 .tflite), worst first, as `out_csv`."""

    tf, _ = tensorflow(threads, seed)
    from tensorflow.lite.python import convert as tfl_convert

    scaling = input_scaling(arch_cfg)
    rep = scale_inputs(calibration_images(train_npz, calibration_samples, seed), scaling)
    probe = scale_inputs(calibration_images(test_npz, samples, seed), scaling)
    calibrated, _ = calibrate_fp32(fp32_tflite, rep)
    # QuantizationDebugger._get_quantized_model(is_debug=True) with its default options
    debug_model = tfl_convert.mlir_quantize(
        calibrated, disable_per_channel=False, fully_quantize=False, enable_numeric_verify=True
    )

    def debug_dataset():
        for img in probe:
            yield [img[None]]

    debugger = _run_debugger(tf, debug_model, debug_dataset)
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    buf.seek(0)
    table = error_table(pd.read_csv(buf))
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    worst = table.head(3)
    log.info(
        "%d quantized ops on %d test images; worst rmse/scale: %s",
        len(table),
        len(probe),
        ", ".join(f"{r.layer} ({r.op}) {r.rmse_over_scale:.2f}" for r in worst.itertuples()),
    )
    return table


@contextlib.contextmanager
def reference_kernels():
    """The debugger's interpreters on LiteRT's reference kernels, without the default XNNPACK
    delegate: `channel_noise` reads each op's float and int8 outputs, and the interpreter keeps
    no intermediate tensor of ops a delegate runs (their values are stale, run to run); the
    reference kernels are also the int8 spec the debugger checks against, and take the
    NumericVerify models XNNPACK refuses (SqueezeNet's)."""
    from tensorflow.lite.tools.optimize.debugging.python import debugger as dbg

    plain = dbg._interpreter.Interpreter
    reference = dbg._interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES

    class ReferenceKernels(plain):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, experimental_op_resolver_type=reference, **kwargs)

    dbg._interpreter.Interpreter = ReferenceKernels
    try:
        yield
    finally:
        dbg._interpreter.Interpreter = plain


def _run_debugger(tf, debug_model, debug_dataset):
    """QuantizationDebugger.run() with `channel_noise`, on the reference kernels."""
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"channel_noise": channel_noise}
    )
    with reference_kernels():
        debugger = tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=debug_model, debug_dataset=debug_dataset, debug_options=options
        )
        debugger.run()
    return debugger


def error_table(stats: pd.DataFrame) -> pd.DataFrame:
    """The debugger's dump -> pqgrid's columns: the Keras layer a tensor belongs to, rmse in
    quantization steps, the quantized range (255 steps x scale), worst first."""
    df = stats.rename(columns={"op_name": "op", "tensor_name": "tensor"}).copy()
    df["rmse_over_scale"] = np.sqrt(df["mean_squared_error"]) / df["scale"]
    df["range"] = 255.0 * df["scale"]
    df["layer"] = df["tensor"].map(keras_layer_name)
    df = df.sort_values("rmse_over_scale", ascending=False, kind="stable").reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    return df[COLUMNS]


def keras_layer_name(tensor: str) -> str:
    """'model/expanded_conv/project/BatchNorm/FusedBatchNormV3;...' -> 'expanded_conv/project':
    the converter names a tensor after the ops fused into it, the first starting with the model's
    and the layer's name."""
    first = str(tensor).split(";")[0]
    parts = first.split("/")
    if len(parts) <= 2:
        return first
    # drop the model name in front and the TensorFlow op name(s) at the end
    body = parts[1:-1]
    while len(body) > 1 and body[-1] in {"BatchNorm", "FusedBatchNormV3", "Conv2D", "BiasAdd", "depthwise"}:
        body = body[:-1]
    return "/".join(body)


def collect_layer_error(*, csvs, cells, out_csv):
    """Stage `collect_layer_error`: every model's per-op error as one long table."""
    frames = [read_csv(p, FILLED).assign(**c) for p, c in zip(csvs, cells, strict=True)]
    cols = ["arch", "seed", "sparsity", *COLUMNS]
    df = pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
