"""Models from outside pqgrid (README "Your model"): a Keras functional model trained by the
test itself, a model with a subclassed layer and the module defining it, and a builder of
the user's own (module:function), through the smoke grid (prune x quantize x evaluate x
device) on an .npz data set; and the bad cases, each one line before any job."""

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_workflow, snakemake

# Written into the user's folder: how a user trains a model outside pqgrid.
LAYERS = '''
import tf_keras


@tf_keras.utils.register_keras_serializable(package="user")
class ScaledReLU(tf_keras.layers.Layer):
    """A layer no package ships: relu(x) * a learned scale per channel."""

    def build(self, shape):
        self.scale = self.add_weight(name="scale", shape=(shape[-1],), initializer="ones")

    def call(self, x):
        return tf_keras.activations.relu(x) * self.scale
'''

ARCH = '''
import tf_keras


def small_net(input_shape, classes, width=16):
    """A user's architecture: two conv blocks with a residual add, global pooling, softmax."""
    L = tf_keras.layers
    x_in = L.Input(input_shape)
    x = L.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x_in)
    y = L.Conv2D(width, 3, padding="same", activation="relu")(x)
    x = L.Add()([x, y])
    x = L.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return tf_keras.Model(x_in, L.Dense(classes, activation="softmax")(x))
'''

TRAIN = """
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf, tf_keras
sys.path.insert(0, os.path.dirname(__file__))
from arch import small_net
from layers import ScaledReLU

tf_keras.utils.set_random_seed(0)
d = np.load("data.npz")
x, y, xt, yt = d["x_train"] / 127.5 - 1, d["y_train"], d["x_test"] / 127.5 - 1, d["y_test"]
out = {}

def fit_and_save(model, path):
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    model.save(path)
    keras_top1 = float((model.predict(xt, verbose=0).argmax(1) == yt).mean())
    # a careful user's own int8 conversion: default optimizations, 100 calibration images
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i : i + 1].astype(np.float32)] for i in range(100))
    it = tf.lite.Interpreter(model_content=conv.convert())
    it.allocate_tensors()
    hits = 0
    for i in range(len(xt)):
        it.set_tensor(it.get_input_details()[0]["index"], xt[i : i + 1].astype(np.float32))
        it.invoke()
        hits += int(it.get_tensor(it.get_output_details()[0]["index"]).argmax() == yt[i])
    out[path] = {"keras_top1": keras_top1, "own_int8_top1": hits / len(xt)}

mine = small_net((32, 32, 3), 10, width=12)
fit_and_save(mine, "mine.keras")
# the same model as a float .tflite, and as one with int8 input and output
open("lite.tflite", "wb").write(tf.lite.TFLiteConverter.from_keras_model(mine).convert())
conv = tf.lite.TFLiteConverter.from_keras_model(mine)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
conv.representative_dataset = lambda: ([x[i : i + 1].astype(np.float32)] for i in range(20))
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
conv.inference_input_type = conv.inference_output_type = tf.int8
open("int8io.tflite", "wb").write(conv.convert())
L = tf_keras.layers
i = L.Input((32, 32, 3))
h = ScaledReLU()(L.Conv2D(16, 3, strides=2, padding="same")(i))
h = L.GlobalAveragePooling2D()(L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(h))
fit_and_save(tf_keras.Model(i, L.Dense(10, activation="softmax")(h)), "custom.h5")
wide = L.Input((48, 48, 3))
tf_keras.Model(wide, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(L.Conv2D(4, 3)(wide)))).save("wide48.keras")
# two layers QAT cannot quantize (a custom layer twice, a non-constant TFOpLambda)
q = L.Input((32, 32, 3))
h = ScaledReLU(name="act_a")(L.Conv2D(8, 3, strides=2, padding="same")(q))
h = ScaledReLU(name="act_b")(L.Conv2D(8, 3, strides=2, padding="same")(h))
h = tf.math.sin(h)
tf_keras.Model(q, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(h))).save("noqat.keras")
five = L.Input((32, 32, 3))
tf_keras.Model(five, L.Dense(5, activation="softmax")(L.GlobalAveragePooling2D()(L.Conv2D(4, 3)(five)))).save("five.keras")
json.dump(out, open("outside.json", "w"))
"""


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """A user's folder beside the workflow: an .npz data set (3 learnable classes), the
    models trained there with plain tf_keras, the module of their custom layer and a
    builder of their own; and the workflow copied next to it."""
    from pqgrid.data.sources import synthetic

    root = tmp_path_factory.mktemp("yours")
    # ten classes and a short training: accuracy well below 100 %, so agreement means something
    train, test, _ = synthetic(60, 30, num_classes=10, seed=3)
    np.savez(
        root / "data.npz",
        x_train=train.x,
        y_train=train.y,
        x_test=test.x,
        y_test=test.y,
        classes=np.array([f"stripes{c}" for c in range(10)]),
    )
    # the same images with the classes in another order (labels renumbered): a model trained
    # on data.npz names its outputs with `classes:` to be scored on this one
    order = [3, 7, 0, 9, 1, 6, 8, 2, 4, 5]  # new label i is old class order[i]; no class stays
    new_label = np.argsort(order)
    np.savez(
        root / "shuffled.npz",
        x_train=train.x,
        y_train=new_label[train.y],
        x_test=test.x,
        y_test=new_label[test.y],
        classes=np.array([f"stripes{c}" for c in order]),
    )
    (root / "layers.py").write_text(textwrap.dedent(LAYERS))
    (root / "arch.py").write_text(textwrap.dedent(ARCH))
    (root / "train_outside.py").write_text(textwrap.dedent(TRAIN))
    subprocess.run([sys.executable, "train_outside.py"], cwd=root, check=True, capture_output=True)
    return root, copy_workflow(root / "wf")


def _config(root, wf, architectures, **extra):
    """The smoke preset on the user's data with the user's architectures."""
    cfg = yaml.safe_load((wf / "presets/smoke.yaml").read_text())
    cfg.update(
        run_dir="runs/yours",
        dataset={"source": str(root / "data.npz"), "seed": 0},
        architectures=architectures,
        grid_architectures=list(architectures),
        quantization={**cfg["quantization"], "modes": ["fp32", "int8"], "subsets": {}},
        **extra,
    )
    (wf / "yours.yaml").write_text(yaml.safe_dump(cfg))
    return ("--configfile", "yours.yaml")


def test_models_from_outside_go_through_the_grid(user_folder):
    """Three architectures pqgrid has no builder for - a trained .keras model, a trained .h5
    with a custom layer, the user's own builder - pruned x quantized x evaluated x measured
    on `local` in one command. The imported fp32 .tflite scores what the user's Keras model
    scored (within 0.1 pp, same images); pqgrid's int8 what the user's own int8 conversion
    scored (within 1 pp)."""
    root, wf = user_folder
    archs = {
        "mine": {"model": str(root / "mine.keras"), "scaling": "tf"},
        "custom": {"model": str(root / "custom.h5"), "custom_objects": str(root / "layers.py"), "scaling": "tf"},
        "own": {"builder": f"{root / 'arch.py'}:small_net", "width": 8, "scaling": "tf"},
        "lite": {"tflite": str(root / "lite.tflite"), "scaling": "tf"},
    }
    args = _config(root, wf, archs)
    # the tables asserted below, not `all`: the figures and findings of these cells are the
    # smoke run's tests' (the report reads any architecture alike), and cost ~30 jobs here
    targets = ["results/tables/summary.csv", "results/tables/bench.csv"]
    proc = snakemake(wf, "--cores", "2", *targets, *args, timeout=1800)
    assert "mine: " in proc.stderr and "pruning wraps" in proc.stderr, "the model check says what pruning does"
    assert "lite: a .tflite" in proc.stderr and "not: s50 fp32, s50 int8" in proc.stderr, (
        "and what a .tflite cannot have"
    )
    run = wf / "runs/yours"
    s = pd.read_csv(run / "results/tables/summary.csv")
    assert len(s) == 3 * 2 * 2 + 2 and set(s.arch) == set(archs), "the .tflite: s0 fp32 and int8 only"
    outside = json.loads((root / "outside.json").read_text())
    for arch, file in (("mine", "mine.keras"), ("custom", "custom.h5")):
        fp32 = s[(s.arch == arch) & (s.sparsity == 0) & (s["quant"] == "fp32")].iloc[0]
        int8 = s[(s.arch == arch) & (s.sparsity == 0) & (s["quant"] == "int8")].iloc[0]
        assert abs(fp32.top1 - outside[file]["keras_top1"]) <= 0.001, (arch, fp32.top1, outside[file])
        assert abs(int8.top1 - outside[file]["own_int8_top1"]) <= 0.01, (arch, int8.top1, outside[file])
    lite = s[s.arch == "lite"].set_index("quant")
    assert lite.loc["fp32", "top1"] == pytest.approx(outside["mine.keras"]["keras_top1"], abs=0.001), (
        "the file as it is"
    )
    assert abs(lite.loc["int8", "top1"] - outside["mine.keras"]["own_int8_top1"]) <= 0.01, "quantized from the file"
    assert (
        lite.loc["int8", "input_dtype"] == "float32"
        and lite.loc["int8", "file_bytes"] < 0.5 * lite.loc["fp32", "file_bytes"]
    )
    assert (s[s.arch == "own"].top1 > 0.3).all(), "the user's builder trained in the grid learns (chance: 0.1)"
    assert outside["mine.keras"]["keras_top1"] < 0.95, "a test where agreement is not automatic"
    assert (s[s.sparsity == 50].tflite_kernel_sparsity > 0.4).all(), "every kind with a Keras model was pruned"
    assert len(list((run / "results/bench").rglob("*.json"))) >= 14, "every cell measured on local"

    # what reruns: nothing after the run; a replaced model file its architecture's cells; an
    # edited builder file its architecture's training and what follows
    def first_rules(extra=()):
        out = snakemake(wf, "-n", *targets, *args, *extra).stdout
        return {
            (rule, arch)
            for rule, arch in re.findall(
                r"^(?:local)?rule (\w+):\n(?:[ \t]+.*\n)*?[ \t]+wildcards: arch=(\w+)", out, re.M
            )
        }

    assert first_rules() == set()
    saved = (root / "custom.h5").read_bytes()
    retrain = (
        "import os; os.environ['TF_USE_LEGACY_KERAS'] = '1'; import tf_keras, layers; "
        "m = tf_keras.models.load_model('custom.h5'); w = m.get_weights(); w[-1] = w[-1] + 0.01; "
        "m.set_weights(w); m.save('custom.h5')"
    )
    subprocess.run([sys.executable, "-c", retrain], cwd=root, check=True, capture_output=True)
    try:
        assert {a for _, a in first_rules()} == {"custom"}
    finally:
        (root / "custom.h5").write_bytes(saved)
    code = (root / "arch.py").read_text()
    (root / "arch.py").write_text(code.replace("width=16", "width=16, extra=0"))
    try:
        planned = first_rules()
        assert {a for _, a in planned} == {"own"} and ("train_model", "own") in planned
    finally:
        (root / "arch.py").write_text(code)


@pytest.mark.parametrize(
    "arch, message",
    [
        (
            {"model": "{root}/wide48.keras", "scaling": "tf", "input_size": 32},
            r"input_size: 32, but the model takes 48x48",
        ),
        ({"model": "{root}/five.keras", "scaling": "tf"}, r"outputs 5 classes, the data set has 10"),
        ({"model": "{root}/custom.h5", "scaling": "tf"}, r"cannot be loaded .*custom_objects"),
        ({"model": "{root}/mine.keras"}, r"mine.scaling: give the input scaling"),
        ({"model": "{root}/nothere.keras", "scaling": "tf"}, r"mine.model: '.*nothere.keras' does not exist"),
        ({"builder": "{root}/arch.py:big_net", "scaling": "tf"}, r"defines no function 'big_net'"),
        ({"builder": "{root}/arch.py:small_net", "depth": 3, "scaling": "tf"}, r"small_net\(\) takes no 'depth'"),
        ({"builder": "{root}/arch.py:small_net"}, r"a builder of your own needs the input scaling"),
        ({"builder": "{root}/arch.py:small_net", "scaling": "tf", "weights": "x.h5"}, r"starts from scratch"),
        ({"tflite": "{root}/int8io.tflite", "scaling": "tf"}, r"mine.tflite: takes int8 input .* give the float model"),
        (
            {"tflite": "{root}/lite.tflite", "scaling": "tf", "input_size": 64},
            r"input_size: 64, but the .tflite takes 32x32",
        ),
        (
            {"tflite": "{root}/lite.tflite", "model": "{root}/mine.keras", "scaling": "tf"},
            r"give one of builder .* not model and tflite",
        ),
        ({"scaling": "tf"}, r"mine: give builder \(to train it\), model .* or tflite"),
        (
            {"model": "{root}/mine.keras", "scaling": "tf", "classes": ["stripes0", "stripes1"]},
            r"mine.classes: names 2 classes, the model outputs 10",
        ),
        (
            {"model": "{root}/mine.keras", "scaling": "tf", "classes": [f"stripes{c}" for c in range(9)] + ["cat"]},
            r"mine.classes: the data set's classes \['stripes9'\] are not among the model's, \['cat'\]",
        ),
        (
            {"tflite": "{root}/lite.tflite", "scaling": "tf", "classes": [f"s{c}" for c in range(10)]},
            r"mine.classes: the data set's classes",
        ),
        (
            {"builder": "{root}/arch.py:small_net", "scaling": "tf", "classes": ["a", "b"]},
            r"mine.classes: names a model file's outputs; a builder trains",
        ),
    ],
    ids=[
        "size",
        "classes",
        "custom-layer",
        "no-scaling",
        "missing",
        "no-function",
        "kwarg",
        "builder-scaling",
        "weights",
        "tflite-int8-io",
        "tflite-size",
        "two-kinds",
        "none",
        "classes-count",
        "classes-names",
        "tflite-classes-names",
        "classes-builder",
    ],
)
def test_bad_models_fail_before_any_job(user_folder, arch, message):
    root, wf = user_folder
    arch = {k: v.format(root=root) if isinstance(v, str) else v for k, v in arch.items()}
    proc = snakemake(wf, "-n", "all", *_config(root, wf, {"mine": arch}), check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pqgrid config error:")]
    assert len(errors) == 1 and re.search(message, errors[0]), proc.stderr[-2000:]
    assert "jobs to run" not in proc.stdout + proc.stderr, "stopped before planning any job"


def test_scaling_forms_agree():
    """'torch' and its explicit mapping scale alike; the JSON text the harness' command line
    carries gives the same floats; 'tf' is (x * 1/127.5 - 1)."""
    from pqgrid.core.runtime import TORCH_SCALING, scale_inputs

    x = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3) * 5
    assert np.array_equal(scale_inputs(x, "torch"), scale_inputs(x, TORCH_SCALING))
    assert np.array_equal(scale_inputs(x, json.dumps(TORCH_SCALING)), scale_inputs(x, "torch"))
    assert np.allclose(scale_inputs(x, {"scale": 1 / 127.5, "mean": 1.0}), scale_inputs(x, "tf"), atol=1e-6)
    assert not np.allclose(scale_inputs(x, "torch"), scale_inputs(x, "tf"))
    with pytest.raises(ValueError, match="unknown input scaling"):
        scale_inputs(x, "caffe")


def test_user_builder_is_found_without_importing_it(tmp_path):
    """The config check reads a user's builder file; it never runs it (a dry run imports no
    TensorFlow): a file that would fail on import still passes the check."""
    from pqgrid.core.config import check_user_builder

    (tmp_path / "net.py").write_text(
        "raise SystemExit('imported')\n\ndef net(input_shape, classes, depth=2):\n    pass\n"
    )
    check_user_builder("n", {"builder": f"{tmp_path / 'net.py'}:net", "depth": 3, "scaling": "raw"})


def test_readme_shows_each_kind_of_model():
    text = (ROOT / "docs/your-model.md").read_text()
    for needle in ("model: ", "custom_objects: ", "builder: ", "scaling: ", ".npz"):
        assert needle in text, needle


def test_a_model_file_fine_tunes_when_its_architecture_asks(user_folder, tmp_path):
    """`training.epochs` on a `model:` architecture: the import job fine-tunes the user's model
    for those epochs (history rows, changed weights) before saving it as the trained model;
    without epochs it is saved as it is."""
    from conftest import stage_command, synthetic_npz

    root, _ = user_folder
    d = synthetic_npz(tmp_path / "data", 10, 5)
    settings = {"epochs": 1, "batch_size": 32, "learning_rate": 1e-3, "final_learning_rate": 1e-4, "momentum": 0.9,
                "validation": "test", "deterministic": True}  # fmt: skip
    common = dict(train_npz=str(d / "train.npz"), test_npz=str(d / "test.npz"), manifest=str(d / "manifest.json"),
                  arch_cfg={"model": str(root / "mine.keras"), "scaling": "tf"}, seed=0, threads=1)  # fmt: skip
    for name, epochs in (("tuned", 1), ("as_is", 0)):
        cmd = stage_command("models.train", "train_model", model_out=str(tmp_path / f"{name}.h5"),
                            history_csv=str(tmp_path / f"{name}.csv"), settings={**settings, "epochs": epochs}, **common)  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
    check = (
        "import os, sys, numpy as np; os.environ['TF_USE_LEGACY_KERAS'] = '1'; import tf_keras; "
        "a, b, c = (tf_keras.models.load_model(p, compile=False).get_weights() for p in sys.argv[1:]); "
        "print(all(np.array_equal(x, y) for x, y in zip(a, c)), all(np.array_equal(x, y) for x, y in zip(a, b)))"
    )
    out = subprocess.run([sys.executable, "-c", check, str(root / "mine.keras"), str(tmp_path / "tuned.h5"),
                          str(tmp_path / "as_is.h5")], check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    assert out == ["True", "False"], "as is: the user's weights; fine-tuned: changed"
    assert len((tmp_path / "tuned.csv").read_text().splitlines()) == 2, "one epoch in the history"


def test_a_models_class_order_maps_onto_the_data_sets(user_folder):
    """`classes:` names a model's outputs in its own order. On a data set numbering the same
    classes otherwise (no class keeps its number), the model file (reordered when imported)
    and the .tflite (scores reordered where read, on the host and on the device) score what
    the model scored on its own data; the .tflite without `classes:` is near chance."""
    root, wf = user_folder
    trained_order = [f"stripes{c}" for c in range(10)]
    archs = {
        "mine": {"model": str(root / "mine.keras"), "scaling": "tf", "classes": trained_order},
        "lite": {"tflite": str(root / "lite.tflite"), "scaling": "tf", "classes": trained_order},
        "lite_unmapped": {"tflite": str(root / "lite.tflite"), "scaling": "tf"},
    }
    args = _config(root, wf, archs, pruning={"sparsities": [0]}, devices={"local": {"type": "local", "accuracy": True}})
    cfg = yaml.safe_load((wf / "yours.yaml").read_text())
    cfg.update(run_dir="runs/order", dataset={"source": str(root / "shuffled.npz"), "seed": 0})
    cfg["quantization"]["modes"] = ["fp32"]
    (wf / "yours.yaml").write_text(yaml.safe_dump(cfg))
    wanted = ["results/tables/summary.csv", "results/device_eval/local/lite/seed0/s0_fp32.json"]
    snakemake(wf, "--cores", "2", *wanted, *args, timeout=1200)  # the files asserted, not the report
    run = wf / "runs/order/results"
    s = pd.read_csv(run / "tables/summary.csv").set_index("arch")
    keras_top1 = json.loads((root / "outside.json").read_text())["mine.keras"]["keras_top1"]
    assert s.loc["mine", "top1"] == pytest.approx(keras_top1, abs=0.001)
    assert s.loc["lite", "top1"] == pytest.approx(keras_top1, abs=0.001)
    assert s.loc["lite_unmapped", "top1"] < keras_top1 - 0.15, "the order matters on this data"
    on_device = json.loads((run / "device_eval/local/lite/seed0/s0_fp32.json").read_text())
    assert on_device["top1"] == pytest.approx(keras_top1, abs=0.001) and on_device["answers_differing_from_host"] == 0
    per_class = pd.read_csv(run / "eval/mine/seed0/s0_fp32.per_class.csv")
    assert list(per_class.iloc[:, 0]) == [f"stripes{c}" for c in (3, 7, 0, 9, 1, 6, 8, 2, 4, 5)], "the data set's order"


def test_every_layer_qat_cannot_quantize_is_named(user_folder):
    """A model with three layers tfmot's 8-bit scheme has no config for: the check names
    each (one line each, with what to do) and the run goes on without QAT; a grid asking
    QAT for it stops before any job."""
    root, wf = user_folder
    arch = {"model": str(root / "noqat.keras"), "custom_objects": str(root / "layers.py"), "scaling": "tf"}
    proc = snakemake(wf, "-n", "all", *_config(root, wf, {"mine": arch}))
    named = [line for line in proc.stderr.splitlines() if "QAT cannot quantize" in line]
    assert len(named) == 3, proc.stderr[-2000:]
    assert ["act_a" in named[0], "act_b" in named[1], "TFOpLambda" in named[2]] == [True] * 3, named
    assert all("give it one" in line or "write it as a Keras layer" in line for line in named), named
    args = _config(root, wf, {"mine": arch})
    cfg = yaml.safe_load((wf / "yours.yaml").read_text())
    cfg["quantization"]["modes"] = ["fp32", "qat"]
    (wf / "yours.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(wf, "-n", "all", *args, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("pqgrid config error:")]
    assert proc.returncode != 0 and len(errors) == 1 and "QAT cannot fine-tune it (3 layers" in errors[0], errors
