"""Repairs of int8 for an architecture the grid has no cell within the budget for: candidates
made from a cell's fp32 .tflite with Google's LiteRT quantizer (ai-edge-quantizer), each a file
of its own, converted, evaluated and measured like any cell.

- `int8ma`: the quantizer's static int8 recipe (weights int8 per channel, activations int8 per
  tensor) calibrated with its moving-average ranges, where the converter's `int8` takes the
  min/max over every calibration image: a rare extreme image no longer sets a whole range.
- `int8f{k}`: the same, with the k tensors of largest `channel_noise` (the model's
  layer_error.csv, pqgrid/quant/layer_error.py) kept float: the op that writes each and every op
  that reads it. A reader left int8 would quantize the float tensor again with the same range,
  so keeping only the writer float repairs nothing.
- `int8x{k}`: the same ops given int16 activations and int8 weights instead (the quantizer's
  per-op a16w8, the grid's int16x8 for those ops alone): 256 times finer steps over the same
  range. Planned only on a device where the grid's int16x8 cell measured faster than its fp32
  one (search.int16_faster): LiteRT's CPU kernels for int16 are the reference ones, so where
  int16x8 is slower than float, keeping the ops float is both faster and exact.

Candidates are records here, not quantization modes of the grid (core/modes.py): a mode is a
column of every architecture's grid, a repair is made only where no cell qualifies. Each
file's JSON names the ops kept out of int8, how (float or int16), their count and their share
of the model's MACs."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from pqgrid.core import modes
from pqgrid.core.catalog import input_scaling
from pqgrid.core.io import atomic_path, check_file, damaged, read_csv, write_json
from pqgrid.core.runtime import scale_inputs
from pqgrid.quant.convert import calibration_images, gzip_tflite
from pqgrid.quant.layer_error import FILLED

log = logging.getLogger("pqgrid")

TOKEN = modes.REPAIR_TOKEN
# the weight tensor's output-channel axis per op with a kernel (MACs per output = weights / channels)
KERNEL_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0}


KEPT_AS = {"f": "float", "x": "int16"}  # token letter -> what the worst tensors' ops are kept as


@dataclass(frozen=True)
class Repair:
    token: str  # the candidate's part of its file names: results/repair/.../s{sparsity}_{token}
    worst_tensors: int  # the k tensors of largest channel_noise kept out of int8 (0: none)
    kept_as: str = "float"  # those ops' precision: "float", or "int16" (activations; weights int8)

    @property
    def describes(self) -> str:
        if not self.worst_tensors:
            return "int8, moving-average ranges (ai-edge-quantizer)"
        if self.kept_as == "int16":
            return f"int8 with the {self.worst_tensors} worst tensor(s) at int16 activations"
        return f"int8 with the {self.worst_tensors} worst tensor(s) kept float"


def plan(max_candidates: int, int16: bool = False) -> list[Repair]:
    """The candidates in the order they are tried, `max_candidates` in all: moving-average int8,
    then k = 1, 2, 4, ... worst tensors kept float - each followed by the same k at int16
    activations where `int16` (the device runs int16 faster than float)."""
    out = [Repair("int8ma", 0)]
    k = 1
    while len(out) < max_candidates:
        out.append(Repair(f"int8f{k}", k))
        if int16:
            out.append(Repair(f"int8x{k}", k, "int16"))
        k *= 2
    return out[:max_candidates]


def parse(token: str) -> Repair:
    """'int8f4' -> Repair('int8f4', 4); ValueError naming the forms for anything else."""
    m = TOKEN.fullmatch(token)
    if not m:
        raise ValueError(f"{token!r} is no repair candidate (int8ma, int8f<k> or int8x<k> with k >= 1)")
    letter, k = m.group(1), m.group(2)
    return Repair(token, int(k or 0), KEPT_AS[letter or "f"])


def worst_tensors(layer_error_csv, k: int) -> list[str]:
    """The k tensors of largest channel_noise (ties: larger rmse/scale first)."""
    table = read_csv(layer_error_csv, FILLED)
    if "channel_noise" not in table:
        raise damaged(layer_error_csv, "no channel_noise column: written by an older pqgrid")
    table = table.dropna(subset=["channel_noise"])
    table = table.sort_values(["channel_noise", "rmse_over_scale"], ascending=False, kind="stable")
    return list(dict.fromkeys(table.tensor))[:k]


def _op_names() -> dict:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def graph(fp32_tflite):
    """(ops, tensors) of the model's first subgraph: each op as (name, input names, output
    names, MACs); `tensors` maps a name to its shape."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    check_file(fp32_tflite)
    try:
        model = fb.read_model(str(fp32_tflite))
    except Exception as e:  # noqa: BLE001 - flatbuffers raises anything on damaged bytes
        raise damaged(fp32_tflite, e) from None
    sub = model.subgraphs[0]
    op_names = _op_names()
    names = [fb.get_tensor_name(t) for t in sub.tensors]
    ops = []
    for op in sub.operators:
        code = model.operatorCodes[op.opcodeIndex]
        # the schema's name of every builtin (the quantizer's own table lists only the ops it
        # quantizes); old files keep codes < 127 in deprecatedBuiltinCode
        name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        ins = [names[i] for i in op.inputs if i >= 0]
        outs = [names[i] for i in op.outputs if i >= 0]
        macs = 0
        if name in KERNEL_OPS and len(op.inputs) > 1:
            w = np.asarray(sub.tensors[op.inputs[1]].shape)
            out = np.asarray(sub.tensors[op.outputs[0]].shape)
            macs = int(np.prod(out) * np.prod(w) // max(1, w[KERNEL_OPS[name]]))
        ops.append((name, ins, outs, macs))
    return ops, {n: list(t.shape) for n, t in zip(names, sub.tensors, strict=True)}


def kept_ops(ops, tensors: list[str]) -> list[int]:
    """Indices of the ops to keep out of int8 for `tensors`: each one's writer and its readers."""
    wanted = set(tensors)
    return [i for i, (_, ins, outs, _) in enumerate(ops) if wanted & (set(ins) | set(outs))]


def recipe_for(ops, kept: list[int], kept_as: str = "float") -> list:
    """The quantizer's static int8 recipe with the `kept` ops (by their output tensors, the
    quantizer's op scope: names joined by ';' and a trailing ';') left unquantized, or given
    int16 activations and int8 weights (`kept_as` "int16"). A later entry of the recipe wins
    over the '.*' one for the ops it matches."""
    from ai_edge_quantizer import recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe.static_wi8_ai8())
    for i in kept:
        scope = "^" + re.escape(";".join(ops[i][2]) + ";") + "$"
        if kept_as == "int16":
            manager.add_static_config(
                regex=scope,
                operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
                activation_num_bits=16,
                weight_num_bits=8,
                algorithm_key=AlgorithmName.MIN_MAX_UNIFORM_QUANT,
            )
            continue
        manager.add_quantization_config(
            regex=scope,
            operation_name=recipe.TFLOperationName.ALL_SUPPORTED,
            algorithm_key=AlgorithmName.NO_QUANTIZE,
        )
    return manager.get_quantization_recipe()


def quantize(fp32_tflite, recipe: list, images) -> bytes:
    """The fp32 .tflite quantized by `recipe`, calibrated on `images` one by one in order on
    one thread (the moving average depends on the order: two runs give the same bytes)."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer

    try:
        signatures = Interpreter(model_path=str(fp32_tflite)).get_signature_list()
        key, sig = next(iter(signatures.items()))
        job = quantizer.Quantizer(str(fp32_tflite))
        job.load_quantization_recipe(recipe)
        feed = {key: [{sig["inputs"][0]: img[None].astype(np.float32)} for img in images]}
        calibration = job.calibrate(feed, num_threads=1)
        return bytes(job.quantize(calibration, enable_progress_report=False).quantized_model)
    except Exception as e:  # noqa: BLE001 - a damaged flatbuffer fails anywhere inside
        raise damaged(fp32_tflite, e) from None


def repair_tflite(
    *,
    fp32_tflite,
    train_npz,
    layer_error_csv,
    out_tflite,
    out_json,
    cell,
    arch_cfg,
    calibration_samples,
    seed,
    out_gz=None,
):
    """Stage `repair_tflite`: one candidate (`cell`: arch, seed, sparsity, and the candidate's
    token as quant) as a .tflite, its gzip -9 copy and its JSON (what it keeps out of int8)."""
    token = cell["quant"]
    candidate = parse(token)
    ops, _ = graph(fp32_tflite)
    tensors = worst_tensors(layer_error_csv, candidate.worst_tensors) if candidate.worst_tensors else []
    # fewer tensors than asked: the model has no more quantized ops; the file is then the
    # same as the largest k that fits, and says so in worst_tensors
    kept = kept_ops(ops, tensors)
    images = scale_inputs(calibration_images(train_npz, calibration_samples, seed), input_scaling(arch_cfg))
    flat = quantize(fp32_tflite, recipe_for(ops, kept, candidate.kept_as), images)
    total = sum(m for *_, m in ops) or 1
    record = {
        **{k: cell[k] for k in ("arch", "seed", "sparsity")},
        "token": token,
        "describes": candidate.describes,
        "worst_tensors": tensors,
        "kept_as": candidate.kept_as,
        "kept_ops": [f"{ops[i][0]} {';'.join(ops[i][2])}" for i in kept],
        "kept_op_count": len(kept),
        "kept_mac_share": sum(ops[i][3] for i in kept) / total,
        "calibration_samples": calibration_samples,
    }
    with atomic_path(out_tflite) as tmp:
        tmp.write_bytes(flat)
    if out_gz is not None:
        gzip_tflite(tflite=out_tflite, out_gz=out_gz)
    write_json(out_json, record)
    log.info("wrote %s (%s; %d ops %s, %.1f %% of MACs)", out_tflite, candidate.describes, len(kept),
             candidate.kept_as, 100 * record["kept_mac_share"])  # fmt: skip
    return record
