"""Where does int8 post-training quantization lose a model's accuracy? A controlled experiment
on one finished run's trained model (not a speed benchmark: it lives here because it reads a
run and writes one table, like bench.py).

Each row changes one thing against pqgrid's own int8 cell (the fp32 .tflite calibrated on 200
training images, per-channel weights, TensorFlow's calibrator and MLIR quantizer):
  - the stock converter from the Keras model (pqgrid derives int8 from the fp32 file),
  - more calibration images (1000, 5000) and calibration on test images instead of training ones,
  - per-tensor instead of per-channel weight scales,
  - Google's ai-edge-quantizer (static int8, min/max) on the same fp32 file, with its own range
    statistic (a moving average of each image's min/max) and with TensorFlow's (the absolute
    min/max over all images), and the converter's
    older quantizer (`experimental_new_quantizer = False`: the calibrator's own, which int16x8 uses),
  - the squeeze-excite blocks, or the first block, kept in float (TensorFlow's QuantizationDebugger
    `denylisted_nodes`), int16 activations (int16x8) for comparison.
Every variant is scored through the LiteRT interpreter on the run's test split, with the
images whose answer differs from the fp32 model's.

    .venv/bin/python benchmarks/int8_loss.py --run runs/laptop --arch efficientnet_b0 \
        --builder EfficientNetB0 --seeds 0 --out docs/results/int8_loss.csv
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from pqgrid.core.catalog import input_scaling  # noqa: E402
from pqgrid.core.runtime import scale_inputs
from pqgrid.data import arrays
from pqgrid.evaluate.accuracy import interpreter, predict_tflite  # noqa: E402
from pqgrid.jobs.tfsetup import tensorflow  # noqa: E402
from pqgrid.models.builders import load_keras  # noqa: E402
from pqgrid.quant import convert


def stock(model, images, per_tensor=False, denylist=None, old_quantizer=False):
    """The converter's own int8 from the Keras model (optionally per-tensor, or with nodes kept
    float through the QuantizationDebugger, whose selective quantization is the documented way)."""
    import tensorflow as tf

    conv = convert.converter_for(model, "int8", images, stock=True)
    if per_tensor:
        conv._experimental_disable_per_channel = True  # the converter's switch (lite.py)
    if old_quantizer:
        conv.experimental_new_quantizer = False  # the calibrator's C++ quantizer, as int16x8 uses
    if not denylist:
        return conv.convert()
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylist)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=convert._representative(images[:50]), debug_options=options
    )
    return debugger.get_nondebug_quantized_model()


def edge_quantizer(fp32_tflite, images, absolute_range=False):
    """ai-edge-quantizer's static int8 (min/max, its default algorithm) on the fp32 file. Its
    calibrator keeps a moving average (factor 0.95) of each image's min/max; TensorFlow's
    keeps the absolute min/max over all images. `absolute_range`: the latter in the former,
    so the two differ by the range statistic alone."""
    from ai_edge_quantizer import calibrator, quantizer, recipe

    signatures = interpreter(fp32_tflite).get_signature_list()
    key = next(iter(signatures))
    name = signatures[key]["inputs"][0]
    job = quantizer.Quantizer(str(fp32_tflite))
    job.load_quantization_recipe(recipe.static_wi8_ai8())
    registered = calibrator.algorithm_manager.get_update_qsv_func
    if absolute_range:  # the calibrator asks the algorithm manager for its update function

        def union(qsv, new):
            return (
                {"min": np.minimum(qsv["min"], new["min"]), "max": np.maximum(qsv["max"], new["max"])} if qsv else new
            )

        calibrator.algorithm_manager.get_update_qsv_func = lambda *a, **k: union
    try:
        calibration = job.calibrate({key: [{name: img[None].astype(np.float32)} for img in images]}, num_threads=2)
    finally:
        calibrator.algorithm_manager.get_update_qsv_func = registered
    return bytes(job.quantize(calibration, enable_progress_report=False).quantized_model)


def node_names(fp32_tflite, word: str) -> list:
    """Tensor names of the float model (as the QuantizationDebugger reports them) that contain
    `word`, read from the cell's fp32 .tflite (the converter's file, byte for byte)."""
    return sorted({d["name"] for d in interpreter(fp32_tflite).get_tensor_details() if word in d["name"]})


def activation_scales(path) -> dict:
    """Median and largest scale of the int8 activation tensors (one scale each; weights are
    per-channel): how coarse the steps the calibration chose are."""
    scales = [
        float(d["quantization_parameters"]["scales"][0])
        for d in interpreter(path).get_tensor_details()
        if d["dtype"] == np.int8 and len(d["quantization_parameters"]["scales"]) == 1
    ]
    if not scales:
        return {}
    return {"median_activation_scale": float(np.median(scales)), "largest_activation_scale": max(scales)}


def study(run: Path, arch: str, builder: str, seed: int, workdir: Path) -> list[dict]:
    res = run / "results"
    scaling = input_scaling({"builder": builder})
    x_test, y_test = arrays.load_npz(res / "data" / "test.npz")
    x_test_scaled = scale_inputs(x_test, scaling)
    fp32 = res / "tflite" / arch / f"seed{seed}" / "s0_fp32.tflite"
    model = load_keras(res / "models" / arch / f"seed{seed}" / "trained.h5")
    train = res / "data" / "train.npz"

    def calib(n, source=train):
        return scale_inputs(convert.calibration_images(source, n, seed), scaling)

    fp32_labels = predict_tflite(fp32, x_test, scaling=scaling).argmax(1)
    se = node_names(fp32, "_se_")
    first = node_names(fp32, "block1a_")
    variants = {
        "fp32 (the cell's .tflite)": lambda: fp32.read_bytes(),
        "int8: pqgrid (fp32 file, 200 train images, per-channel)": lambda: convert.quantize_like_converter(
            fp32, "int8", calib(200), seed=seed
        ),
        "int8: stock converter from Keras, 200": lambda: stock(model, calib(200)),
        "int8: 1000 calibration images": lambda: convert.quantize_like_converter(fp32, "int8", calib(1000), seed=seed),
        "int8: 5000 calibration images": lambda: convert.quantize_like_converter(fp32, "int8", calib(5000), seed=seed),
        "int8: 1000 test images for calibration": lambda: convert.quantize_like_converter(
            fp32, "int8", x_test_scaled[np.random.default_rng(seed).permutation(len(x_test))[:1000]], seed=seed
        ),
        "int8: per-tensor weight scales (stock, 200)": lambda: stock(model, calib(200), per_tensor=True),
        "int8: ai-edge-quantizer static, 200": lambda: edge_quantizer(fp32, calib(200)),
        "int8: ai-edge-quantizer with absolute min/max ranges (TensorFlow's statistic), 200": lambda: edge_quantizer(
            fp32, calib(200), absolute_range=True
        ),
        "int8: the converter's older quantizer (experimental_new_quantizer=False, stock, 200)": lambda: stock(
            model, calib(200), old_quantizer=True
        ),
        f"int8: squeeze-excite in float ({len(se)} tensors, stock, 200)": lambda: stock(model, calib(200), denylist=se),
        f"int8: block1a in float ({len(first)} tensors, stock, 200)": lambda: stock(model, calib(200), denylist=first),
        "int16x8 (pqgrid, 200)": lambda: convert.quantize_like_converter(fp32, "int16x8", calib(200), seed=seed),
    }
    rows = []
    for name, make in variants.items():
        t = time.perf_counter()
        try:
            flat = make()
        except Exception as e:  # noqa: BLE001 - a variant the tools cannot make is a result too
            rows.append(dict(arch=arch, seed=seed, variant=name, error=f"{type(e).__name__}: {e}"[:200]))
            print(f"{name}: failed ({e})", flush=True)
            continue
        path = workdir / f"{arch}_seed{seed}_{len(rows)}.tflite"
        path.write_bytes(flat)
        labels = predict_tflite(path, x_test, scaling=scaling).argmax(1)
        rows.append(
            dict(
                arch=arch,
                seed=seed,
                variant=name,
                top1=round(100 * float((labels == y_test).mean()), 2),
                answers_differing_from_fp32=int((labels != fp32_labels).sum()),
                test_images=len(y_test),
                file_bytes=len(flat),
                seconds=round(time.perf_counter() - t, 1),
                **activation_scales(path),
            )
        )
        print(rows[-1], flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a finished run folder (runs/laptop)")
    p.add_argument("--arch", required=True, help="the architecture's config name")
    p.add_argument("--builder", required=True, help="its builder (for the input scaling)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", type=Path, required=True, help="CSV to write")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    tensorflow(a.threads, a.seeds[0])
    with tempfile.TemporaryDirectory() as work:
        rows = [r for s in a.seeds for r in study(a.run, a.arch, a.builder, s, Path(work))]
    pd.DataFrame(rows).to_csv(a.out, index=False)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
