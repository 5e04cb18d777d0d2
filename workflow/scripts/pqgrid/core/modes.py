"""The quantization modes: one record per mode with every fact pqgrid uses about it - read by
the config checks, the rules (which file a conversion starts from), conversion, evaluation,
the per-layer error and the findings; the schema's description is checked against it
(tests/test_config.py). Adding a mode = one entry here and its converter setup in
quant/convert.py's CONVERTERS (CONTRIBUTING.md, "A quantization mode"). No TensorFlow import: the
Snakefile reads this at parse time."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    stores: str  # what the .tflite holds, for people (docs, schema text)
    calibrated: bool  # the conversion runs a representative set of training images
    # how the .tflite is made from the cell's fp32 .tflite instead of converting the Keras model
    # again (convert.py says why each is the same file): "calibrator" (TensorFlow's calibrator
    # and quantizer), "ai-edge-quantizer" (weight-only recipes), or None (the converter)
    from_fp32: str | None
    int8_weights: bool  # weights stored as int8 (claim 4's "smallest" cells)
    layer_error: bool  # the QuantizationDebugger's per-layer int8 error describes it
    integer_io: bool  # int8 input and output tensors
    from_qat_model: bool = False  # converted from a quantization-aware fine-tuned model (qat.py)


MODES = {
    m.name: m
    for m in (
        Mode("fp32", "float32 weights and activations", False, None, False, False, False),
        Mode(
            "dynamic",
            "int8 weights, float activations quantized on the fly",
            False,
            "ai-edge-quantizer",
            True,
            False,
            False,
        ),  # fmt: skip
        Mode("fp16", "float16 weights", False, "ai-edge-quantizer", False, False, False),
        Mode(
            "int8",
            "int8 weights and activations, float input/output (the thesis' mode)",
            True,
            "calibrator",
            True,
            True,
            False,
        ),  # fmt: skip
        Mode("int8_full", "integer-only: int8 input/output, every op int8", True, "calibrator", True, True, True),
        Mode(
            "int16x8", "int16 activations, int8 weights, float input/output", True, "calibrator", True, False, False
        ),  # fmt: skip
        Mode("qat", "integer-only from a quantization-aware fine-tuned model", True, None, True, False, True, True),
    )
}
# Any mode + this suffix also stores pruned tensors in TFLite's sparse format
# (Optimize.EXPERIMENTAL_SPARSITY), e.g. "int8_sparse": a separate grid value, so raw and
# gzip sizes with and without sparse encoding sit side by side in one summary. The sparse
# variants stay on the converter: it sparsifies after quantizing, a path not checked here.
SPARSE_SUFFIX = "_sparse"


def split_quant(name: str) -> tuple[str, bool]:
    """'int8_sparse' -> ('int8', True); 'fp32' -> ('fp32', False)."""
    if name.endswith(SPARSE_SUFFIX):
        return name[: -len(SPARSE_SUFFIX)], True
    return name, False


def mode(name: str) -> Mode:
    """The record of a grid value (a mode, optionally with _sparse); KeyError if unknown."""
    return MODES[split_quant(name)[0]]


def derives_from_fp32(name: str) -> bool:
    """Made from the cell's fp32 .tflite (never a _sparse variant)."""
    base, sparse = split_quant(name)
    return not sparse and base in MODES and MODES[base].from_fp32 is not None


def names(**facts) -> tuple:
    """Mode names whose records have the given facts, e.g. names(calibrated=True)."""
    return tuple(n for n, m in MODES.items() if all(getattr(m, k) == v for k, v in facts.items()))


# The repair candidates of int8 (pqgrid/ship/repair.py) are files, not grid modes: calibrated
# int8 made where no cell qualifies, named int8ma (moving-average ranges), int8f<k> (the k
# worst tensors kept float) or int8x<k> (the same at int16 activations). Named here so that
# evaluation reads one place for "calibrated".
REPAIR_TOKEN = re.compile(r"int8(?:ma|([fx])([1-9]\d*))")


def calibrated(name: str) -> bool:
    """The conversion ran a representative set: a calibrated grid mode or a repair candidate."""
    return bool(REPAIR_TOKEN.fullmatch(name)) or mode(name).calibrated
