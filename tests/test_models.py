"""Real TensorFlow, tfmot and LiteRT on tiny models and generated data."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, resumes_identically, stage_command, synthetic_npz
from pqgrid.core.modes import MODES
from pqgrid.data import arrays

TINY = {"builder": "MobileNet", "alpha": 0.25}
TRAIN = {
    "epochs": 2,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "final_learning_rate": 0.0,
    "momentum": 0.9,
    "early_stopping_patience": None,
    "validation": "test",
    "holdout_fraction": 0.1,
    "batchnorm_momentum": 0.9,
}


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return synthetic_npz(tmp_path_factory.mktemp("data"), 20, 5)


@pytest.fixture(scope="module")
def trained(small_data, tmp_path_factory):
    from pqgrid.models.train import train_model

    out = tmp_path_factory.mktemp("model")
    d = small_data
    train_model(
        train_npz=d / "train.npz",
        test_npz=d / "test.npz",
        manifest=d / "manifest.json",
        model_out=out / "trained.h5",
        history_csv=out / "hist.csv",
        arch_cfg=TINY,
        settings=TRAIN,
        seed=0,
        threads=2,
    )
    return out / "trained.h5"


def test_training_writes_model_history_and_no_leftovers(trained):
    hist = (trained.parent / "hist.csv").read_text().splitlines()
    assert hist[0].startswith("epoch,seconds,loss") and len(hist) == 3
    assert not (trained.parent / "trained.h5.resume").exists()
    assert [p.name for p in trained.parent.iterdir() if p.name.startswith(".")] == []


def test_batchnorm_momentum_knob():
    from pqgrid.jobs.tfsetup import tensorflow

    _, tf_keras = tensorflow(2, 0)
    from pqgrid.models.builders import build

    m = build({"builder": "MobileNetV3Small", "alpha": 0.75, "minimalistic": True}, 10, (32, 32, 3), 0.9)
    bns = [layer for layer in m.layers if isinstance(layer, tf_keras.layers.BatchNormalization)]
    assert bns and all(layer.momentum == 0.9 for layer in bns)
    default = build({"builder": "MobileNetV3Small", "alpha": 0.75, "minimalistic": True}, 10, (32, 32, 3), None)
    assert {la.momentum for la in default.layers if isinstance(la, tf_keras.layers.BatchNormalization)} == {0.999}


def _convert_args(small_data, out, mode):
    return dict(
        train_npz=small_data / "train.npz", out_tflite=out, arch_cfg=TINY, mode=mode, calibration_samples=20, seed=0
    )


@pytest.fixture(scope="module")
def tflites(trained, small_data, tmp_path_factory):
    """Every mode as the workflow makes it: the converter on the Keras model, or derived from
    the fp32 .tflite (pqgrid/quant/convert.py)."""
    from pqgrid.core.modes import derives_from_fp32
    from pqgrid.quant.convert import convert_cell

    out = tmp_path_factory.mktemp("tflite")
    paths = {}
    for mode in tuple(MODES):  # fp32 first: the derived modes start from it
        paths[mode] = out / f"{mode}.tflite"
        convert_cell(
            source=paths["fp32"] if derives_from_fp32(mode) else trained, **_convert_args(small_data, paths[mode], mode)
        )
    return paths


@pytest.fixture(scope="module")
def converter_tflites(trained, small_data, tmp_path_factory):
    """The reference: TFLiteConverter on the Keras model as TensorFlow ships it (its own
    SavedModel step), for every mode: byte for byte below, and dynamic and fp16 (which the
    LiteRT quantizer makes) against the converter's own files further down."""
    from pqgrid.core.modes import MODES
    from pqgrid.quant.convert import convert_tflite

    out = tmp_path_factory.mktemp("converter")
    paths = {m: out / f"{m}.tflite" for m in (*(n for n, m in MODES.items() if m.from_fp32), "fp32", "qat")}
    for mode, path in paths.items():
        convert_tflite(model_h5=trained, stock=True, **_convert_args(small_data, path, mode))
    return paths


def test_each_quant_mode_loads_with_right_dtypes(tflites):
    from pqgrid.evaluate.accuracy import interpreter, io_dtypes

    expected = {m: "float32" for m in tuple(MODES)} | {"int8_full": "int8", "qat": "int8"}
    for mode, path in tflites.items():
        it = interpreter(path)
        it.allocate_tensors()
        assert io_dtypes(path) == {"input_dtype": expected[mode], "output_dtype": expected[mode]}, mode
    # int8 stores weights in a quarter of the bytes (plus a small graph overhead)
    ratio = tflites["int8"].stat().st_size / tflites["fp32"].stat().st_size
    assert 0.2 < ratio < 0.4, ratio
    ratio16 = tflites["fp16"].stat().st_size / tflites["fp32"].stat().st_size
    assert 0.45 < ratio16 < 0.6, ratio16


def test_tflite_eval_batched_equals_one_per_invoke_and_keras(tflites, trained, small_data):
    from pqgrid.core.runtime import scale_inputs
    from pqgrid.evaluate.accuracy import interpreter, predict_tflite
    from pqgrid.models.builders import load_keras

    x, y = arrays.load_npz(small_data / "test.npz")
    xf = scale_inputs(x, "tf")
    batched = predict_tflite(tflites["fp32"], xf, batch_size=16, threads=2)  # 50 = 3x16 + 2 (padded)
    it = interpreter(tflites["fp32"])
    it.allocate_tensors()
    single = []
    for img in xf:
        it.set_tensor(it.get_input_details()[0]["index"], img[None])
        it.invoke()
        single.append(it.get_tensor(it.get_output_details()[0]["index"])[0])
    np.testing.assert_allclose(batched, np.array(single), atol=1e-5)
    keras = load_keras(trained).predict(xf, verbose=0)
    np.testing.assert_allclose(batched, keras, atol=1e-4)
    full = predict_tflite(tflites["int8_full"], xf, batch_size=64)
    assert full.shape == batched.shape and np.all(full >= 0) and abs(full.sum(1).mean() - 1) < 0.05


def _prune(trained, small_data, out, sparsity=50, **extra):
    from pqgrid.models.prune import prune_model

    settings = dict(
        TRAIN,
        learning_rate=1e-4,
        final_learning_rate=1e-5,
        exclude="",
        depthwise=True,
        target_sparsity=sparsity,
        schedule={"frequency_epochs": 1, "steps": 2},
    )
    settings.update(extra)
    d = small_data
    prune_model(
        trained_h5=trained,
        train_npz=d / "train.npz",
        test_npz=d / "test.npz",
        manifest=d / "manifest.json",
        model_out=out,
        history_csv=out.with_suffix(".csv"),
        arch_cfg=TINY,
        settings=settings,
        seed=0,
        threads=2,
    )
    from pqgrid.models.builders import load_keras, parameter_stats

    return parameter_stats(load_keras(out))


def test_pruning_reaches_target_on_kernels_and_depthwise_flag(trained, small_data, tmp_path):
    on = _prune(trained, small_data, tmp_path / "on.h5", depthwise=True)
    assert abs(on["conv_dense_sparsity"] - 0.5) < 0.01, on
    assert abs(on["depthwise_sparsity"] - 0.5) < 0.01, on
    off = _prune(trained, small_data, tmp_path / "off.h5", depthwise=False)
    assert abs(off["conv_dense_sparsity"] - 0.5) < 0.01, off
    assert off["depthwise_sparsity"] == 0.0
    # the thesis' "exact sparsity" (zeros over all parameters) falls short of the target
    assert off["zero_fraction"] < on["zero_fraction"] < 0.5


def test_pruning_exclude_regex(trained, small_data, tmp_path):
    from pqgrid.models.builders import load_keras

    _prune(trained, small_data, tmp_path / "ex.h5", exclude="^conv_pw_1$|conv_preds")
    m = load_keras(tmp_path / "ex.h5")
    for name in ("conv_pw_1", "conv_preds"):
        k = m.get_layer(name).kernel.numpy()
        assert np.count_nonzero(k == 0) == 0, name
    assert np.mean(m.get_layer("conv_pw_2").kernel.numpy() == 0) == pytest.approx(0.5, abs=0.01)


def test_thesis_schedule_formula_matches_tfmot():
    """Formula 2.8: s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n Δt))^3, at each update step."""
    import tensorflow_model_optimization as tfmot

    s_i, s_f, t0, dt, n = 0.0, 0.9, 0, 6, 4
    sched = tfmot.sparsity.keras.PolynomialDecay(s_i, s_f, begin_step=t0, end_step=t0 + n * dt, frequency=dt)
    for k in range(n + 1):
        t = t0 + k * dt
        should, s = sched(t)
        assert bool(should)
        assert float(s) == pytest.approx(s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3, abs=1e-6)
    assert not bool(sched(t0 + 1)[0])  # only every Δt


def test_pruning_schedule_reproduces_table_3_1_in_steps():
    """Table 3.1 (CIFAR-10: 50,000 images, batch 64 -> 782 steps per epoch) as tfmot runs it:
    updates at begin + k·Δt (k = 1…n), the last one on the last step of t0 + nΔt epochs."""
    from pqgrid.models.prune import pruning_schedule

    spe = 782
    for sched, epochs in (
        ({"frequency_epochs": 1, "steps": 2}, 2),
        ({"frequency_epochs": 2, "steps": 3}, 6),
        ({"frequency_epochs": 6, "steps": 4}, 24),
    ):
        plan = pruning_schedule(sched, spe)
        dt = sched["frequency_epochs"] * spe
        assert plan["epochs"] == epochs and plan["frequency"] == dt and plan["begin_step"] == 0
        assert plan["update_steps"] == [k * dt for k in range(1, sched["steps"] + 1)]
        assert plan["end_step"] == plan["update_steps"][-1] == epochs * spe  # last update = last step
    # recovery epochs come after the last update; t0 shifts everything
    plan = pruning_schedule({"frequency_epochs": 1, "steps": 2, "recovery_epochs": 3, "begin_epoch": 1}, 100)
    assert plan["update_steps"] == [200, 300] and plan["epochs"] == 6
    # a fractional Δt is rounded down, so n updates never spill into another epoch
    plan = pruning_schedule({"frequency_epochs": 0.5, "steps": 6}, 235)
    assert plan["frequency"] == 117 and plan["update_steps"][-1] == 702 and plan["epochs"] == 3


def test_tfmot_updates_masks_on_the_step_the_schedule_says(trained, small_data):
    """Why a 90 % model can stay at chance: tfmot's wrapper counts steps from 1, so with Δt = one epoch the
    first update happens on the epoch's *last* batch (not its first): the epoch-1 validation
    already sees the first pruned masks."""
    from pqgrid.jobs.tfsetup import tensorflow

    _, tf_keras = tensorflow(2, 0)
    import tensorflow_model_optimization as tfmot
    from pqgrid.models.builders import load_keras

    base = load_keras(trained)
    sched = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.6, begin_step=0, end_step=4, frequency=2)
    model = tfmot.sparsity.keras.prune_low_magnitude(base, pruning_schedule=sched)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = arrays.load_npz(small_data / "train.npz")
    mask = next(v for v in model.weights if "mask" in v.name)
    seen = []
    cb = tf_keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: seen.append(float(np.mean(mask.numpy() == 0)))
    )
    model.fit(
        x[:4].astype("float32"),
        y[:4],
        batch_size=1,
        epochs=1,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), cb],
    )
    # steps 1..4: no update at step 1, PolynomialDecay(2/4) at step 2, the target at step 4
    assert seen[0] == 0.0 and seen[1] == pytest.approx(0.6 - 0.6 * 0.5**3, abs=0.01)
    assert seen[3] == pytest.approx(0.6, abs=0.01)


def test_batchnorm_recalibration_matches_the_data_at_the_final_weights():
    """After recalibration on one batch holding all images, inference-mode BatchNorm uses
    that batch's statistics: inference output ~ training-mode output, unlike before."""
    from pqgrid.jobs.tfsetup import tensorflow

    tf, _ = tensorflow(2, 0)
    from pqgrid.core.runtime import scale_inputs
    from pqgrid.models.builders import all_layers, build, recalibrate_batchnorm

    model = build({"builder": "MobileNetV3Small", "alpha": 0.75, "minimalistic": True}, 10, (32, 32, 3), 0.9)
    x = np.random.default_rng(0).integers(0, 255, (48, 32, 32, 3)).astype(np.uint8)
    bns = [layer for layer in all_layers(model) if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for bn in bns:  # stale statistics, as after a jump in sparsity
        bn.moving_mean.assign(bn.moving_mean + 5.0)
    xs = tf.constant(scale_inputs(x, "raw"))
    stale = model(xs, training=False).numpy()
    assert recalibrate_batchnorm(model, x, batch_size=48, batches=1, scaling="raw") == len(bns)
    after = model(xs, training=False).numpy()
    for layer in all_layers(model):  # training mode without dropout's noise
        if isinstance(layer, tf.keras.layers.Dropout):
            layer.rate = 0.0
    train = model(xs, training=True).numpy()
    # the first BatchNorm's moving mean is now exactly its input's mean over these images
    feat = tf.keras.Model(model.inputs, bns[0].input)(xs).numpy()
    assert np.allclose(bns[0].moving_mean.numpy(), feat.mean(axis=(0, 1, 2)), atol=1e-4)
    # deeper layers agree up to Bessel's correction (the moving variance is unbiased)
    assert np.abs(stale - train).max() > 5 * np.abs(after - train).max()
    assert {bn.momentum for bn in bns} == {0.9}  # restored


def test_batchnorm_recalibration_averages_the_batches_equally():
    """Over several batches (the last one smaller), each BatchNorm's moving mean is the plain
    average of the seeded batches' own means, whatever the layer's momentum."""
    from pqgrid.jobs.tfsetup import tensorflow

    tf, _ = tensorflow(2, 0)
    from pqgrid.core.runtime import scale_inputs
    from pqgrid.models.builders import all_layers, build, recalibrate_batchnorm

    model = build({"builder": "MobileNet", "alpha": 0.25}, 10, (32, 32, 3), 0.99)
    x = np.random.default_rng(1).integers(0, 255, (48, 32, 32, 3)).astype(np.uint8)
    first = next(layer for layer in all_layers(model) if isinstance(layer, tf.keras.layers.BatchNormalization))
    assert recalibrate_batchnorm(model, x, batch_size=20, batches=5, scaling="tf", seed=3) > 0
    feat = tf.keras.Model(model.inputs, first.input)
    order = np.random.default_rng(3).permutation(48)
    means = [
        feat(tf.constant(scale_inputs(x[order[i : i + 20]], "tf"))).numpy().mean(axis=(0, 1, 2)) for i in (0, 20, 40)
    ]
    assert np.allclose(first.moving_mean.numpy(), np.mean(means, axis=0), atol=1e-5)
    overall = feat(tf.constant(scale_inputs(x, "tf"))).numpy().mean(axis=(0, 1, 2))
    assert not np.allclose(first.moving_mean.numpy(), overall, atol=1e-5)  # not the pooled mean
    assert first.momentum == 0.99


def _train_cmd(small_data, out, epochs, settings=None, then=""):
    """train_model in a fresh Python (kill -9, process-global policies), then `then`."""
    settings = settings or dict(TRAIN, epochs=epochs)
    code = (
        "import sys; sys.path.insert(0, %r); from pqgrid.models.train import train_model; from pqgrid.models.builders import load_keras; "
        "train_model(train_npz=%r, test_npz=%r, manifest=%r, model_out=%r, history_csv=%r, arch_cfg=%r, settings=%r, seed=0, threads=2); "
        % (
            str(ROOT / "workflow" / "scripts"),
            str(small_data / "train.npz"),
            str(small_data / "test.npz"),
            str(small_data / "manifest.json"),
            str(out),
            str(out.with_suffix(".csv")),
            TINY,
            settings,
        )
    )
    return [sys.executable, "-c", code + then]


def test_kill_9_and_rerun_resumes_to_identical_weights(small_data, tmp_path):
    from pqgrid.models.builders import load_keras

    epochs = 4
    ref = tmp_path / "ref.h5"
    subprocess.run(_train_cmd(small_data, ref, epochs), check=True, capture_output=True)
    killed = tmp_path / "killed.h5"
    proc = subprocess.Popen(
        _train_cmd(small_data, killed, epochs), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    hist = killed.parent / "killed.h5.resume" / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and not (hist.exists() and len(hist.read_text().splitlines()) >= 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not killed.exists(), "killed before the end: no model may exist yet"
    done = len(hist.read_text().splitlines()) - 1
    assert 2 <= done < epochs
    subprocess.run(_train_cmd(small_data, killed, epochs), check=True, capture_output=True)
    a, b = load_keras(ref).get_weights(), load_keras(killed).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert (tmp_path / "killed.csv").read_text().count("\n") == epochs + 1


@pytest.mark.parametrize("damage", ["history deleted", "history cut short", "one row ahead of the checkpoint"])
def test_resume_crash_windows_never_fail(small_data, tmp_path, damage, caplog):
    """A leftover .resume/ from a kill between checkpoint and history (or mid-write) is
    resumed when it fits together and discarded with a log line when not; never fatal."""
    from pqgrid.jobs.tfsetup import tensorflow
    from pqgrid.models import fit
    from pqgrid.models.builders import build

    tensorflow(2, 0)
    x, y = arrays.load_npz(small_data / "train.npz")
    resume, hist = tmp_path / "m.resume", tmp_path / "m.resume" / "history.csv"

    def run(epochs):
        model = build(TINY, 10, x.shape[1:], 0.9)
        return fit.fit_resumable(model, fit.rmsprop(TRAIN, 10 * epochs), (x, y), None, epochs=epochs, batch_size=32,
                                 seed=0, scaling="tf", num_classes=10, resume_dir=resume, run_id="r",
                                 history_csv=tmp_path / "h.csv")  # fmt: skip

    run(2)  # a run "killed" after epoch 2: its checkpoint and history are left behind
    lines = hist.read_text().splitlines()
    if damage == "history deleted":
        hist.unlink()
    elif damage == "history cut short":
        hist.write_text("\n".join(lines[:2]) + "\n")
    else:
        hist.write_text("\n".join([*lines, lines[-1].replace("2,", "3,", 1)]) + "\n")
    with caplog.at_level("INFO", logger="pqgrid"):
        rows = run(3)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    resumed = "resumed from" in caplog.text
    assert resumed == (damage == "one row ahead of the checkpoint"), caplog.text
    assert resumed or "discarding the inconsistent checkpoint" in caplog.text


# ------------------------------------------------------------------ what the file holds
@pytest.fixture(scope="module")
def pruned50(trained, small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("p50") / "pruned_50.h5"
    stats = _prune(trained, small_data, out, depthwise=True)
    return out, stats


def _convert(h5, small_data, path, mode):
    """`mode` as the workflow makes it (derived modes from an fp32 .tflite of `h5`, converted
    once per folder and model: each conversion from Keras costs seconds)."""
    from pqgrid.core.modes import derives_from_fp32
    from pqgrid.quant.convert import convert_cell

    source = h5
    if derives_from_fp32(mode):
        source = path.with_name(f"{os.path.basename(h5)}.source_fp32.tflite")
        if not source.exists():
            convert_cell(source=h5, **_convert_args(small_data, source, "fp32"))
    convert_cell(source=source, **_convert_args(small_data, path, mode))
    return path


def test_tflite_readback_equals_h5_and_zeros_survive_int8(pruned50, small_data, tmp_path):
    from pqgrid.quant.tflite_weights import kernel_sparsity, read_kernels

    h5, stats = pruned50
    for mode in ("fp32", "int8", "int8_full", "fp16", "dynamic"):
        ks = kernel_sparsity(read_kernels(_convert(h5, small_data, tmp_path / f"{mode}.tflite", mode)))
        assert ks["tflite_conv_dense_sparsity"] == pytest.approx(stats["conv_dense_sparsity"], abs=1e-9), mode
        assert ks["tflite_depthwise_sparsity"] == pytest.approx(stats["depthwise_sparsity"], abs=1e-9), mode


def test_sparse_encoding_is_stored_and_read_back(pruned50, small_data, tmp_path):
    from pqgrid.core.runtime import scale_inputs
    from pqgrid.evaluate.accuracy import predict_tflite
    from pqgrid.quant.tflite_weights import kernel_sparsity, read_kernels

    h5, stats = pruned50
    dense = _convert(h5, small_data, tmp_path / "d.tflite", "fp32")
    sparse = _convert(h5, small_data, tmp_path / "s.tflite", "fp32_sparse")
    ks = kernel_sparsity(read_kernels(sparse))
    assert ks["tflite_sparse_encoded_tensors"] > 0
    assert ks["tflite_conv_dense_sparsity"] == pytest.approx(stats["conv_dense_sparsity"], abs=0.02)
    x, _ = arrays.load_npz(small_data / "test.npz")
    xf = scale_inputs(x, "tf")
    np.testing.assert_allclose(predict_tflite(sparse, xf), predict_tflite(dense, xf), atol=1e-4)


def test_2_by_4_pattern_holds_in_tflite(trained, small_data, tmp_path):
    import tensorflow as tf
    from pqgrid.models.builders import load_keras
    from pqgrid.quant.tflite_weights import layer_table, read_kernels, satisfies_m_by_n
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_utils import is_pruned_m_by_n

    out = tmp_path / "p24.h5"
    _prune(trained, small_data, out, target_sparsity=50, m_by_n=[2, 4], depthwise=True)
    k = load_keras(out).get_layer("conv_pw_2").kernel.numpy()  # TF layout [H, W, C_IN, C_OUT]
    assert bool(is_pruned_m_by_n(tf.constant(k), (2, 4), last_channel="C_OUT")) or bool(
        is_pruned_m_by_n(tf.constant(np.transpose(k, (3, 0, 1, 2))), (2, 4), last_channel="C_IN")
    )
    assert satisfies_m_by_n(np.transpose(k, (3, 0, 1, 2)), 2, 4)
    rows = layer_table(read_kernels(_convert(out, small_data, tmp_path / "p24.tflite", "int8")), (2, 4))
    eligible = [r for r in rows if r["m_by_n_ok"] != ""]
    assert len(eligible) >= 10 and all(r["m_by_n_ok"] is True for r in eligible)
    model = load_keras(out)
    assert all(
        np.count_nonzero(la.depthwise_kernel.numpy() == 0) == 0
        for la in model.layers
        if hasattr(la, "depthwise_kernel")
    )
    dense = np.ones((8, 4), np.float32)
    assert satisfies_m_by_n(dense, 2, 4) is False and satisfies_m_by_n(np.ones((2, 3)), 2, 4) is None


@pytest.mark.slow  # the resumable fit is the training stage's, whose kill -9 test runs in CI
def test_pruning_kill_9_and_rerun_resumes_to_identical_weights(trained, small_data, tmp_path):
    from pqgrid.models.builders import load_keras

    settings = dict(
        TRAIN,
        learning_rate=1e-4,
        final_learning_rate=1e-5,
        exclude="",
        depthwise=True,
        target_sparsity=50,
        schedule={"frequency_epochs": 1, "steps": 4},
    )

    def cmd(out):
        return stage_command(
            "models.prune",
            "prune_model",
            trained_h5=str(trained),
            train_npz=str(small_data / "train.npz"),
            test_npz=str(small_data / "test.npz"),
            manifest=str(small_data / "manifest.json"),
            model_out=str(out),
            history_csv=str(out.with_suffix(".csv")),
            arch_cfg=TINY,
            settings=settings,
            seed=0,
            threads=2,
        )

    resumes_identically(cmd, tmp_path, load_keras, epochs=4)


# Slow tier: ~90 s in CI, mostly XLA compiling on a CPU; CI has no GPU, and no other path
# reads training.mixed_precision or training.xla.
@pytest.mark.slow
def test_gpu_path_mixed_precision_and_xla_run_on_cpu(small_data, tmp_path):
    """The GPU code path (mixed_float16 + XLA) runs on CPU too and saves a float32 model.
    In a subprocess: the mixed-precision policy is process-global."""
    out = tmp_path / "mixed.h5"
    settings = dict(TRAIN, epochs=1, mixed_precision=True, xla=True)
    show = f"m = load_keras({str(out)!r}); print('DTYPES', sorted({{l.dtype for l in m.layers if l.weights}}))"
    cmd = _train_cmd(small_data, out, 1, settings=settings, then=show)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DTYPES ['float32']" in proc.stdout


@pytest.mark.parametrize("deterministic", [True, False])
def test_op_determinism_follows_the_training_setting(deterministic):
    """tfsetup.tensorflow turns TensorFlow's op determinism on unless training.deterministic
    is false (a fresh process each: the switch is process-wide)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, 'workflow/scripts')\n"
        "from pqgrid.jobs.tfsetup import tensorflow\n"
        f"tensorflow(1, 0, {deterministic})\n"
        "from tensorflow.python.framework import config\n"
        "print('DETERMINISTIC', config.is_op_determinism_enabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert f"DETERMINISTIC {deterministic}" in out


# The converter's own modes and those its calibrator derives from fp32's file; dynamic and
# fp16 come from the LiteRT quantizer, whose files the stock converter does not write.
@pytest.mark.parametrize("mode", ["fp32", "qat", "int8", "int8_full", "int16x8"])
def test_workflow_file_is_the_stock_converters_file(tflites, converter_tflites, mode):
    """fp32 and qat go through the converter with a lean SavedModel step, int8/int8_full/
    int16x8 are derived from the fp32 .tflite (pqgrid/quant/convert.py); each must be the very file
    the converter as shipped writes from the Keras model, byte for byte."""
    assert tflites[mode].read_bytes() == converter_tflites[mode].read_bytes()


def test_conversion_takes_the_lean_savedmodel_step(caplog):
    """converter_for replaces the converter's Keras -> SavedModel step by a lean one (2-2.5x
    faster, benchmarks/README); if that step failed it would fall back silently to the
    converter's own - same bytes, so the byte test above cannot see it. This one can."""
    import logging

    from pqgrid.jobs.tfsetup import tensorflow
    from pqgrid.models.builders import build
    from pqgrid.quant.convert import converter_for

    tensorflow(2, 0)
    conv = converter_for(build(TINY, 10, (32, 32, 3), 0.9), "fp32")
    assert conv._convert_keras_to_saved_model.__func__.__name__ == "save_and_load"
    with caplog.at_level(logging.WARNING, logger="pqgrid"):
        assert conv.convert()[4:8] == b"TFL3"
    assert not [r for r in caplog.records if "lean SavedModel step failed" in r.getMessage()]


def _tensors(path):
    """name -> (type, constant bytes) of a .tflite's first subgraph, and its op names."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    ops = sorted(
        op_names[
            max(
                model.operatorCodes[o.opcodeIndex].builtinCode, model.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode
            )
        ]
        for o in graph.operators
    )
    consts = {}
    for t in graph.tensors:
        data = model.buffers[t.buffer].data
        if data is not None and len(data):
            consts[t.name.decode()] = (t.type, bytes(data))
    return ops, consts


def test_dynamic_from_ai_edge_quantizer_matches_the_converter(tflites, converter_tflites, small_data):
    """Same ops, same int8 weight tensors; a weight may differ by one step (rounding of
    ties), in a tiny share of elements; the same answers."""
    from pqgrid.core.runtime import scale_inputs
    from pqgrid.evaluate.accuracy import predict_tflite

    ops, consts = _tensors(tflites["dynamic"])
    ref_ops, ref_consts = _tensors(converter_tflites["dynamic"])
    assert ops == ref_ops
    int8 = 9  # TensorType.INT8
    assert {n for n, (t, _) in consts.items() if t == int8} == {n for n, (t, _) in ref_consts.items() if t == int8}
    differing = total = 0
    for name, (kind, blob) in consts.items():
        if kind == int8:
            d = np.frombuffer(blob, np.int8).astype(int) - np.frombuffer(ref_consts[name][1], np.int8).astype(int)
            assert np.abs(d).max() <= 1, name
            differing, total = differing + int((d != 0).sum()), total + d.size
    assert total and differing / total < 1e-3, (differing, total)
    x = scale_inputs(arrays.load_npz(small_data / "test.npz")[0], "tf")
    ours = predict_tflite(tflites["dynamic"], x).argmax(1)
    theirs = predict_tflite(converter_tflites["dynamic"], x).argmax(1)
    assert (ours == theirs).mean() >= 0.98


def test_fp16_from_ai_edge_quantizer_has_the_converters_float16_weights(tflites, converter_tflites, small_data):
    """Every float16 tensor of ours is the converter's, bit for bit (the converter also
    casts biases, which we keep in float32); the scores agree to float16 precision."""
    from pqgrid.core.runtime import scale_inputs
    from pqgrid.evaluate.accuracy import predict_tflite

    float16 = 1  # TensorType.FLOAT16
    _, consts = _tensors(tflites["fp16"])
    _, ref_consts = _tensors(converter_tflites["fp16"])
    ours = {blob for kind, blob in consts.values() if kind == float16}
    assert ours and ours <= {blob for kind, blob in ref_consts.values() if kind == float16}
    x = scale_inputs(arrays.load_npz(small_data / "test.npz")[0], "tf")
    np.testing.assert_allclose(
        predict_tflite(tflites["fp16"], x),
        predict_tflite(converter_tflites["fp16"], x),
        atol=2e-3,
    )


@pytest.mark.parametrize("mode", ["int8", "dynamic"])
def test_derivation_refuses_a_damaged_fp32_tflite(small_data, tmp_path, mode):
    from pqgrid.core.io import DamagedFile
    from pqgrid.quant.convert import derive_from_fp32

    bad = tmp_path / "s0_fp32.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    out = tmp_path / "s0_int8.tflite"
    with pytest.raises(DamagedFile, match="s0_fp32.tflite"):
        derive_from_fp32(fp32_tflite=bad, **_convert_args(small_data, out, mode))
    assert not out.exists()


def test_layer_error_from_fp32_tflite_equals_the_debugger_on_the_converter(tflites, trained, small_data, tmp_path):
    """layer_error builds the NumericVerify model from the fp32 .tflite; the debugger given a
    converter (its documented use) must find the very same NumericVerify statistics, and
    channel_noise must repeat exactly (reference kernels: layer_error.reference_kernels)."""
    import io

    import pandas as pd
    import tensorflow as tf
    from pqgrid.core.runtime import scale_inputs
    from pqgrid.models.builders import load_keras
    from pqgrid.quant.convert import calibration_images, converter_for
    from pqgrid.quant.layer_error import error_table, layer_error, reference_kernels

    def ours_in(name):
        return layer_error(fp32_tflite=tflites["fp32"], train_npz=small_data / "train.npz",
                           test_npz=small_data / "test.npz", out_csv=tmp_path / name, arch_cfg=TINY,
                           calibration_samples=20, samples=8, seed=0)  # fmt: skip

    ours = ours_in("le.csv")
    rep = scale_inputs(calibration_images(small_data / "train.npz", 20, 0), "tf")
    probe = scale_inputs(calibration_images(small_data / "test.npz", 8, 0), "tf")
    with reference_kernels():  # as layer_error runs it (its docstring says why)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter_for(load_keras(trained), "int8", rep),
            debug_dataset=lambda: ([img[None]] for img in probe),
        )
        debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    buf.seek(0)
    # the converter's path builds its interpreter without keeping intermediate tensors, so
    # only the NumericVerify statistics compare; channel_noise is checked to repeat exactly
    theirs = pd.read_csv(buf).assign(channel_noise=0.0)
    pd.testing.assert_frame_equal(ours.drop(columns="channel_noise"), error_table(theirs).drop(columns="channel_noise"))
    assert ours.channel_noise.tolist() == ours_in("le2.csv").channel_noise.tolist()


def test_input_pipelines_do_not_autotune():
    """tf.data's autotuning thread made every fit end with an idle wait of up to a minute
    (fit.without_autotune); training and validation pipelines must keep it off."""
    from pqgrid.jobs.tfsetup import tensorflow
    from pqgrid.models.fit import PREFETCH_BATCHES, epoch_batches, eval_batches

    tensorflow(1, 0)
    x = np.zeros((10, 8, 8, 3), np.uint8)
    y = np.arange(10) % 2
    for ds in (epoch_batches(x, y, 4, 0, 0, 2, "tf", 2), eval_batches(x, y, 4, "tf", 2)):
        assert ds.options().autotune.enabled is False
        assert sum(1 for _ in ds) in (3, 6)  # still every batch: 3 per pass
    assert PREFETCH_BATCHES >= 2
