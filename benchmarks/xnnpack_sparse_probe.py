"""Does the installed LiteRT run a model pruned for XNNPACK's sparse inference faster?
(Issue 34's first question, measured before building the `xnnpack_sparse` pruning method.)

XNNPACK's sparse path (tensorflow/lite/delegates/xnnpack/README.md, "Sparse Inference";
Elsen et al. 2020, "Fast Sparse ConvNets") needs: weights stored sparse (DENSIFY ops, the
converter's `Optimize.EXPERIMENTAL_SPARSITY`), a subgraph that starts with a 3x3 stride-2
convolution padded 1 on each side, ends in a spatial mean, holds only 1x1 convolutions,
3x3/5x5 depthwise convolutions padded symmetrically and elementwise ops, and at least 2/3
zeros in its 1x1 kernels. keras.applications' MobileNet pads strided layers (0, 1) - not
symmetric - so tfmot's `PruneForLatencyOnXNNPack` refuses it; this probe builds a
MobileNet-v1 with symmetric padding (ZeroPadding2D(1) + valid), which it accepts.

It prunes every 1x1 convolution to SPARSITY by magnitude (tfmot's policy picks the layers;
the zeros are set directly: latency depends on where the zeros are, not on how training
found them), converts the dense and the pruned model with and without
EXPERIMENTAL_SPARSITY, and times each with LiteRT's Python interpreter (XNNPACK is its
default CPU delegate) in the same process, interleaved, 1 thread. Prints a JSON line per
file: DENSIFY ops in the file, p50 latency, ratio to the dense model.

    .venv/bin/python benchmarks/xnnpack_sparse_probe.py [--size 224] [--alpha 1.0] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

import numpy as np  # noqa: E402


def mobilenet_symmetric(size: int, alpha: float, classes: int = 10):
    """MobileNet v1 with every strided layer padded 1 on each side (ZeroPadding2D + valid)
    and a keepdims mean before a 1x1 classifier: the layout XNNPACK's sparse path takes."""
    import tf_keras

    L = tf_keras.layers

    def bn_relu(x):
        return L.ReLU(6.0)(L.BatchNormalization()(x))

    x_in = L.Input((size, size, 3))
    x = L.Conv2D(int(32 * alpha), 3, strides=2, padding="valid", use_bias=False)(L.ZeroPadding2D(1)(x_in))
    x = bn_relu(x)
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1)]
    for filters, stride in plan:
        if stride == 2:
            x = L.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False)(L.ZeroPadding2D(1)(x))
        else:
            x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = bn_relu(x)
        x = bn_relu(L.Conv2D(int(filters * alpha), 1, use_bias=False)(x))
    x = L.GlobalAveragePooling2D(keepdims=True)(x)
    x = L.Conv2D(classes, 1)(x)
    return tf_keras.Model(x_in, L.Softmax()(L.Reshape((classes,))(x)))


def prune_1x1(model, sparsity: float):
    """Zero the smallest |w| of every 1x1 convolution tfmot's XNNPACK policy would prune."""
    import tensorflow_model_optimization as tfmot

    policy = tfmot.sparsity.keras.PruneForLatencyOnXNNPack()
    policy.ensure_model_supports_pruning(model)  # raises where XNNPACK's sparse path cannot run
    pruned = 0
    for layer in model.layers:
        if policy.allow_pruning(layer):
            w = layer.get_weights()
            k = w[0]
            cut = np.quantile(np.abs(k), sparsity)
            w[0] = np.where(np.abs(k) <= cut, 0.0, k).astype(k.dtype)
            layer.set_weights(w)
            pruned += 1
    return pruned


def convert(model, sparse: bool) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if sparse:
        conv.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return conv.convert()


def op_names(content: bytes) -> list:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content)
    return [d["op_name"] for d in it._get_ops_details()]


def p50_us(paths, runs: int, threads: int) -> dict:
    """Every file timed in turns (interleaved, so drift hits each alike); p50 per file."""
    from ai_edge_litert.interpreter import Interpreter

    its = {}
    for name, path in paths.items():
        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], np.random.default_rng(0).random(inp["shape"], dtype=np.float32))
        for _ in range(3):
            it.invoke()
        its[name] = it
    times = {name: [] for name in its}
    for _ in range(runs):
        for name, it in its.items():
            t0 = time.perf_counter()
            it.invoke()
            times[name].append((time.perf_counter() - t0) * 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import ai_edge_litert
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = mobilenet_symmetric(args.size, args.alpha)
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        files["dense"] = Path(tmp, "dense.tflite")
        files["dense"].write_bytes(convert(model, sparse=False))
        layers = prune_1x1(model, args.sparsity)
        for name, sparse in (("pruned", False), ("pruned_sparse_encoded", True)):
            files[name] = Path(tmp, f"{name}.tflite")
            files[name].write_bytes(convert(model, sparse=sparse))
        latency = p50_us(files, args.runs, args.threads)
        for name, path in files.items():
            ops = op_names(path.read_bytes())
            print(
                json.dumps(
                    {
                        "file": name,
                        "pruned_1x1_layers": layers if name != "dense" else 0,
                        "sparsity_1x1": args.sparsity if name != "dense" else 0.0,
                        "densify_ops": ops.count("DENSIFY"),
                        "bytes": path.stat().st_size,
                        "p50_us": round(latency[name], 1),
                        "p50_vs_dense": round(latency[name] / latency["dense"], 3),
                        "size": args.size,
                        "alpha": args.alpha,
                        "threads": args.threads,
                        "litert": getattr(ai_edge_litert, "__version__", "?"),
                        "machine": os.uname().machine,
                    }
                )
            )


if __name__ == "__main__":
    main()
