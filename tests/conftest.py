"""Shared fixtures: small generated data in every supported format, and a copy of the
workflow in a temporary folder so workflow tests never touch the checkout's results/."""

import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASSES = ["cat", "dog", "frog"]


def write_image_tree(root: Path, per_class=(4, 2), classes=CLASSES, size=(32, 32)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = np.full((*size, 3), 40 * ci, np.uint8) + rng.integers(0, 30, (*size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i:04d}.png")
    return root


def write_cifar_batches(root: Path, per_batch=6):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch * 10)]
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": names}, fh)
    return root


def make_tar(src: Path, dst: Path, arcname: str):
    with tarfile.open(dst, "w:gz") as tar:
        tar.add(src, arcname=arcname)
    return dst


@pytest.fixture
def image_tree(tmp_path):
    return write_image_tree(tmp_path / "imgs")


@pytest.fixture
def workflow_dir(tmp_path):
    """A copy of the workflow (code only) to run Snakemake in."""
    dst = tmp_path / "wf"
    dst.mkdir()
    for name in ("Snakefile", "config.yaml", "workflow", "presets"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst / name)
    return dst


def snakemake(workdir, *args, check=True, timeout=1200):
    """Run the Snakemake CLI of this environment in `workdir`."""
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(exe), *args], cwd=workdir, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc
