"""pqgrid speed benchmarks. Each prints a ratio against a baseline measured in the same run.

  .venv/bin/python benchmarks/bench.py            # all
  .venv/bin/python benchmarks/bench.py p1 p3      # some

P1  test-set evaluation: pqgrid (batched invokes, explicit threads) vs the thesis method
    (LiteRT Interpreter, one image per invoke), same MobileNet int8 .tflite. Goal >= 4x.
P2  training images/s: the train rule's tf.data pipeline vs plain model.fit on in-memory
    arrays, same architecture, batch and threads (config.yaml's training.threads). Goal >= 1.0x.
P3  `snakemake -n all` on the full default grid (goal <= 5 s) and with 10 seeds (<= 20 s).
P4  no-op rerun of a finished smoke grid (goal <= 5 s).
P5  input size: photos made square once in the data stage (pqgrid) vs decoded and resized
    on the fly in every epoch (tf.data), 2000 variable-size photos at 224 px: time of one
    epoch's input pipeline and the memory each keeps. Decides sources.smk's design.
P6  timings cross-checked: pqgrid's harness vs Google's benchmark_litert_model (the LiteRT
    wheel's own tool, CompiledModel API), same .tflite, same threads and runs, interleaved
    3 times on `local`; ratio of medians per model. Goal: within 15 %. Models: the .tflite
    files named by P6_MODELS (a glob), else MobileNet and MobileNetV3Small at 96 px in fp32
    and int8 (untrained: latency does not depend on the weights).
P7  conversion of all five post-training modes of one model (fp32, fp16, dynamic, int8,
    int8_full) against the fp32 conversion alone in a fresh process with the converter as
    TensorFlow ships it (the baseline; goal for all modes <= 2x it; also printed: the fp32
    conversion with pqgrid's lean SavedModel step): (a) one process per mode, the converter
    as shipped (the convert rule before round 8); (b) one process, TensorFlow imported and the
    .h5 loaded once, a shipped converter per mode; (c) the convert rule now. The model:
    P7_MODEL (an .h5 from a run), else a MobileNet trained for 0 epochs at 32 px.
P8  the cost of op determinism (`tf.config.experimental.enable_op_determinism()`, which
    pqgrid turns on for bit-identical reruns): images/s of plain model.fit, MobileNet at
    32 px, batch 64, 5000 images, in fresh processes with and without it, alternated twice;
    ratio of the medians of each process' best epoch.
P9  threads of a fitting job (decides config.yaml's training.threads): images/s of one
    2-thread plain model.fit against two 1-thread ones running at once (their sum), 3000
    images, batch 64, MobileNet, MobileNetV3Small, MobileNetV3Large, EfficientNetB0 (P9_ARCHS,
    comma-separated, chooses); best epoch after the first of each process.
P10 steps per call of Keras' traced training function (decided that pqgrid keeps Keras'
    default): plain model.fit with 1 step per call against 32 (`compile(steps_per_execution=32)`,
    a loop inside the graph), MobileNet and MobileNetV3Small, 32 px, 3000 images, 1 thread,
    alternated fresh processes; ratio of the median images/s of the epochs after the first.
P11 the cost of code-aware staleness (goal <= 10 %): computing the code hash of
    every rule script (pqgrid/jobs/stage_code.py, what the rule files do at parse time) in a
    fresh process, against a dry run of the default grid with 10 seeds; ratio hash / dry run,
    3 rounds, medians.

  .venv/bin/python benchmarks/bench.py split RUN_DIR [LOG]

splits the wall time of a finished run (the folder Snakemake ran in) into model fitting and
the rest. Fitting is the epochs' core-seconds over the run's cores: each history CSV's epoch
seconds times its job's threads, over `--cores` (both from the log): the wall time the epochs
alone would take with every core busy. With 2-thread jobs on 2 cores it is the plain sum of
epoch seconds; with 1-thread jobs two at a time it halves it (each epoch counts once, at its
share of the machine). The rest: the rest of the training/pruning/QAT jobs, conversion,
evaluation, device jobs, report and data, and prints wall time / fitting time. Job times come
from Snakemake's per-job benchmark files where a rule writes one, else from the start and
finish stamps of the run's log (LOG, default: the log under .snakemake/log with most jobs).
It also prints the bound that packing alone cannot beat: the core-seconds the jobs booked
(seconds x threads) over the cores; the wall time's excess over it is idle cores and waits,
the bound's excess over fitting is work other than fitting.
Results of the last measurement are in benchmarks/README.md."""

from __future__ import annotations

import re
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
    from pqgrid.data import prepare as data_prepare

    data_prepare.prepare(
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
    from pqgrid.jobs.tfsetup import tensorflow

    tensorflow(2, 0)
    from pqgrid.core.runtime import scale_inputs
    from pqgrid.data import arrays as data_arrays
    from pqgrid.evaluate.accuracy import interpreter, predict_tflite
    from pqgrid.models.builders import build
    from pqgrid.quant.convert import converter_for

    d = _data(tmp, 50, 200)
    x, _ = data_arrays.load_npz(d / "test.npz")
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


# One training run in a fresh process: plain `model.fit` on pre-scaled arrays (the baseline)
# or the train rule's loop (fit.fit_resumable: uint8 arrays scaled per batch, per-epoch
# shuffle, checkpoint). Prints images/s of every epoch after the first (tracing). P2 compares
# the two variants, P8 plain fit with and without op determinism, P10 plain fit with 1 and N
# steps per call (`steps` reaches the plain variant only: the rule compiles with Keras' default).
_FIT_CHILD = """
import os, sys, time
sys.path.insert(0, {scripts!r})
from pqgrid.jobs.tfsetup import tensorflow
tf, tf_keras = tensorflow({threads!r}, 0, {deterministic!r})
from pqgrid.data import sources
from pqgrid.data import prepare as data_prepare
from pqgrid.data import arrays as data_arrays
from pqgrid.models import fit
from pqgrid.models.builders import build
from pqgrid.core.runtime import scale_inputs
x, y = data_arrays.load_npz({train!r})
model = build({{"builder": {arch!r}}}, 10, x.shape[1:], 0.9)
opt = tf_keras.optimizers.RMSprop(1e-3, momentum=0.9)
if {variant!r} == "plain":
    model.compile(optimizer=opt, loss="categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution={steps!r})
    times = []
    class T(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.t = time.perf_counter()
        def on_epoch_end(self, e, logs=None):
            times.append(time.perf_counter() - self.t)
    model.fit(scale_inputs(x, "tf"), tf_keras.utils.to_categorical(y, 10), batch_size=64, epochs={epochs},
              callbacks=[T()], verbose=0)
else:
    rows = fit.fit_resumable(model, opt, (x, y), None, epochs={epochs}, batch_size=64, seed=0, scaling="tf",
                             num_classes=10, resume_dir={resume!r}, run_id="bench", history_csv={history!r})
    times = [r["seconds"] for r in rows]
print("FIT-IMGS", " ".join(str(len(x) / t) for t in times[1:]))
"""


def _fit_code(tmp, train, variant, epochs, deterministic=True, arch="MobileNet", threads=2, steps=1):
    return _FIT_CHILD.format(
        steps=steps,
        scripts=str(ROOT / "workflow" / "scripts"),
        train=str(train),
        arch=arch,
        variant=variant,
        epochs=epochs,
        deterministic=deterministic,
        resume=str(tmp / "resume"),
        history=str(tmp / "history.csv"),
        threads=threads,
    )


def _rates_of(stdout):
    return [float(v) for v in stdout.split("FIT-IMGS")[1].split()]


def _fit_rates(tmp, train, variant, epochs, deterministic=True, arch="MobileNet", threads=2, steps=1):
    """Images/s of each epoch after the first, of one _FIT_CHILD run."""
    code = _fit_code(tmp, train, variant, epochs, deterministic, arch, threads, steps)
    return _rates_of(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def _default_threads():
    import yaml

    return yaml.safe_load((ROOT / "config.yaml").read_text())["training"]["threads"]


def p2(tmp: Path, arch="MobileNet", epochs=5, rounds=5):
    """Train rule vs plain model.fit, alternated in fresh processes (the order and the
    process' history do not favour either); median images/s over all epochs after the first."""
    import shutil
    import statistics

    d = _data(tmp, 500, 10)
    threads = _default_threads()
    rates = {"plain": [], "rule": []}
    for _ in range(rounds):
        for variant in ("plain", "rule"):
            shutil.rmtree(tmp / "resume", ignore_errors=True)
            (tmp / "history.csv").unlink(missing_ok=True)
            rates[variant] += _fit_rates(tmp, d / "train.npz", variant, epochs, arch=arch, threads=threads)
    base, ours = statistics.median(rates["plain"]), statistics.median(rates["rule"])
    print(
        f"P2 train {arch}, 5000 images, batch 64, {threads} thread(s), {rounds} alternated fresh runs x {epochs - 1} epochs: "
        f"plain model.fit {base:.0f} img/s ({min(rates['plain']):.0f}-{max(rates['plain']):.0f}), "
        f"train rule {ours:.0f} img/s ({min(rates['rule']):.0f}-{max(rates['rule']):.0f}), "
        f"ratio {ours / base:.2f}x (goal >= 1.0x)"
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
    sys.path.insert(0, str(wf / "workflow/scripts"))
    import yaml
    from pqgrid.core.grid import cells
    from pqgrid.core.schema import load_schema, with_defaults

    config = with_defaults(yaml.safe_load((wf / "config.yaml").read_text()), load_schema())
    n = len(cells(config))
    empty = _timed(["--version"], wf)
    full = _timed(["-n", "all", "--quiet"], wf)
    (wf / "seeds10.yaml").write_text("seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n")
    ten = _timed(["-n", "all", "--quiet", "--configfile", "seeds10.yaml"], wf)
    print(
        f"P3 dry run, default grid ({n} cells, as core.grid.cells counts them): {full:.2f}s (goal <= 5s); "
        f"10 seeds ({10 * n} cells): {ten:.2f}s (goal <= 20s); ratio 10x/1x {ten / full:.2f}; "
        f"`snakemake --version` alone {empty:.2f}s"
    )


def p11(tmp: Path, rounds=3):
    wf = _copy(tmp)
    (wf / "seeds10.yaml").write_text("seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n")
    code = (
        "import sys, time; sys.path.insert(0, 'workflow/scripts'); t = time.perf_counter(); "
        "from pqgrid.jobs.stage_code import stage_code; from pathlib import Path; "
        "[stage_code(p.name) for p in Path('workflow/scripts').glob('*.py')]; print(time.perf_counter() - t)"
    )
    dry, hashing = [], []
    for _ in range(rounds):
        dry.append(_timed(["-n", "all", "--quiet", "--configfile", "seeds10.yaml"], wf))
        out = subprocess.run([sys.executable, "-c", code], cwd=wf, capture_output=True, text=True, check=True)
        hashing.append(float(out.stdout))
    d, h = sorted(dry)[rounds // 2], sorted(hashing)[rounds // 2]
    print(f"P11 code hashes of all {len(list((wf / 'workflow/scripts').glob('*.py')))} rule scripts {h:.3f}s "
          f"vs dry run of the 10-seed default grid {d:.2f}s: {100 * h / d:.1f} % (goal <= 10 %)")  # fmt: skip


def p4(tmp: Path):
    wf = _copy(tmp)
    build = _timed(["--cores", "2", "all", "--configfile", "presets/smoke.yaml"], wf)
    noop = _timed(["--cores", "2", "all", "--configfile", "presets/smoke.yaml"], wf)
    print(f"P4 smoke grid: full build {build:.1f}s, no-op rerun {noop:.2f}s (goal <= 5s), ratio {build / noop:.0f}x")


def p5(tmp: Path, n_per_class=200, size=224, epochs=3):
    import numpy as np
    import tensorflow as tf
    from pqgrid.data import sources
    from pqgrid.models import fit

    files = sources.synthetic_photos(per_class=n_per_class, num_classes=10, seed=0)
    names = sorted(files)
    labels = np.array([int(n.split("/")[1][5:]) for n in names])
    encoded = sum(len(b) for b in files.values())
    t = time.perf_counter()
    train, _, _, _ = sources.load("synthetic-photos", n_per_class, 1, image_size=size, test_fraction=0.01)
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
    from pqgrid.jobs.tfsetup import tensorflow
    from pqgrid.models.builders import build
    from pqgrid.quant.convert import converter_for

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

    from pqgrid.device.measure import benchmark

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


_P7_CONVERT = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {scripts!r})
from pqgrid.jobs.tfsetup import tensorflow
tensorflow(1, 0)
from pqgrid.quant.convert import calibration_images, converter_for
from pqgrid.models.builders import load_keras
from pqgrid.core.runtime import scale_inputs
model = load_keras({h5!r})
rep = scale_inputs(calibration_images({train!r}, 200, 0), "tf")
for mode in {modes!r}:
    t = time.perf_counter()
    flat = converter_for(model, mode, rep, stock={stock!r}).convert()
    print("P7-MODE", mode, time.perf_counter() - t, flush=True)
    open(f"{out_dir}/{{mode}}.converter.tflite", "wb").write(flat)
print("P7-TOTAL", time.perf_counter() - t0)
"""

# One cell as the convert rule runs it now: a fresh process, the stage function.
_P7_CELL = """
import sys
sys.path.insert(0, {scripts!r})
from pqgrid.quant.convert import convert_cell
convert_cell(source={source!r}, train_npz={train!r}, out_tflite={out!r}, arch_cfg={{"builder": "MobileNet"}},
             mode={mode!r}, calibration_samples=200, seed=0, threads=1)
"""


def p7(tmp: Path):
    import os

    modes = ["fp32", "fp16", "dynamic", "int8", "int8_full"]
    d = _data(tmp, 50, 10)
    h5 = os.environ.get("P7_MODEL")
    if not h5:
        from pqgrid.jobs.tfsetup import tensorflow
        from pqgrid.models.builders import build

        tensorflow(2, 0)
        h5 = str(tmp / "mobilenet.h5")
        build({"builder": "MobileNet"}, 10, (32, 32, 3), 0.9).save(h5)

    scripts = str(ROOT / "workflow" / "scripts")

    def timed(code):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        return time.perf_counter() - t, out

    def run(ms, stock=True):  # stock: the converter as TensorFlow ships it (before pqgrid's changes)
        code = _P7_CONVERT.format(
            scripts=scripts, h5=h5, train=str(d / "train.npz"), modes=ms, out_dir=str(tmp), stock=stock
        )
        return timed(code)

    def cell(mode):
        source = h5 if mode == "fp32" else str(tmp / "fp32.tflite")
        code = _P7_CELL.format(
            scripts=scripts, source=source, train=str(d / "train.npz"), out=str(tmp / f"{mode}.tflite"), mode=mode
        )
        return timed(code)[0]

    fp32, _ = run(["fp32"])
    lean, _ = run(["fp32"], stock=False)
    separate = {m: run([m])[0] for m in modes}
    together, out = run(modes)
    cells = {m: cell(m) for m in modes}  # fp32 first: the others derive from it
    per_mode = {line.split()[1]: float(line.split()[2]) for line in out.splitlines() if line.startswith("P7-MODE")}
    print(
        f"P7 {Path(h5).name}: fp32 alone in a fresh process, the converter as shipped {fp32:.1f}s (baseline); "
        f"with pqgrid's lean SavedModel step {lean:.1f}s"
    )
    print(f"P7 (a) one process per mode: {sum(separate.values()):.1f}s = {sum(separate.values()) / fp32:.1f}x "
          + ", ".join(f"{m} {t:.1f}s" for m, t in separate.items()))  # fmt: skip
    print(f"P7 (b) one process, model loaded once: {together:.1f}s = {together / fp32:.1f}x; converter time "
          + ", ".join(f"{m} {t:.1f}s" for m, t in per_mode.items()))  # fmt: skip
    print(f"P7 (c) the convert rule now, one process per cell, modes derived from fp32: {sum(cells.values()):.1f}s = "
          f"{sum(cells.values()) / fp32:.1f}x ({sum(cells.values()) / lean:.1f}x the lean fp32 alone) "
          + ", ".join(f"{m} {t:.1f}s" for m, t in cells.items()))  # fmt: skip
    same = {m: (tmp / f"{m}.tflite").read_bytes() == (tmp / f"{m}.converter.tflite").read_bytes() for m in modes}
    print("P7 (c) files identical to the converter's: " + ", ".join(f"{m} {v}" for m, v in same.items()))


def p8(tmp: Path, rounds=2):
    import statistics

    d = _data(tmp, 500, 10)
    rates = {True: [], False: []}
    for _ in range(rounds):
        for deterministic in (True, False):
            # the best epoch after the first, as before
            rates[deterministic].append(max(_fit_rates(tmp, d / "train.npz", "plain", 3, deterministic)))
    det, free = statistics.median(rates[True]), statistics.median(rates[False])
    print(
        f"P8 MobileNet 32 px, batch 64: with op determinism {det:.0f} img/s, without {free:.0f} img/s; "
        f"determinism costs {100 * (1 - det / free):.1f} % (ratio {det / free:.2f}x; runs {rates})"
    )


def p9(tmp: Path, epochs=3):
    import os

    d = _data(tmp, 300, 10)
    archs = os.environ.get("P9_ARCHS", "MobileNet,MobileNetV3Small,MobileNetV3Large,EfficientNetB0").split(",")
    for arch in archs:
        one = max(_fit_rates(tmp, d / "train.npz", "plain", epochs, arch=arch, threads=2))
        code = _fit_code(tmp, d / "train.npz", "plain", epochs, arch=arch, threads=1)
        procs = [
            subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            for _ in range(2)
        ]
        pair = [max(_rates_of(p.communicate()[0])) for p in procs]
        print(
            f"P9 {arch} 32 px, batch 64, 3000 images: one 2-thread fit {one:.0f} img/s; two 1-thread fits at once "
            f"{pair[0]:.0f} + {pair[1]:.0f} = {sum(pair):.0f} img/s; ratio {sum(pair) / one:.2f}x"
        )


def p10(tmp: Path, steps=32, epochs=3, rounds=3, archs=("MobileNet", "MobileNetV3Small")):
    """Plain model.fit with Keras' default of one step per call of its traced function
    against `steps` steps per call, 1 thread, alternated fresh processes; median images/s
    over the epochs after the first. A gain here would make it worth a training setting."""
    import statistics

    d = _data(tmp, 300, 10)
    for arch in archs:
        rates = {1: [], steps: []}
        for _ in range(rounds):
            for spe in rates:
                rates[spe] += _fit_rates(tmp, d / "train.npz", "plain", epochs, arch=arch, threads=1, steps=spe)
        one, many = statistics.median(rates[1]), statistics.median(rates[steps])
        print(
            f"P10 plain fit {arch} 32 px, 3000 images, batch 64, 1 thread, {rounds} alternated fresh runs x "
            f"{epochs - 1} epochs: 1 step per call {one:.0f} img/s ({min(rates[1]):.0f}-{max(rates[1]):.0f}), "
            f"{steps} steps per call {many:.0f} img/s ({min(rates[steps]):.0f}-{max(rates[steps]):.0f}), "
            f"ratio {many / one:.2f}x"
        )


# Rule -> part of the split (the rest of a fitting rule's job is "fitting jobs, other").
SPLIT_PARTS = {
    "prepare_data": "data",
    "train_model": "fitting jobs",
    "prune_model": "fitting jobs",
    "qat_model": "fitting jobs",
    "convert_tflite": "conversion",
    "gzip_tflite": "conversion",
    "evaluate_tflite": "evaluation",
    "evaluate_keras": "evaluation",
    "layer_error": "evaluation",
    "benchmark_on_device": "device",
    "energy_on_device": "device",
    "accuracy_on_device": "device",
}


def parse_snakemake_log(path: Path) -> list:
    """Every finished job of a Snakemake log: rule, seconds (start to finish stamp), its
    benchmark file if the rule writes one."""
    import datetime as dt
    import re

    jobs, stamp, current = {}, None, None
    finished = []
    for line in path.read_text().splitlines():
        m = re.match(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", line)
        if m:
            stamp = dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            current = {"rule": m.group(1), "start": stamp, "benchmark": None}
            continue
        m = re.match(r"^\s+jobid: (\d+)$", line)
        if m and current is not None:
            jobs[m.group(1)] = current
            continue
        m = re.match(r"^\s+benchmark: (\S+)$", line)
        if m and current is not None:
            current["benchmark"] = m.group(1)
            continue
        m = re.match(r"^\s+(output|threads): (.+)$", line)
        if m and current is not None:
            current[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^Finished jobid: (\d+)", line)
        if m and m.group(1) in jobs:
            job = jobs.pop(m.group(1))
            finished.append({**job, "seconds": (stamp - job["start"]).total_seconds(), "end": stamp})
    return finished


def split_run(run_dir: Path, log: Path | None = None) -> dict:
    """Seconds per part of a finished run, its wall time and its fitting time."""
    import csv

    run_dir = Path(run_dir)
    if log is None:
        logs = sorted((run_dir / ".snakemake" / "log").glob("*.snakemake.log"))
        log = max(logs, key=lambda p: p.read_text().count("Finished jobid"))
    jobs = [j for j in parse_snakemake_log(Path(log)) if j["rule"] != "all"]
    # cluster executors print no cores: then each epoch counts whole
    m = re.search(r"^Provided cores: (\d+)$", Path(log).read_text(), re.M)
    cores = int(m.group(1)) if m else None
    threads_of = {}  # history CSV -> threads of the job that wrote it
    for j in jobs:
        for out in j.get("output", "").split(", "):
            if out.endswith(".history.csv"):
                threads_of[out] = int(j.get("threads", 1))
    parts = dict.fromkeys(["fitting", "fitting jobs", "conversion", "evaluation", "device", "report", "data"], 0.0)
    booked = 0.0  # core-seconds the jobs booked (seconds x threads): no schedule beats booked / cores
    for j in jobs:
        seconds = j["seconds"]
        tsv = run_dir / j["benchmark"] if j["benchmark"] else None
        if tsv and tsv.is_file():  # Snakemake's own measurement, 10 ms resolution
            with open(tsv) as fh:
                seconds = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
        parts[SPLIT_PARTS.get(j["rule"], "report")] += seconds
        booked += seconds * int(j.get("threads", 1))
    fitting = 0.0
    epochs = 0.0  # plain sum of epoch seconds
    for history in (run_dir / "results" / "models").glob("*/seed*/*.history.csv"):
        with open(history) as fh:
            seconds = sum(float(r["seconds"]) for r in csv.DictReader(fh))
        epochs += seconds
        fitting += seconds * threads_of.get(str(history.relative_to(run_dir)), 1) / cores if cores else seconds
    parts["fitting"] = fitting
    # load, build, save, BN recalibration: in job-seconds, like the other parts
    parts["fitting jobs, other"] = parts.pop("fitting jobs") - epochs
    wall = (max(j["end"] for j in jobs) - min(j["start"] for j in jobs)).total_seconds()
    return {
        "parts": parts,
        "wall": wall,
        "booked": booked,
        # the shortest wall time any scheduler keeping the jobs' thread bookings could reach
        "bound": booked / cores if cores else None,
        "fitting": fitting,
        "epochs": epochs,
        "cores": cores,
        "jobs": len(jobs),
        "log": str(log),
    }


def split(run_dir, log=None):
    r = split_run(Path(run_dir), Path(log) if log else None)
    print(f"split of {run_dir} ({r['jobs']} jobs, {r['log']}): job-seconds per part (jobs may overlap)")
    for part, seconds in r["parts"].items():
        print(f"  {part:20s} {seconds:8.0f} s  {seconds / r['fitting']:5.2f}x fitting")
    print(
        f"wall time {r['wall']:.0f} s, fitting {r['fitting']:.0f} s ({r['epochs']:.0f} epoch-seconds, "
        f"{r['cores']} cores): overhead ratio {r['wall'] / r['fitting']:.2f}x"
    )
    if r["bound"]:
        print(
            f"the jobs booked {r['booked']:.0f} core-seconds: on {r['cores']} cores no schedule ends before "
            f"{r['bound']:.0f} s ({r['bound'] / r['fitting']:.2f}x fitting); this run's wall time is "
            f"{100 * (r['wall'] / r['bound'] - 1):.0f} % above that (idle cores, waits)"
        )


if __name__ == "__main__":
    if set(sys.argv[1:]) & {"-h", "--help"} or any(a not in globals() for a in sys.argv[1:2] if a != "split"):
        print("usage: bench.py [p1 ... p11 | split RUN_DIR [LOG]]\n" + __doc__)
        sys.exit(0 if set(sys.argv[1:]) & {"-h", "--help"} else 2)
    if sys.argv[1:2] == ["split"]:
        split(*sys.argv[2:4])
        sys.exit(0)
    which = sys.argv[1:] or ["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11"]
    for name in which:
        with tempfile.TemporaryDirectory() as tmp:
            globals()[name](Path(tmp))
