"""Keras .h5 -> .tflite in one quantization mode (thesis §3.4 used `int8`), and its gzip."""

from __future__ import annotations

import gzip
import logging
import shutil

import numpy as np

from . import data as data_mod
from .io import atomic_path, check_file

log = logging.getLogger("pqgrid")


def calibration_images(train_npz, samples: int, seed: int) -> np.ndarray:
    """A stratified, seeded subset of the training split (never test) for calibration."""
    x, y = data_mod.load_npz(train_npz)
    per_class = max(1, samples // len(np.unique(y)))
    sub = data_mod.stratified_limit(data_mod.Split(x, y), per_class, np.random.default_rng(seed))
    return sub.x[:samples]


def converter_for(model, mode: str, representative=None):
    """A TFLiteConverter set up for `mode`:
    fp32      no optimisation
    dynamic   int8 weights, float activations computed on the fly (no calibration)
    fp16      float16 weights
    int8      int8 weights and activations, float32 input/output (the thesis' "float fallback")
    int8_full integer-only: int8 input and output, every op int8 (fails if one cannot be).
    int16x8   int16 activations, int8 weights, float I/O. TFLITE_BUILTINS is the fallback:
              without it the converter stops at the first op lacking a 16x8 kernel
              (HARD_SWISH: "Quantization to 16x8-bit not yet supported"); with it such ops
              stay float (evaluate.float_ops lists them per cell).
    qat       `model` is a quantization-aware fine-tuned one (its fake-quant ranges are used);
              integer-only with int8 input and output, as int8_full.
    Suffix `_sparse` adds Optimize.EXPERIMENTAL_SPARSITY: pruned tensors stored sparse."""
    import tensorflow as tf

    from .config import CALIBRATED_MODES, split_quant

    mode, sparse = split_quant(mode)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    if mode == "fp32":
        return conv
    conv.optimizations.append(tf.lite.Optimize.DEFAULT)
    if mode == "dynamic":
        return conv
    if mode == "fp16":
        conv.target_spec.supported_types = [tf.float16]
        return conv
    if mode not in CALIBRATED_MODES:
        raise ValueError(f"unknown quantization mode {mode!r}")
    if representative is None:
        raise ValueError(f"{mode} needs calibration images")

    def gen():
        for img in representative:
            yield [img[None].astype(np.float32)]

    # For qat the fake-quant ranges decide; calibration covers what stayed float in the QAT
    # model (Rescaling/Normalization at the input).
    conv.representative_dataset = gen
    if mode in ("int8_full", "qat"):
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    elif mode == "int16x8":
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    return conv


def convert_tflite(*, model_h5, train_npz, out_tflite, arch_cfg, mode, calibration_samples, seed, threads=None):
    """Stage `convert_tflite`: one Keras model to one .tflite in one mode."""
    from .tfsetup import tensorflow

    tensorflow(threads, seed)
    from .config import CALIBRATED_MODES, QAT_MODE, input_scaling, split_quant
    from .models import load_keras, scale_inputs

    base_mode = split_quant(mode)[0]
    if base_mode == QAT_MODE:
        from .qat import load_qat

        model = load_qat(model_h5)
    else:
        model = load_keras(model_h5)
    rep = None
    if base_mode in CALIBRATED_MODES:
        rep = scale_inputs(calibration_images(train_npz, calibration_samples, seed), input_scaling(arch_cfg))
    flat = converter_for(model, mode, rep).convert()
    with atomic_path(out_tflite) as tmp:
        tmp.write_bytes(flat)
    log.info("wrote %s (%d bytes, mode %s)", out_tflite, len(flat), mode)


def gzip_tflite(*, tflite, out_gz, level=9):
    """Stage `gzip_tflite`: gzip -9 as the thesis measured compressed size; mtime 0 so the
    bytes are repeatable."""
    check_file(tflite)  # a 0-byte .tflite must not become a 20-byte .gz
    with (
        atomic_path(out_gz) as tmp,
        open(tflite, "rb") as fi,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0) as fo,
    ):
        shutil.copyfileobj(fi, fo)
