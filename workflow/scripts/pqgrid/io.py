"""Small I/O helpers shared by every stage: atomic outputs, JSON, logging, versions."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from pathlib import Path


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


def read_json(path) -> dict:
    """A JSON file written by an earlier step; an empty or unreadable one (a killed job, a
    full disk) is named in one line with the fix, not a JSONDecodeError."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{path}: damaged or empty JSON ({str(e).splitlines()[0][:80]}); delete it and rerun"
        ) from None


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


def setup_logging(log_path=None) -> logging.Logger:
    """Log to the rule's log file (and stderr when run by hand)."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers = [logging.FileHandler(log_path, mode="a")]
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    return logging.getLogger("pqgrid")


def run_script(log_path, fn, *args, **kwargs):
    """Run a rule's one function with stderr and logging sent to its log; a failure ends
    the job with the one-line message also on stderr, where Snakemake shows it."""
    log = setup_logging(log_path)
    real_stderr = sys.stderr
    # pqgrid's own warnings (a model collapsed to chance, ...) also reach the terminal, one
    # line each: a person watching the run must not have to open every log to see them.
    console = logging.StreamHandler(real_stderr)
    console.addFilter(lambda record: record.levelno == logging.WARNING)  # errors: one line below
    console.setFormatter(logging.Formatter("pqgrid warning: %(message)s"))
    log.addHandler(console)
    with open(log_path, "a") as fh:
        sys.stderr = fh
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - reported, then re-raised as exit status
            log.exception("failed")
            print(f"pqgrid: {type(e).__name__}: {e}", file=real_stderr)
            raise SystemExit(1) from None
        finally:
            sys.stderr = real_stderr
            log.removeHandler(console)


def versions() -> dict:
    """Versions of the libraries that made a number, for provenance."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in (
        "tensorflow",
        "tf_keras",
        "tensorflow-model-optimization",
        "ai-edge-litert",
        "numpy",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out
