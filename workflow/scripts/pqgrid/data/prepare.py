"""Stage `prepare_data`: load a source, hold out a validation split, write the arrays and
the manifest (classes, counts, source digest) atomically."""

from __future__ import annotations

import logging

import numpy as np

from pqgrid.core.io import atomic_path, sha256_file, write_json
from pqgrid.data.sources import load

log = logging.getLogger("pqgrid")


def holdout_split(y: np.ndarray, fraction: float, seed: int):
    """Stratified train/validation index split of the training set."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        val.append(idx[: max(1, int(round(fraction * len(idx))))])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def prepare(*, source, train_npz, test_npz, manifest_path, train_per_class=None, test_per_class=None, seed=0, **opts):
    """The data rule: load, check, write train.npz / test.npz / manifest.json atomically.
    `opts`: image_size, resize, test_fraction, skip_bad_images (config.yaml, dataset)."""
    train, test, classes, digest = load(source, train_per_class, test_per_class, seed, **opts)
    for split, out in ((train, train_npz), (test, test_npz)):
        with atomic_path(out) as tmp:
            np.savez(tmp, x=split.x, y=split.y)
    skipped = train.skipped + test.skipped
    if skipped:
        log.warning("skipped %d undecodable image(s), e.g. %s", len(skipped), skipped[0])
    manifest = {
        "source": str(source),
        "source_sha256": digest,
        "classes": classes,
        "image_shape": list(train.x.shape[1:]),
        "image_size_setting": opts.get("image_size"),
        "resize": opts.get("resize", "crop"),
        "train_per_class_limit": train_per_class,
        "test_per_class_limit": test_per_class,
        "seed": seed,
        "skipped_images": {"count": len(skipped), "files": skipped[:20]},
        "counts": {
            "train": {c: int((train.y == i).sum()) for i, c in enumerate(classes)},
            "test": {c: int((test.y == i).sum()) for i, c in enumerate(classes)},
        },
        "npz_sha256": {"train": sha256_file(train_npz), "test": sha256_file(test_npz)},
    }
    write_json(manifest_path, manifest)
    return manifest
