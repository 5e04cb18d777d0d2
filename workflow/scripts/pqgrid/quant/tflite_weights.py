"""Read the weights a .tflite really stores, straight from its flatbuffer.

Sparsity measured on the .h5 says what pruning did; sparsity read back from the deployed file
says what the phone gets: it catches a conversion that densifies, a quantization that turns
zeros into non-zeros (a non-zero zero point), and shows which tensors use sparse encoding.
The LiteRT interpreter does not expose constant buffers of every mode (fp16 weights sit
behind DEQUANTIZE ops, sparse tensors behind DENSIFY), so this walks the schema itself
(`ai_edge_litert.schema_py_generated`, the generated flatbuffer reader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

KERNEL_OPS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "dense"}
_DTYPES = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT16": np.int16,
    "INT64": np.int64,
}


def _names(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_")}


def read_kernels(path) -> list[dict]:
    """One row per kernel (weights input of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED):
    layer name, kind, shape, element count, zeros, whether it is sparse-encoded, and its
    multiply-accumulates per image (all, and with a non-zero weight)."""
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    op_names = _names(schema.BuiltinOperator)
    type_names = _names(schema.TensorType)
    sg = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    producer = {}
    for op in sg.operators:
        for o in op.outputs:
            producer[o] = op
    rows = []
    for op in sg.operators:
        name = op_names.get(codes[op.opcodeIndex])
        if name not in KERNEL_OPS:
            continue
        t_idx = op.inputs[1]
        # fp16 weights and sparse-encoded ones reach the kernel through DEQUANTIZE / DENSIFY
        while t_idx in producer and op_names.get(codes[producer[t_idx].opcodeIndex]) in ("DEQUANTIZE", "DENSIFY"):
            t_idx = producer[t_idx].inputs[0]
        t = sg.tensors[t_idx]
        data = model.buffers[t.buffer].data
        if data is None:
            continue  # not a constant (should not happen for kernels)
        dtype = _DTYPES[type_names[t.type]]
        values = np.frombuffer(bytes(bytearray(data)), dtype=dtype)
        shape = [int(s) for s in t.shape]
        size = int(np.prod(shape))
        out_shape = [int(v) for v in sg.tensors[op.outputs[0]].shape]
        # every output value is one dot product: positions x kernel elements per output channel
        positions = int(np.prod(out_shape)) // max(1, out_shape[-1]) if out_shape else 1
        zeros = _zeros(t, values, shape, size)
        rows.append(
            {
                "layer": t.name.decode() if isinstance(t.name, bytes) else t.name,
                "kind": KERNEL_OPS[name],
                "shape": "x".join(map(str, shape)),
                "size": size,
                "zeros": zeros,
                "sparsity": zeros / size if size else 0.0,
                "dtype": type_names[t.type].lower(),
                "sparse_encoded": t.sparsity is not None,
                "macs": positions * size,
                "macs_nonzero": positions * (size - zeros),
                "_values": values.reshape(shape) if t.sparsity is None else None,
            }
        )
    return rows


def _zeros(t, values, shape, size) -> int:
    """How many of a kernel's weights are real zeros. Asymmetric quantization (a non-zero
    zero point) stores a real 0 as the zero point, per channel; sparse-encoded tensors
    store only (blocks of) non-zeros: the rest are zeros."""
    q = t.quantization
    zp = np.asarray(q.zeroPoint) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else None
    if zp is not None and np.any(zp != 0):
        axis = q.quantizedDimension
        real = values.reshape(shape).astype(np.int32) - np.expand_dims(zp, [d for d in range(len(shape)) if d != axis])
        return int(np.sum(real == 0))
    return size - int(np.count_nonzero(values))


def kernel_sparsity(rows) -> dict:
    """Sparsity over all kernels, over Conv2D/Dense kernels and over depthwise kernels."""

    def share(sel):
        size = sum(r["size"] for r in sel)
        return sum(r["zeros"] for r in sel) / size if size else 0.0

    return {
        "tflite_kernel_sparsity": share(rows),
        "tflite_conv_dense_sparsity": share([r for r in rows if r["kind"] != "depthwise"]),
        "tflite_depthwise_sparsity": share([r for r in rows if r["kind"] == "depthwise"]),
        "tflite_kernel_params": sum(r["size"] for r in rows),
        "tflite_sparse_encoded_tensors": sum(r["sparse_encoded"] for r in rows),
        # The cost model: multiply-accumulates of the convolutions and dense layers as stored,
        # and those with a non-zero weight (what a runtime skipping zeros would compute).
        "tflite_macs": sum(r["macs"] for r in rows),
        "tflite_macs_nonzero": sum(r["macs_nonzero"] for r in rows),
    }


def satisfies_m_by_n(values: np.ndarray, m: int, n: int):
    """True if every run of n consecutive input-channel weights (the last axis in TFLite
    layout: conv [C_OUT, H, W, C_IN], dense [C_OUT, C_IN]) holds at least m zeros; None when
    the layer cannot hold the pattern (C_IN not a multiple of n) or is stored sparse."""
    if values is None or values.shape[-1] % n:
        return None
    groups = values.reshape(-1, n)
    return bool(np.all(np.sum(groups == 0, axis=1) >= m))


def layer_table(rows, m_by_n=None):
    """Per-layer rows for CSV; with a pattern, each eligible Conv2D/Dense kernel's check."""
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if not k.startswith("_")}
        if m_by_n:
            ok = satisfies_m_by_n(r["_values"], *m_by_n) if r["kind"] != "depthwise" else None
            row["m_by_n_ok"] = "" if ok is None else ok
        out.append(row)
    return out
