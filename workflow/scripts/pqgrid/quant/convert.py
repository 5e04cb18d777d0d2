"""Keras .h5 -> .tflite in one quantization mode (thesis §3.4 used `int8`), and its gzip.

fp32, the sparse variants and qat run TensorFlow's converter on the Keras model, with its
Keras -> SavedModel step made lean (`_lean_saved_model`: 2-2.5x faster, same bytes).
The other modes are derived from the cell's fp32 .tflite (modes.Mode.from_fp32), so a model is
loaded, traced and converted once, not once per mode (benchmarks/README, P7):
- int8 / int8_full / int16x8: the converter makes exactly that float flatbuffer before it
  calibrates and quantizes, so its own calibrator and quantizers run on it give the same
  bytes (tests/test_models.py compares them);
- dynamic / fp16: Google's ai-edge-quantizer on the fp32 .tflite, without TensorFlow (what
  differs from the converter's file: quantize_weights)."""

from __future__ import annotations

import gzip
import logging
import shutil
from pathlib import Path

import numpy as np

from pqgrid.core import modes
from pqgrid.core.catalog import input_scaling
from pqgrid.core.io import atomic_path, check_file, damaged
from pqgrid.core.runtime import scale_inputs
from pqgrid.data import arrays, sources
from pqgrid.jobs.tfsetup import tensorflow
from pqgrid.models.builders import load_keras
from pqgrid.models.qat import load_qat

log = logging.getLogger("pqgrid")


def calibration_images(train_npz, samples: int, seed: int) -> np.ndarray:
    """A stratified, seeded subset of the training split (never test) for calibration."""
    x, y = arrays.load_npz(train_npz)
    per_class = max(1, samples // len(np.unique(y)))
    sub = sources.stratified_limit(sources.Split(x, y), per_class, np.random.default_rng(seed))
    return sub.x[:samples]


def _lean_saved_model(conv):
    """Make a TFLiteConverter.from_keras_model's SavedModel step skip Keras' own serialisation.

    The converter saves the Keras model as a SavedModel and converts its `serving_default`
    signature. `tf.saved_model.save` of a tf_keras model also traces and stores every layer's
    call functions for Keras to reload the model: 2/3 of an fp32 conversion and 5/6 of a QAT
    one, none of it read by the converter. Here the SavedModel holds the model's variables
    and the signature Keras itself would export (tf_keras' `trace_model_call`), and the rest
    is the converter's own `_convert_keras_to_saved_model` (TF 2.x lite.py). The .tflite is
    byte-identical to the converter's (tests/test_models.py, tests/test_qat.py compare every
    mode: these are private TF/tf_keras names, and the tests guard upgrades). Anything this
    step cannot save falls back to the converter's own."""
    import types

    import tensorflow as tf
    import tf_keras
    from tensorflow.python.saved_model import save_options
    from tf_keras.src.saving.legacy import saving_utils

    stock = conv._convert_keras_to_saved_model

    def save_and_load(self, output_dir):
        try:
            holder = tf.Module()
            holder.model_variables = list(self._keras_model.variables)
            signature = saving_utils.trace_model_call(self._keras_model)
            options = save_options.SaveOptions(save_debug_info=True)  # as the converter saves
            tf.saved_model.save(
                holder,
                output_dir,
                signatures={tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: signature},
                options=options,
            )
        except Exception as e:  # the converter's own path decides what converts
            log.warning("lean SavedModel step failed (%s); the converter's own step instead", e)
            shutil.rmtree(output_dir, ignore_errors=True)
            Path(output_dir).mkdir()
            return stock(output_dir)
        self.saved_model_dir = output_dir
        self._saved_model_tags = {tf.saved_model.SERVING}
        self._saved_model_exported_names = [tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY]
        self._parse_saved_model_args(always_enable_saved_model_import=self.experimental_lower_to_saved_model)
        graph_def, input_tensors, output_tensors = self._load_saved_model(output_dir, self._saved_model_tags)
        self._trackable_obj = tf.saved_model.load(output_dir, self._saved_model_tags)
        return graph_def, input_tensors, output_tensors

    if isinstance(conv._keras_model, tf_keras.Model):
        conv._convert_keras_to_saved_model = types.MethodType(save_and_load, conv)
    return conv


def _float(conv, tf, representative):
    """fp32: no optimisation."""


def _dynamic(conv, tf, representative):
    """dynamic: int8 weights, float activations computed on the fly (no calibration)."""
    conv.optimizations.append(tf.lite.Optimize.DEFAULT)


def _fp16(conv, tf, representative):
    """fp16: float16 weights."""
    conv.optimizations.append(tf.lite.Optimize.DEFAULT)
    conv.target_spec.supported_types = [tf.float16]


def _calibrated(conv, tf, representative):
    """int8: int8 weights and activations, float32 input/output (the thesis' "float
    fallback"). For qat the fake-quant ranges decide; calibration covers what stayed float in
    the QAT model (Rescaling/Normalization at the input)."""
    conv.optimizations.append(tf.lite.Optimize.DEFAULT)

    def gen():
        for img in representative:
            yield [img[None].astype(np.float32)]

    conv.representative_dataset = gen


def _integer_only(conv, tf, representative):
    """int8_full, qat: integer-only, int8 input and output, every op int8 (fails if one
    cannot be)."""
    _calibrated(conv, tf, representative)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8


def _int16x8(conv, tf, representative):
    """int16x8: int16 activations, int8 weights, float I/O. TFLITE_BUILTINS is the fallback:
    without it the converter stops at the first op lacking a 16x8 kernel (HARD_SWISH:
    "Quantization to 16x8-bit not yet supported"); with it such ops stay float
    (evaluate.float_ops lists them per cell)."""
    _calibrated(conv, tf, representative)
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]


# One converter setup per mode of core/modes.py (tests/test_models.py checks the keys match).
# A calibrated mode's setup gets the representative images; qat converts the quantization-aware
# model (its `model`), as int8_full does the cell's. Repair candidates of int8 (ship/repair.py)
# are no modes: ai-edge-quantizer makes them from the fp32 .tflite.
CONVERTERS = {
    "fp32": _float,
    "dynamic": _dynamic,
    "fp16": _fp16,
    "int8": _calibrated,
    "int8_full": _integer_only,
    "int16x8": _int16x8,
    "qat": _integer_only,
}


def converter_for(model, mode: str, representative=None, stock: bool = False):
    """A TFLiteConverter set up for `mode` (CONVERTERS says how, per mode). Suffix `_sparse`
    adds Optimize.EXPERIMENTAL_SPARSITY: pruned tensors stored sparse. `stock`: the
    converter's own Keras -> SavedModel step (the tests' reference)."""
    import tensorflow as tf

    mode, sparse = modes.split_quant(mode)
    if mode not in CONVERTERS:
        raise ValueError(f"unknown quantization mode {mode!r}")
    if modes.mode(mode).calibrated and representative is None:
        raise ValueError(f"{mode} needs calibration images")
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if not stock:
        _lean_saved_model(conv)
    conv.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    CONVERTERS[mode](conv, tf, representative)
    return conv


def convert_cell(*, source, out_gz=None, **kwargs):
    """Stage `convert_tflite`: `source` is the cell's Keras model, or for a mode made from
    the fp32 .tflite (modes.derives_from_fp32) that file; with `out_gz`, the new file's gzip -9
    copy too."""
    if modes.derives_from_fp32(kwargs["mode"]):
        derive_from_fp32(fp32_tflite=source, **kwargs)
    elif str(source).endswith(".tflite"):  # a `.tflite` architecture: the file is its fp32 cell
        check_file(source)
        with atomic_path(kwargs["out_tflite"]) as tmp:
            shutil.copyfile(source, tmp)
        log.info("copied %s as the fp32 cell", source)
    else:
        convert_tflite(model_h5=source, **kwargs)
    if out_gz is not None:
        gzip_tflite(tflite=kwargs["out_tflite"], out_gz=out_gz)


def derive_from_fp32(*, fp32_tflite, train_npz, out_tflite, arch_cfg, mode, calibration_samples, seed, threads=None):
    """A mode made from the cell's fp32 .tflite (modes.Mode.from_fp32), written atomically."""
    if not modes.derives_from_fp32(mode):
        made = ", ".join(n for n, m in modes.MODES.items() if m.from_fp32)
        raise ValueError(f"{mode} is not derived from the fp32 .tflite (only {made})")
    if modes.mode(mode).from_fp32 == "ai-edge-quantizer":
        flat = quantize_weights(fp32_tflite, mode)
    else:
        images = scale_inputs(calibration_images(train_npz, calibration_samples, seed), input_scaling(arch_cfg))
        flat = quantize_like_converter(fp32_tflite, mode, images, threads=threads, seed=seed)
    with atomic_path(out_tflite) as tmp:
        tmp.write_bytes(flat)
    log.info("wrote %s (%d bytes, mode %s, derived from %s)", out_tflite, len(flat), mode, fp32_tflite)


def quantize_weights(fp32_tflite, mode: str) -> bytes:
    """fp16 and dynamic with Google's ai-edge-quantizer (no TensorFlow import: ~1 s instead of
    a converter run). Checked against the converter (tests/test_models.py, benchmarks/README
    P7): dynamic has the same ops and scales, a handful of int8 weights per million differ by
    one step (rounding of ties); fp16 has the same float16 weights, and keeps biases in float32
    where the converter casts them too (+0.2 % file size, never less accurate)."""
    from ai_edge_quantizer import quantizer, recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if mode == "dynamic":
        # "legacy": like the converter, only tensors of >= 1024 elements are quantized
        wanted = recipe.dynamic_legacy_wi8_afp32()
    else:
        manager = recipe_manager.RecipeManager()
        manager.add_weight_only_config(
            regex=".*",
            operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=AlgorithmName.FLOAT_CASTING,
        )
        wanted = manager.get_quantization_recipe()
    check_file(fp32_tflite)  # the int8 path checks it in calibrate_fp32
    try:
        job = quantizer.Quantizer(str(fp32_tflite))
        job.load_quantization_recipe(wanted)
        return bytes(job.quantize(enable_progress_report=False).quantized_model)
    except Exception as e:  # noqa: BLE001 - a damaged flatbuffer fails anywhere inside
        raise damaged(fp32_tflite, e) from None


def quantize_like_converter(fp32_tflite, mode: str, images, threads=None, seed=None) -> bytes:
    """int8 / int8_full / int16x8: what TFLiteConverter.convert() does after its float
    conversion (lite.py: _optimize_tflite_model -> _quantize, buffer de-duplication, then
    _convert_and_export_metrics' conversion metadata), called on the same float model with
    the same calibration images. These are TensorFlow's private helpers: an upgrade that
    changes them fails the byte-for-byte test against the converter; it cannot silently
    change results."""
    tf, _ = tensorflow(threads, seed)
    from tensorflow.lite.python import conversion_metadata_schema_py_generated as meta_fb
    from tensorflow.lite.python import convert as tfl_convert
    from tensorflow.lite.python import util as tfl_util
    from tensorflow.lite.python.optimize import calibrator as tfl_calibrator
    from tensorflow.lite.tools import flatbuffer_utils

    float_model, metadata = float_model_of(fp32_tflite)
    calibrator = tfl_calibrator.Calibrator(float_model)
    if mode == "int16x8":
        # lite.py sends int16 activations to the calibrator's own quantizer (its MLIR one is
        # int8 only): float fallback allowed (TFLITE_BUILTINS in converter_for), int64 bias.
        flat = calibrator.calibrate_and_quantize(
            _representative(images),
            tf.float32,
            tf.float32,
            True,  # allow_float
            tf.int16,
            tf.int64,
            disable_per_channel=False,
            disable_per_channel_quantization_for_dense_layers=False,
        )
        optimization = meta_fb.ModelOptimizationMode.PTQ_INT16
    else:
        io_type = tf.int8 if modes.MODES[mode].integer_io else tf.float32
        flat = tfl_convert.mlir_quantize(
            calibrator.calibrate(_representative(images)),
            False,  # per-channel, as the converter's default
            input_data_type=io_type,
            output_data_type=io_type,
            enable_variable_quantization=False,
            disable_per_channel_for_dense_layers=False,
            debug_options_str=tfl_convert.build_conversion_flags().debug_options.SerializeToString(),
        )
        optimization = meta_fb.ModelOptimizationMode.PTQ_FULL_INTEGER
    model = flatbuffer_utils.convert_bytearray_to_object(tfl_convert.deduplicate_readonly_buffers(flat))
    metadata.options.modelOptimizationModes = [optimization, *tfl_util.get_sparsity_modes(model)]
    metadata.environment.modelHash = tfl_util.get_model_hash(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tfl_util.populate_conversion_metadata(model, metadata)))


def calibrate_fp32(fp32_tflite, images):
    """The fp32 .tflite with the min/max of every tensor over `images` recorded (the
    converter's `_experimental_calibrate_only` result), and the file's conversion metadata.
    TensorFlow must be imported (pqgrid.jobs.tfsetup) before."""
    from tensorflow.lite.python.optimize import calibrator as tfl_calibrator

    float_model, metadata = float_model_of(fp32_tflite)
    return tfl_calibrator.Calibrator(float_model).calibrate(_representative(images)), metadata


def float_model_of(fp32_tflite):
    """The float model the converter quantizes, rebuilt from the fp32 .tflite (ready for its
    calibrator), and the file's conversion metadata."""
    from tensorflow.lite.python import conversion_metadata_schema_py_generated as meta_fb
    from tensorflow.lite.python import util as tfl_util
    from tensorflow.lite.python.optimize import calibrator as tfl_calibrator
    from tensorflow.lite.tools import flatbuffer_utils

    check_file(fp32_tflite)
    try:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(Path(fp32_tflite).read_bytes()))
    except Exception as e:  # noqa: BLE001 - flatbuffers raises anything on damaged bytes
        raise damaged(fp32_tflite, e) from None
    # The fp32 file carries its conversion metadata; the converter's float model has none
    # yet (it is appended last, buffer included), so take both out (quantize_like_converter
    # puts it back updated). The int16x8 quantizer keeps unused buffers: a left-over empty
    # one would make its file 8 bytes longer than the converter's.
    metadata = None
    kept = []
    for entry in model.metadata or []:
        if entry.name.decode() == tfl_util.CONVERSION_METADATA_FIELD_NAME:
            raw = bytes(model.buffers[entry.buffer].data)
            metadata = meta_fb.ConversionMetadataT.InitFromObj(meta_fb.ConversionMetadata.GetRootAs(raw, 0))
            if entry.buffer == len(model.buffers) - 1:
                model.buffers.pop()
            else:
                model.buffers[entry.buffer].data = None
        else:
            kept.append(entry)
    if metadata is None:
        raise damaged(fp32_tflite, "no conversion metadata: not a file written by TFLiteConverter")
    model.metadata = kept
    return tfl_calibrator.add_intermediate_tensors(flatbuffer_utils.convert_object_to_bytearray(model)), metadata


def _representative(images):
    def batches():
        for img in images:
            yield [img[None].astype(np.float32)]

    return batches


def convert_tflite(
    *, model_h5, train_npz, out_tflite, arch_cfg, mode, calibration_samples, seed, threads=None, stock=False
):
    """One Keras model to one .tflite in one mode through TFLiteConverter (`stock`: with the
    converter's own SavedModel step, the tests' reference; see converter_for)."""
    tensorflow(threads, seed)
    record = modes.mode(mode)
    model = load_qat(model_h5) if record.from_qat_model else load_keras(model_h5, arch_cfg.get("custom_objects"))
    rep = None
    if record.calibrated:
        rep = scale_inputs(calibration_images(train_npz, calibration_samples, seed), input_scaling(arch_cfg))
    flat = converter_for(model, mode, rep, stock=stock).convert()
    with atomic_path(out_tflite) as tmp:
        tmp.write_bytes(flat)
    log.info("wrote %s (%d bytes, mode %s)", out_tflite, len(flat), mode)


def gzip_tflite(*, tflite, out_gz, level=9):
    """gzip -9, the compressed size as the thesis measured it (the `convert_tflite` job's
    second output); mtime 0 so the bytes are repeatable."""
    check_file(tflite)  # a 0-byte .tflite must not become a 20-byte .gz
    with (
        atomic_path(out_gz) as tmp,
        open(tflite, "rb") as fi,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0) as fo,
    ):
        shutil.copyfileobj(fi, fo)
