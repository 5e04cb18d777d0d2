"""Accuracy of a .tflite through the LiteRT interpreter, batched, plus the metric math."""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pandas as pd

from pqgrid.core.catalog import has_keras_model, input_scaling, output_order
from pqgrid.core.io import atomic_path, check_file, damaged, read_json, sha256_file, versions, write_json
from pqgrid.core.modes import calibrated
from pqgrid.core.runtime import predict_scores
from pqgrid.core.sanity import collapse_message, collapsed
from pqgrid.data import arrays
from pqgrid.evaluate.summary import SPARSITY_KEYS
from pqgrid.jobs.tfsetup import tensorflow
from pqgrid.models import builders
from pqgrid.quant.tflite_weights import kernel_sparsity, layer_table, read_kernels

log = logging.getLogger("pqgrid")

# Parameter statistics of the Keras model copied into every cell's metrics.


# ---------------------------------------------------------------- metric math
def topk_accuracy(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the k highest scores (ties: lower index)."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == y[:, None], axis=1)))


def per_class_table(y_true, y_pred, classes) -> pd.DataFrame:
    rows = []
    for i, c in enumerate(classes):
        mask = y_true == i
        support = int(mask.sum())
        correct = int((y_pred[mask] == i).sum())
        rows.append(
            {
                "class": c,
                "support": support,
                "correct": correct,
                "accuracy": correct / support if support else float("nan"),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- per-image predictions


def write_predictions(path, scores: np.ndarray, y: np.ndarray, test_npz) -> None:
    """One model's answer for every test image, in the test set's order: predicted class
    (`label`), its score (`confidence`: the softmax probability for pqgrid's models), the
    true class, and the sha256 of the test set they belong to. The forgetting analysis
    (pie.py) compares these across seed populations; the hash stops it from comparing
    predictions on different test sets."""

    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            label=np.argmax(scores, axis=1).astype(np.int16),
            confidence=np.max(scores, axis=1).astype(np.float32),
            true=np.asarray(y, dtype=np.int16),
            test_sha256=np.array(sha256_file(test_npz)),
        )


def confusion_matrix(y_true, y_pred, n) -> np.ndarray:
    """rows: true class, columns: predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


# ---------------------------------------------------------------- LiteRT
def interpreter(path, threads=1):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # a device with only tflite_runtime or full TF
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
    check_file(path)
    try:
        return Interpreter(model_path=str(path), num_threads=int(threads))
    except (ValueError, RuntimeError) as e:
        raise damaged(path, e) from None


def predict_tflite(path, x_float: np.ndarray, batch_size=256, threads=1, scaling=None) -> np.ndarray:
    """Scores for every image through the LiteRT interpreter: harness.predict_scores,
    the same code a device runs for on-device accuracy, so host and board differ only by
    what their kernels compute."""

    return predict_scores(interpreter(path, threads), x_float, batch_size, scaling)


def io_dtypes(path) -> dict:
    it = interpreter(path)
    return {
        "input_dtype": np.dtype(it.get_input_details()[0]["dtype"]).name,
        "output_dtype": np.dtype(it.get_output_details()[0]["dtype"]).name,
    }


def float_ops(path) -> str:
    """Ops of a quantized model that still compute in float, counted: "HARD_SWISH x10". For
    int16x8 these are the ops without a 16x8 kernel (TFLITE_BUILTINS fallback). QUANTIZE and
    DEQUANTIZE at the float input/output are not counted."""
    from collections import Counter

    it = interpreter(path)
    dtypes = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    counts = Counter()
    for op in it._get_ops_details():  # the op list LiteRT's own QuantizationDebugger reads
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        outs = [dtypes[i] for i in op["outputs"] if i in dtypes]
        if outs and all(d == np.float32 for d in outs):
            counts[op["op_name"]] += 1
    return "; ".join(f"{name} x{n}" for name, n in sorted(counts.items()))


def evaluate_tflite(*, tflite, gz, test_npz, manifest, keras_json=None, out_json, out_per_class, out_layers, arch_cfg,
                    cell, settings, batch_size=256, threads=1, qat_json=None, out_predictions=None,
                    reference_json=None):  # fmt: skip
    """Metrics of one grid cell: accuracy overall and per class, confusion matrix, sizes,
    parameter statistics (from the .h5 and read back from the .tflite), and provenance.
    A qat cell also gets its QAT Keras model's top-1 and the .tflite's difference to it
    (tfmot #368/#1107: they can disagree), and the kernel zeros before QAT. A `.tflite`
    architecture has no Keras model (`keras_json` None): its quantized cells are compared
    with its fp32 file's metrics (`reference_json`), the Keras columns stay empty."""

    man = arrays.load_manifest(manifest)
    x, y = arrays.load_npz(test_npz)
    scores = in_data_order(_scores(tflite, x, arch_cfg, batch_size, threads), arch_cfg, man["classes"])
    pred = np.argmax(scores, axis=1)
    per_class = per_class_table(y, pred, man["classes"])
    top1 = topk_accuracy(scores, y, 1)
    keras_stats, parent, parent_top1 = _parent_of(keras_json, reference_json)
    if parent_top1 is not None and collapsed(top1, parent_top1, len(man["classes"]), len(y)):
        log.warning(collapse_message(f"{tflite}", top1, parent, parent_top1, len(man["classes"])))
    kernels = read_kernels(tflite)
    m_by_n = (settings.get("pruning") or {}).get("m_by_n")
    layers = pd.DataFrame(layer_table(kernels, m_by_n))
    out = {
        "cell": cell,
        "top1": top1,
        "top3": topk_accuracy(scores, y, 3),
        "test_images": int(len(y)),
        "input_px": int(x.shape[1]),
        "file_bytes": os.path.getsize(tflite),
        "gzip_bytes": os.path.getsize(check_file(gz)),
        **{k: keras_stats[k] for k in SPARSITY_KEYS},
        "keras_top1_test": keras_stats["top1_test"],
        **kernel_sparsity(kernels),
        **_pattern_check(layers, m_by_n),
        **io_dtypes(tflite),
        "float_ops": float_ops(tflite) if calibrated(cell["quant"]) else "",
        **_qat_metrics(qat_json, top1),
        "confusion_matrix": confusion_matrix(y, pred, len(man["classes"])).tolist(),
        "classes": man["classes"],
        **_provenance(tflite, manifest, man, settings),
    }
    if out_predictions:
        write_predictions(out_predictions, scores, y, test_npz)
    for path, table in ((out_per_class, per_class), (out_layers, layers)):
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
    write_json(out_json, out)
    return out


def _parent_of(keras_json, reference_json) -> tuple:
    """(the Keras model's statistics, what the cell is compared with, its top-1): the cell's
    Keras model, or for a `.tflite` architecture its fp32 file's metrics (no Keras columns)."""
    if keras_json:
        keras_stats = read_json(keras_json)
        return keras_stats, "its Keras model", keras_stats["top1_test"]
    keras_stats = dict.fromkeys((*SPARSITY_KEYS, "top1_test"))
    return keras_stats, "its fp32 .tflite", read_json(reference_json)["top1"] if reference_json else None


def _provenance(tflite, manifest, man, settings) -> dict:
    """What a cell's numbers were computed from: the files' digests, its settings, the versions."""
    return {
        "tflite_sha256": sha256_file(tflite),
        "manifest_sha256": sha256_file(manifest),
        "dataset_source_sha256": man["source_sha256"],
        "settings": settings,
        "versions": versions(),
    }


def _qat_metrics(qat_json, top1) -> dict:
    if not qat_json:
        return {}
    q = read_json(qat_json)
    return {
        "keras_qat_top1": q["keras_qat_top1"],
        "qat_tflite_minus_keras": top1 - q["keras_qat_top1"],
        "kernel_sparsity_before_qat": q["kernel_sparsity_before_qat"],
    }


def in_data_order(scores: np.ndarray, arch_cfg: dict, data_classes) -> np.ndarray:
    """A `.tflite` architecture's scores with column j for the data set's class j (`classes:`
    names its outputs in its own order). A Keras model file was reordered when imported."""
    order = None if has_keras_model(arch_cfg) else output_order(arch_cfg, data_classes)
    return scores if order is None else scores[:, order]


def _scores(tflite, x, arch_cfg, batch_size, threads):
    """Class scores of the test images through the LiteRT interpreter, timed in the log."""

    t0 = time.perf_counter()
    try:
        scores = predict_tflite(tflite, x, batch_size, threads, scaling=input_scaling(arch_cfg))
    except RuntimeError as e:  # e.g. XNNPACK cannot prepare a sparse-encoded int8 kernel
        raise RuntimeError(
            f"{tflite}: the LiteRT interpreter cannot run this model ({str(e).splitlines()[0][:200]}); "
            "the cell is left out - seen with sparse-encoded int8 kernels (a mode without _sparse runs) and "
            "with a model whose output never varied in calibration (its Keras model at chance: see its top-1)"
        ) from None
    dt = time.perf_counter() - t0
    log.info("evaluated %d images in %.2fs (%.0f img/s, %d threads)", len(x), dt, len(x) / dt, threads)
    return scores


def _pattern_check(layers, m_by_n) -> dict:
    """For an M:N-pruned cell: how many eligible layers hold the pattern in the .tflite."""
    if not m_by_n:
        return {}
    checked = layers[layers["m_by_n_ok"] != ""]
    return {
        "m_by_n": f"{m_by_n[0]}:{m_by_n[1]}",
        "m_by_n_layers_eligible": int(len(checked)),
        "m_by_n_layers_ok": int(checked["m_by_n_ok"].astype(bool).sum()),
    }


def evaluate_keras(
    *, model_h5, train_npz, test_npz, manifest, out_json, arch_cfg, cell, threads=None, out_predictions=None
):
    """Top-1/top-3 on train and test of a Keras model (thesis Table 4.1) + parameter stats,
    and its per-image test predictions (the uncompressed population of the forgetting
    analysis)."""

    tensorflow(threads, 0)
    model = builders.load_keras(model_h5, arch_cfg.get("custom_objects"))
    scaling = input_scaling(arch_cfg)
    out = {"cell": cell, "model_sha256": sha256_file(model_h5), **builders.parameter_stats(model)}
    for split, path in (("train", train_npz), ("test", test_npz)):
        x, y = arrays.load_npz(path)
        probs = builders.predict_keras(model, x, scaling)
        out[f"top1_{split}"] = topk_accuracy(probs, y, 1)
        out[f"top3_{split}"] = topk_accuracy(probs, y, 3)
        if split == "test" and out_predictions:
            write_predictions(out_predictions, probs, y, test_npz)
    out["manifest_sha256"] = sha256_file(manifest)
    out["versions"] = versions()
    write_json(out_json, out)
    return out
