"""pqgrid speed benchmarks. Each prints a ratio against a baseline measured in the same run.

  .venv/bin/python benchmarks/bench.py            # all
  .venv/bin/python benchmarks/bench.py p1 p3      # some

P1  test-set evaluation: pqgrid (batched invokes, explicit threads) vs the thesis method
    (LiteRT Interpreter, one image per invoke), same MobileNet int8 .tflite. Goal >= 4x.
P2  training images/s: the train rule's tf.data pipeline vs plain model.fit on in-memory
    arrays, same architecture and batch. Goal >= 1.0x.
P3  `snakemake -n all` on the full default grid (goal <= 5 s) and with 10 seeds (<= 20 s).
P4  no-op rerun of a finished smoke grid (goal <= 5 s).
P5  input size: photos made square once in the data stage (pqgrid) vs decoded and resized
    on the fly in every epoch (tf.data), 2000 variable-size photos at 224 px: time of one
    epoch's input pipeline and the memory each keeps. Decides data.smk's design.
P6  timings cross-checked: pqgrid's harness vs Google's benchmark_litert_model (the LiteRT
    wheel's own tool, CompiledModel API), same .tflite, same threads and runs, interleaved
    3 times on `local`; ratio of medians per model. Goal: within 15 %. Models: the .tflite
    files named by P6_MODELS (a glob), else MobileNet and MobileNetV3Small at 96 px in fp32
    and int8 (untrained: latency does not depend on the weights).
Results of the last measurement are in benchmarks/README.md."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _data(tmp, train_per_class, test_per_class):
    from pqgrid import data

    data.prepare(
        source="synthetic",
        train_npz=tmp / "train.npz",
        test_npz=tmp / "test.npz",
        manifest_path=tmp / "manifest.json",
        train_per_class=train_per_class,
        test_per_class=test_per_class,
        seed=0,
    )
    return tmp


def p1(tmp: Path):
    from pqgrid.tfsetup import tensorflow

    tensorflow(2, 0)
    from pqgrid import data
    from pqgrid.convert import converter_for
    from pqgrid.evaluate import interpreter, predict_tflite
    from pqgrid.models import build, scale_inputs

    d = _data(tmp, 50, 200)
    x, _ = data.load_npz(d / "test.npz")
    xf = scale_inputs(x, "tf")
    model = build({"builder": "MobileNet"}, 10, (32, 32, 3), 0.9)
    path = tmp / "mobilenet_int8.tflite"
    path.write_bytes(converter_for(model, "int8", xf[:50]).convert())

    it = interpreter(path, threads=1)  # the thesis' way: LiteRT default, one image a call
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    t0 = time.perf_counter()
    for img in xf:
        it.set_tensor(i, img[None])
        it.invoke()
        it.get_tensor(o)
    base = len(xf) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    predict_tflite(path, xf, batch_size=256, threads=2)
    ours = len(xf) / (time.perf_counter() - t0)
    print(
        f"P1 eval MobileNet int8, {len(xf)} images: one-per-invoke {base:.0f} img/s, "
        f"pqgrid batched/2 threads {ours:.0f} img/s, ratio {ours / base:.2f}x (goal >= 4x)"
    )


def p2(tmp: Path, arch="MobileNet", epochs=3):
    from pqgrid.tfsetup import tensorflow

    tf, tf_keras = tensorflow(2, 0)
    from pqgrid import data, fit
    from pqgrid.models import build, scale_inputs

    d = _data(tmp, 500, 10)
    x, y = data.load_npz(d / "train.npz")
    cfg = {"builder": arch}

    def fresh():
        return build(cfg, 10, x.shape[1:], 0.9), tf_keras.optimizers.RMSprop(1e-3, momentum=0.9)

    model, opt = fresh()
    model.compile(optimizer=opt, loss="categorical_crossentropy", metrics=["accuracy"])
    xs, ys = scale_inputs(x, "tf"), tf_keras.utils.to_categorical(y, 10)
    times = []

    class T(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, e, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(xs, ys, batch_size=64, epochs=epochs, callbacks=[T()], verbose=0)
    base = len(x) / min(times[1:])  # first epoch includes tracing
    model, opt = fresh()
    rows = fit.fit_resumable(
        model,
        opt,
        (x, y),
        None,
        epochs=epochs,
        batch_size=64,
        seed=0,
        scaling="tf",
        num_classes=10,
        resume_dir=tmp / "resume",
        run_id="bench",
        history_csv=tmp / "h.csv",
    )
    ours = len(x) / min(r["seconds"] for r in rows[1:])
    print(
        f"P2 train {arch}, {len(x)} images, batch 64: plain model.fit {base:.0f} img/s, "
        f"train rule {ours:.0f} img/s, ratio {ours / base:.2f}x (goal >= 1.0x)"
    )


def _timed(args, cwd):
    t0 = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
    return time.perf_counter() - t0


def _copy(tmp):
    """The workflow's code in a fresh folder, so the checkout's results/ stay untouched."""
    wf = tmp / "wf"
    wf.mkdir()
    for name in ("Snakefile", "config.yaml", "workflow", "presets", "profiles", "envs"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, wf / name)
        else:
            shutil.copy(src, wf / name)
    return wf


def p3(tmp: Path):
    wf = _copy(tmp)
    empty = _timed(["--version"], wf)
    full = _timed(["-n", "all", "--quiet"], wf)
    (wf / "seeds10.yaml").write_text("seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n")
    ten = _timed(["-n", "all", "--quiet", "--configfile", "seeds10.yaml"], wf)
    print(
        f"P3 dry run, default grid (7 archs x 4 x 5 = 140 cells): {full:.2f}s (goal <= 5s); "
        f"10 seeds (1400 cells): {ten:.2f}s (goal <= 20s); ratio 10x/1x {ten / full:.2f}; "
        f"`snakemake --version` alone {empty:.2f}s"
    )


def p4(tmp: Path):
    wf = _copy(tmp)
    build = _timed(["--cores", "2", "all", "--configfile", "presets/smoke.yaml"], wf)
    noop = _timed(["--cores", "2", "all", "--configfile", "presets/smoke.yaml"], wf)
    print(f"P4 smoke grid: full build {build:.1f}s, no-op rerun {noop:.2f}s (goal <= 5s), ratio {build / noop:.0f}x")


def p5(tmp: Path, n_per_class=200, size=224, epochs=3):
    import numpy as np
    import tensorflow as tf
    from pqgrid import data, fit

    files = data.synthetic_photos(per_class=n_per_class, num_classes=10, seed=0)
    names = sorted(files)
    labels = np.array([int(n.split("/")[1][5:]) for n in names])
    encoded = sum(len(b) for b in files.values())
    t = time.perf_counter()
    train, _, _, _ = data.load("synthetic-photos", n_per_class, 1, image_size=size, test_fraction=0.01)
    once_prepare = time.perf_counter() - t

    def epoch_once(e):
        ds = fit.epoch_batches(train.x, train.y, 64, 0, e, e + 1, "tf", 10)
        return sum(1 for _ in ds)

    def epoch_fly(e):
        def load(b, y):
            img = tf.io.decode_image(b, channels=3, expand_animations=False)
            side = tf.cast(tf.reduce_min(tf.shape(img)[:2]), tf.float32)
            hw = tf.cast(tf.math.round(tf.cast(tf.shape(img)[:2], tf.float32) * size / side), tf.int32)
            img = tf.image.resize_with_crop_or_pad(tf.image.resize(img, hw), size, size)
            return img / 127.5 - 1.0, tf.one_hot(y, 10)

        ds = tf.data.Dataset.from_tensor_slices(([files[n] for n in names], labels)).shuffle(len(names), seed=e)
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(64).prefetch(tf.data.AUTOTUNE)
        return sum(1 for _ in ds)

    times = {}
    for name, fn in (("once", epoch_once), ("on the fly", epoch_fly)):
        fn(0)  # warm-up (graph tracing)
        t = time.perf_counter()
        for e in range(1, epochs + 1):
            fn(e)
        times[name] = (time.perf_counter() - t) / epochs
    print(
        f"P5 {len(names)} photos -> {size}px: resize once {once_prepare:.1f}s in the data stage, then "
        f"{times['once']:.2f}s per epoch, keeps {train.x.nbytes / 1e6:.0f} MB (uint8); on the fly "
        f"{times['on the fly']:.2f}s per epoch, keeps {encoded / 1e6:.0f} MB (encoded); per-epoch ratio "
        f"{times['on the fly'] / times['once']:.1f}x; once pays off after "
        f"{once_prepare / max(times['on the fly'] - times['once'], 1e-9):.1f} epochs"
    )


def _p6_models(tmp: Path) -> list:
    import glob
    import os

    if os.environ.get("P6_MODELS"):
        return sorted(Path(p) for p in glob.glob(os.environ["P6_MODELS"]))
    from pqgrid.convert import converter_for
    from pqgrid.models import build
    from pqgrid.tfsetup import tensorflow

    tensorflow(2, 0)
    import numpy as np

    rep = np.random.default_rng(0).random((8, 96, 96, 3), dtype=np.float32)
    out = []
    for builder in ("MobileNet", "MobileNetV3Small"):
        model = build({"builder": builder}, 10, (96, 96, 3), 0.9)
        for mode in ("fp32", "int8"):
            path = tmp / f"{builder}_96px_{mode}.tflite"
            path.write_bytes(converter_for(model, mode, rep).convert())
            out.append(path)
    return out


def p6(tmp: Path, runs=100, rounds=3):
    import os
    import statistics

    from pqgrid.device import benchmark

    models = _p6_models(tmp)
    cell = {"arch": "bench", "seed": 0, "sparsity": 0, "quant": "fp32"}
    print("P6 model | harness median of avg_us | benchmark_litert_model | ratio tool/harness")
    for m in models:
        times = {"harness": [], "benchmark_litert_model": []}
        for _ in range(rounds):  # interleaved, so drift of the machine hits both alike
            for tool in times:
                cfg = {"type": "local", "tool": tool, "num_runs": runs, "remote_dir": str(tmp / "lock")}
                r = benchmark(tflite=m, out_json=tmp / "b.json", name="local", cfg=cfg, cell=cell)
                times[tool].append(r["avg_us"])
        h, g = (statistics.median(times[t]) for t in times)
        name = "/".join(m.parts[-3:]) if os.environ.get("P6_MODELS") else m.name  # {arch}/seed{s}/{cell}
        print(f"P6 {name} | {h:.0f} us | {g:.0f} us | {g / h:.2f}x")


if __name__ == "__main__":
    which = sys.argv[1:] or ["p1", "p2", "p3", "p4", "p5", "p6"]
    for name in which:
        with tempfile.TemporaryDirectory() as tmp:
            globals()[name](Path(tmp))
