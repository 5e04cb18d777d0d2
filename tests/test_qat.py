"""Quantization remedies with real tfmot, the real converter and LiteRT on tiny models:
QAT per architecture family, pruning-preserving QAT, int16x8, the per-layer int8 error."""

import os

import numpy as np
import pandas as pd
import pytest
from conftest import resumes_identically, stage_command, synthetic_npz
from pqgrid.data import arrays

# One of each family, small enough for CI: hard-swish + squeeze-excite (V3 full), swish +
# Rescaling/Normalization + squeeze-excite (EfficientNet), plain ReLU6 (MobileNet).
FAMILIES = {
    "MobileNet": {"builder": "MobileNet", "alpha": 0.25},
    "MobileNetV3Small": {"builder": "MobileNetV3Small", "alpha": 0.75},
    "EfficientNetB0": {"builder": "EfficientNetB0"},
}
QAT = {
    "epochs": 1,
    "learning_rate": 1e-4,
    "final_learning_rate": 1e-5,
    "batch_size": 32,
    "momentum": 0.9,
    "validation": "test",
    "holdout_fraction": 0.1,
    "batchnorm_momentum": 0.9,
    "preserve_sparsity": False,
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return synthetic_npz(tmp_path_factory.mktemp("qdata"), 6, 2)


def _build(arch_cfg, path):
    from pqgrid.jobs.tfsetup import tensorflow
    from pqgrid.models.builders import build

    tensorflow(2, 0)
    m = build(arch_cfg, 10, (32, 32, 3), 0.9)
    m.save(path, save_format="h5")
    return path


def _qat(src, tiny_data, out, arch_cfg, **settings):
    from pqgrid.models.qat import qat_model

    qat_model(
        source_h5=src,
        train_npz=tiny_data / "train.npz",
        test_npz=tiny_data / "test.npz",
        manifest=tiny_data / "manifest.json",
        model_out=out,
        history_csv=out.with_suffix(".csv"),
        metrics_json=out.with_suffix(".json"),
        arch_cfg=arch_cfg,
        settings=dict(QAT, **settings),
        seed=0,
        threads=2,
    )
    return out


def _convert(h5, tiny_data, out, arch_cfg, mode, stock=False):
    from pqgrid.quant.convert import convert_tflite

    convert_tflite(
        model_h5=h5,
        train_npz=tiny_data / "train.npz",
        out_tflite=out,
        arch_cfg=arch_cfg,
        mode=mode,
        calibration_samples=10,
        seed=0,
        stock=stock,
    )
    return out


# EfficientNet-B0 end to end (~170 s in CI) is left out to keep CI under 30 minutes: its one
# QAT-specific failure (Rescaling/Normalization left in float: a one-class .tflite) is
# checked on its QAT model's layers below, its conversion path is the other families', and
# its QAT cells went through the laptop preset (docs/results). It passed when last run.
# MobileNet (plain ReLU6) in the slow tier: CI fine-tunes with QAT on MobileNetV3Small here
# and in every smoke run, and tests/test_models.py compares a MobileNet's qat-mode .tflite
# with the stock converter's byte for byte.
@pytest.mark.parametrize("family", [pytest.param("MobileNet", marks=pytest.mark.slow), "MobileNetV3Small"])
def test_qat_fine_tunes_and_converts_integer_only(family, tiny_data, tmp_path):
    """Each family: rewrite checked equal, QAT builds and fine-tunes, the .tflite has int8
    input and output, LiteRT runs it and its top-1 is recorded beside the Keras QAT top-1."""
    from pqgrid.core.io import read_json
    from pqgrid.evaluate.accuracy import io_dtypes, predict_tflite

    arch = FAMILIES[family]
    src = _build(arch, tmp_path / "trained.h5")
    qat_h5 = _qat(src, tiny_data, tmp_path / "qat_0.h5", arch)
    metrics = read_json(tmp_path / "qat_0.json")
    assert 0.0 <= metrics["keras_qat_top1"] <= 1.0
    if family == "MobileNetV3Small":  # hard-sigmoid's `+ 3` and `* 1/6`, in every hard-swish and SE block
        assert metrics["rewritten_layers"] > 20 and metrics["rewrite_max_abs_diff"] <= 1e-5
    else:
        assert metrics["rewritten_layers"] == 0
    hist = pd.read_csv(tmp_path / "qat_0.csv")
    assert len(hist) == 1 and np.isfinite(hist["loss"]).all()
    tfl = _convert(qat_h5, tiny_data, tmp_path / "qat.tflite", arch, "qat")
    assert io_dtypes(tfl) == {"input_dtype": "int8", "output_dtype": "int8"}
    # the lean SavedModel step (convert.converter_for) gives the shipped converter's bytes.
    # MobileNet's case checks the lean step's QAT bytes; MobileNetV3Small's stock conversion
    # (~100 s in CI) is left out: the lean step is one code path for every family, and every
    # .h5, .tflite and evaluation file of a full run equalled the stock converter's when it
    # came in (benchmarks/README.md, "Lean SavedModel step").
    if family == "MobileNet":
        stock = _convert(qat_h5, tiny_data, tmp_path / "stock.tflite", arch, "qat", stock=True)
        assert tfl.read_bytes() == stock.read_bytes()
    x, _ = arrays.load_npz(tiny_data / "test.npz")
    from pqgrid.core.catalog import input_scaling
    from pqgrid.core.runtime import scale_inputs

    scores = predict_tflite(tfl, scale_inputs(x, input_scaling(arch)), batch_size=8)
    assert scores.shape == (len(x), 10) and np.isfinite(scores).all()


def test_preprocessing_layers_are_fake_quantized_at_their_output():
    """Left in float, EfficientNet-B0's Rescaling/Normalization made its QAT .tflite predict
    one class (10.0 %) while the Keras QAT model scored 45.2 % (laptop preset): each gets an
    output quantizer, as Multiply does."""
    import tf_keras
    from pqgrid.models.builders import build
    from pqgrid.models.qat import custom_objects, quantize_for_training

    q = quantize_for_training(build(FAMILIES["EfficientNetB0"], 10, (32, 32, 3), 0.9), preserve_sparsity=False)
    kinds = (tf_keras.layers.Rescaling, tf_keras.layers.Normalization, tf_keras.layers.Multiply)
    wrapped = [w for w in q.layers if isinstance(getattr(w, "layer", None), kinds)]
    assert len(wrapped) >= 2 + 16  # preprocessing + one Multiply per squeeze-excite block
    output_config = custom_objects()["OutputQuantizeConfig"]
    assert all(type(w.quantize_config) is output_config for w in wrapped)


def test_rewrite_refuses_an_unknown_tfoplambda():
    import tensorflow as tf
    import tf_keras
    from pqgrid.models.qat import rewrite_for_qat

    inp = tf_keras.Input((4,))
    out = tf_keras.layers.Dense(3)(tf.math.sqrt(tf_keras.layers.ReLU()(inp)))
    model = tf_keras.Model(inp, out)
    with pytest.raises(ValueError, match="TFOpLambda math.sqrt.*cannot be quantization-aware"):
        rewrite_for_qat(model, np.ones((2, 4), np.float32))


def test_pqat_keeps_zeros_in_the_tflite_including_depthwise(tiny_data, tmp_path):
    """tfmot's prune-preserve scheme skips DepthwiseConv2D; pqgrid's mask callback keeps them."""
    from pqgrid.core.io import read_json
    from pqgrid.models.builders import load_keras
    from pqgrid.quant.tflite_weights import kernel_sparsity, read_kernels

    arch = FAMILIES["MobileNet"]
    src = _build(arch, tmp_path / "dense.h5")
    m = load_keras(src)
    rng = np.random.default_rng(0)
    for w in m.weights:  # 60 % zeros in every kernel, depthwise included
        if "kernel" in w.name:
            w.assign(np.where(rng.random(w.shape) < 0.6, 0.0, w.numpy()))
    m.save(tmp_path / "pruned_60.h5", save_format="h5")
    qat_h5 = _qat(tmp_path / "pruned_60.h5", tiny_data, tmp_path / "qat_60.h5", arch, preserve_sparsity=True)
    before = read_json(tmp_path / "qat_60.json")["kernel_sparsity_before_qat"]
    kernels = read_kernels(_convert(qat_h5, tiny_data, tmp_path / "qat_60.tflite", arch, "qat"))
    after = kernel_sparsity(kernels)
    assert before == pytest.approx(0.6, abs=0.02)
    assert abs(after["tflite_kernel_sparsity"] - before) <= 0.005
    assert after["tflite_depthwise_sparsity"] == pytest.approx(0.6, abs=0.05)


def test_int16x8_converts_runs_and_lists_float_ops(tiny_data, tmp_path):
    """HARD_SWISH has no 16x8 kernel: it stays float (TFLITE_BUILTINS fallback), and says so."""
    from pqgrid.core.catalog import input_scaling
    from pqgrid.core.runtime import scale_inputs
    from pqgrid.evaluate.accuracy import float_ops, io_dtypes, predict_tflite
    from pqgrid.models.builders import load_keras

    arch = FAMILIES["MobileNetV3Small"]
    src = _build(arch, tmp_path / "v3.h5")
    tfl = _convert(src, tiny_data, tmp_path / "int16x8.tflite", arch, "int16x8")
    assert io_dtypes(tfl) == {"input_dtype": "float32", "output_dtype": "float32"}
    assert "HARD_SWISH" in float_ops(tfl) and "CONV_2D" not in float_ops(tfl)
    x, _ = arrays.load_npz(tiny_data / "test.npz")
    xs = scale_inputs(x, input_scaling(arch))
    keras = load_keras(src).predict(xs, verbose=0)
    lite = predict_tflite(tfl, xs, batch_size=8)
    assert np.abs(lite - keras).max() < 0.05  # 16-bit activations: close to float


def test_layer_error_lists_every_quantized_op(tiny_data, tmp_path):
    from pqgrid.evaluate.accuracy import interpreter
    from pqgrid.quant.layer_error import COLUMNS, layer_error

    arch = FAMILIES["MobileNet"]
    src = _build(arch, tmp_path / "m.h5")
    out = tmp_path / "le.csv"
    layer_error(
        fp32_tflite=_convert(src, tiny_data, tmp_path / "fp32.tflite", arch, "fp32"),
        train_npz=tiny_data / "train.npz",
        test_npz=tiny_data / "test.npz",
        out_csv=out,
        arch_cfg=arch,
        calibration_samples=10,
        samples=10,
        seed=0,
    )
    df = pd.read_csv(out)
    assert list(df.columns) == COLUMNS
    int8 = _convert(src, tiny_data, tmp_path / "int8.tflite", arch, "int8")
    it = interpreter(int8)
    dtypes = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    quantized = [  # ops computing in int8 (not the input's QUANTIZE, not int32 shape arithmetic)
        o["op_name"]
        for o in it._get_ops_details()
        if o["op_name"] != "QUANTIZE" and all(dtypes[i] == np.int8 for i in o["outputs"])
    ]
    assert sorted(df.op) == sorted(quantized)  # one row per quantized op of the int8 model
    assert df["rmse_over_scale"].is_monotonic_decreasing and (df["rmse_over_scale"] >= 0).all()
    assert df["layer"].str.startswith("conv").any()


@pytest.mark.slow  # the resumable fit is the training stage's, whose kill -9 test runs in CI
def test_qat_kill_9_and_rerun_resumes_to_identical_weights(tiny_data, tmp_path):
    from pqgrid.models.qat import load_qat

    arch = FAMILIES["MobileNet"]
    src = _build(arch, tmp_path / "trained.h5")
    settings = dict(QAT, epochs=8)

    def cmd(out):
        return stage_command(
            "models.qat",
            "qat_model",
            source_h5=str(src),
            train_npz=str(tiny_data / "train.npz"),
            test_npz=str(tiny_data / "test.npz"),
            manifest=str(tiny_data / "manifest.json"),
            model_out=str(out),
            history_csv=str(out.with_suffix(".csv")),
            metrics_json=str(out.with_suffix(".json")),
            arch_cfg=arch,
            settings=settings,
            seed=0,
            threads=2,
        )

    killed = resumes_identically(cmd, tmp_path, load_qat, epochs=8)
    assert os.path.exists(killed.with_suffix(".json"))
