"""Small I/O helpers shared by every stage: atomic outputs, JSON, logging, versions."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

from pqgrid.core.provenance import pqgrid_version
from pqgrid.core.runtime import cpu_model, read


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path` (same suffix, so writers that look at the
    extension, like h5py or np.savez, behave); rename it onto `path` only on success.
    A crash or exception leaves no half-written `path` for a later step to trust."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class DamagedFile(ValueError):
    """An intermediate file that is empty, truncated or not what its name says."""


# The first bytes each kind of file starts with (a .tflite flatbuffer has its identifier at
# offset 4). A file that lacks them was cut off or overwritten.
SIGNATURES = {".h5": (0, b"\x89HDF\r\n\x1a\n"), ".tflite": (4, b"TFL3"), ".npz": (0, b"PK"), ".gz": (0, b"\x1f\x8b")}


def check_file(path) -> Path:
    """Fail with one line naming `path` and the fix when it is missing, empty, or lacks its
    kind's signature: before a stage reads it, so nothing downstream of it is written."""
    path = Path(path)
    if not path.is_file():
        raise DamagedFile(f"{path}: missing; rerun the workflow to rebuild it")
    size = path.stat().st_size
    if size == 0:
        raise DamagedFile(f"{path}: empty file (0 bytes: a killed job or a full disk?); delete it and rerun")
    offset, magic = SIGNATURES.get(path.suffix, (0, b""))
    if magic:
        with open(path, "rb") as fh:
            fh.seek(offset)
            if fh.read(len(magic)) != magic:
                raise DamagedFile(f"{path}: not a valid {path.suffix} file (damaged or cut off); delete it and rerun")
    return path


def damaged(path, error) -> DamagedFile:
    """The one-line error for a file whose reader failed after its signature looked fine."""
    first = str(error).splitlines()[0][:100] if str(error) else type(error).__name__
    return DamagedFile(f"{path}: damaged or cut off ({first}); delete it and rerun")


def read_csv(path, required=()):
    """A CSV written by an earlier step, checked like every other intermediate file: a cut-off
    one lacks `required` columns or has empty cells in them."""
    import pandas as pd

    check_file(path)
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":  # pandas ends every CSV it writes with a newline
            raise damaged(path, "no final newline: cut off")
    try:
        df = pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise damaged(path, e) from None
    missing = [c for c in required if c not in df.columns]
    if missing or (len(required) and df[list(required)].isna().any().any()) or (required and df.empty):
        raise damaged(path, f"missing or empty column(s) {', '.join(missing or required)}")
    return df


def read_json(path) -> dict:
    """A JSON file written by an earlier step; an empty or unreadable one (a killed job, a
    full disk) is named in one line with the fix, not a JSONDecodeError."""
    check_file(path)
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise damaged(path, e) from None


# What a predictions file (one model's answer per test image, evaluate.write_predictions) holds.
PREDICTION_KEYS = ("label", "confidence", "true", "test_sha256")


def read_predictions(path) -> dict:
    """A predictions file as a dict; a damaged or foreign file fails naming it."""
    check_file(path)
    import numpy as np  # deferred: the rule files import io at parse time

    try:
        with np.load(path) as f:
            out = {k: f[k] for k in PREDICTION_KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise damaged(path, e) from None
    out["test_sha256"] = str(out["test_sha256"])
    return out


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def sha256_file(path, chunk=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def platform_facts() -> dict:
    """The machine a number was computed on. Runs are bit-identical on one machine
    (seeds, op determinism) but not across CPU types: oneDNN picks kernels by instruction set
    (AVX2, AVX-512, ...), which changes the rounding of every training step."""
    import platform

    cpuinfo = read("/proc/cpuinfo") or ""
    # x86 lists "flags", ARM "Features"
    flags = next((line for line in cpuinfo.splitlines() if line.lower().startswith(("flags", "features"))), "")
    isa = [f for f in ("avx512f", "avx2", "fma", "neon", "asimd") if f" {f}" in flags]
    return {"machine": platform.machine(), "cpu": cpu_model(cpuinfo) or platform.processor() or None, "simd": isa,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}  # fmt: skip


def versions() -> dict:
    """pqgrid's own version and commit, and the versions of the libraries that made a
    number (ai-edge-quantizer writes the dynamic and fp16 files), for provenance."""
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform_facts(), "pqgrid": pqgrid_version()}
    for dist in (
        "tensorflow",
        "tf_keras",
        "tensorflow-model-optimization",
        "ai-edge-litert",
        "ai-edge-quantizer",
        "numpy",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out
