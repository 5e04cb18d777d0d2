"""What made a result: pqgrid's version and the git commit it runs from, and digests of the
files a result was computed from (an imported model, its folder). Which code each stage
runs, for reruns, is jobs/stage_code.py."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

from pqgrid import __version__
from pqgrid.core.catalog import arch_kind, is_user_builder
from pqgrid.core.paths import module_file, user_builder_file, workflow_path

SCRIPTS = Path(__file__).resolve().parents[2]  # workflow/scripts


def file_digest(path) -> str | None:
    """sha256 (16 hex digits) of a file's bytes; None if absent."""
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def folder_digest(folder) -> str | None:
    """sha256 (16 hex digits) over the names and bytes of a folder's files; None if absent."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(folder)}\0".encode() + path.read_bytes())
    return h.hexdigest()[:16]


def model_file_digests(arch_cfg: dict):
    """The files a model is made from that are no pipeline output - a model file (or folder)
    and its custom layers' module, a user builder's code, a pretrained start's .h5 - by
    content: as a param, changing one retrains and moving it with the checkout does not (its
    path is not an input). None for a built-in builder from scratch or ImageNet."""
    if arch_kind(arch_cfg) == "model":
        path, layers = workflow_path(arch_cfg["model"]), arch_cfg.get("custom_objects")
        return {"model": folder_digest(path) if Path(path).is_dir() else file_digest(path),
                "custom_objects": file_digest(module_file(layers)) if layers else None}  # fmt: skip
    if is_user_builder(arch_cfg.get("builder")):
        return {"builder_code": file_digest(user_builder_file(arch_cfg["builder"]))}
    weights = arch_cfg.get("weights")
    return file_digest(workflow_path(weights)) if weights and weights != "imagenet" else None


@functools.lru_cache(maxsize=1)
def pqgrid_version() -> dict:
    """pqgrid's release, and the git commit of the checkout it runs from (with `dirty`:
    uncommitted changes to the workflow) when it is one; both None outside git."""
    root = SCRIPTS.parent.parent

    def git(*args):
        try:
            proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD") if git("rev-parse", "--show-toplevel") == str(root) else None
    dirty = bool(git("status", "--porcelain", "--", "Snakefile", "workflow")) if commit else None
    return {"version": __version__, "commit": commit, "dirty": dirty}
