"""The data in memory and on disk: `Split` (uint8 images and labels), `DataError`, and the
readers of the prepared .npz arrays and manifest that every later stage uses."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field

import numpy as np

from pqgrid.core.io import check_file, damaged, read_json


def load_npz(path):
    check_file(path)
    try:
        with np.load(path) as d:
            return d["x"], d["y"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise damaged(path, e) from None


def load_manifest(path) -> dict:
    return read_json(path)


class DataError(ValueError):
    """Bad data: names the file or folder and what to do."""


@dataclass
class Split:
    x: np.ndarray  # (N, H, W, 3) uint8
    y: np.ndarray  # (N,) int64 class index
    names: list = field(default_factory=list)  # where each image came from (for limits/errors)
    skipped: list = field(default_factory=list)  # undecodable files left out (skip_bad_images)
