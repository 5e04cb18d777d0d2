"""Image-folder trees (a directory or a .tar/.tar.gz): index <root>/train/<class>/*,
<root>/test/<class>/* or <root>/<class>/* (split here), decode with Pillow straight from
the archive, make photos of any size square (crop or pad), skip or name bad files."""

from __future__ import annotations

import io
import logging
from pathlib import PurePosixPath

import numpy as np

from pqgrid.data.arrays import DataError, Split

log = logging.getLogger("pqgrid")


# Photo and bitmap formats Pillow decodes without extra software (its registry also lists
# stub formats - HDF5, GRIB, EPS - that need a handler or Ghostscript: left out).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".webp", ".tif", ".tiff"}


def is_image(path: str) -> bool:
    """An image file by its ending; hidden files (macOS' ._name.jpg resource forks) are not."""
    p = PurePosixPath(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


# ---------------------------------------------------------------- image folders
# Photos of mixed sizes become this square side when dataset.image_size is null (the input
# size keras.applications' ImageNet models were trained at).
PHOTO_SIZE = 224


def index_folder(rel_paths):
    """Group image paths (relative to the archive or folder) into {split: {class: [path]}}.
    Either <root>/train/<class>/* and <root>/test/<class>/* (split as given), or
    <root>/<class>/* (returned as {"all": ...}; `split_unsplit` makes train/test).
    Accepts wrapping folders (cifar10/train/..., 101_ObjectCategories/<class>/...)."""
    images = [p for p in rel_paths if is_image(p)]
    tree = {}
    for p in images:
        parts = PurePosixPath(p).parts
        for i, part in enumerate(parts[:-2]):
            if part in ("train", "test") and len(parts) - i == 3:
                root = "/".join(parts[:i])
                tree.setdefault(root, {}).setdefault(part, {}).setdefault(parts[i + 1], []).append(p)
                break
    roots = [r for r, t in tree.items() if "train" in t and "test" in t]
    if len(roots) > 1:
        raise DataError(f"several dataset roots found ({', '.join(roots)}); point at one")
    if roots:
        return tree[roots[0]]
    flat = {}
    for p in images:
        parts = PurePosixPath(p).parts
        if len(parts) >= 2:
            flat.setdefault("/".join(parts[:-2]), {}).setdefault(parts[-2], []).append(p)
    if not flat:
        raise DataError(
            "no images in <class>/ folders found (expected <root>/<class>/* or <root>/train|test/<class>/*)"
        )
    if len(flat) > 1:
        raise DataError(
            f"images in class folders under several roots ({', '.join(sorted(r or '.' for r in flat))}); point at one"
        )
    return {"all": next(iter(flat.values()))}


def split_unsplit(per_class: dict, test_fraction: float, seed: int):
    """Stratified, seeded train/test split of a folder without train/ and test/: each class
    gives round(test_fraction * n) images (at least 1) to test, the rest to train."""
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for cls in sorted(per_class):
        names = sorted(per_class[cls])
        if len(names) < 2:
            raise DataError(f"class {cls!r} has {len(names)} image; need at least 2 (one for train, one for test)")
        order = rng.permutation(len(names))
        n_test = min(len(names) - 1, max(1, round(test_fraction * len(names))))
        test[cls] = [names[i] for i in sorted(order[:n_test])]
        train[cls] = [names[i] for i in sorted(order[n_test:])]
    return {"train": train, "test": test}


def _select(per_class: dict, limit, rng):
    """Stratified, seeded choice of up to `limit` names per class (all if limit is None)."""
    chosen = {}
    for cls in sorted(per_class):
        names = sorted(per_class[cls])
        if limit is not None and limit < len(names):
            idx = np.sort(rng.permutation(len(names))[:limit])
            names = [names[i] for i in idx]
        chosen[cls] = names
    return chosen


def square_image(im, size: int, mode: str = "crop"):
    """A Pillow image -> size x size RGB uint8 array. EXIF orientation applied; grey, palette
    and RGBA become RGB (alpha dropped). `crop`: shorter side scaled to `size`, centre cut
    (ImageOps.fit); `pad`: longer side scaled to `size`, centred on black (ImageOps.pad).
    An image already size x size is passed through unchanged."""
    from PIL import ImageOps

    im = ImageOps.exif_transpose(im).convert("RGB")
    if im.size != (size, size):
        fit = ImageOps.fit if mode == "crop" else ImageOps.pad
        im = fit(im, (size, size), method=3)  # 3 = Image.BICUBIC
    return np.asarray(im, dtype=np.uint8)


class _MixedSizes(Exception):
    """Internal: images differ in size and no image_size was set (the loader restarts)."""


def _decode(data: bytes, name: str, size, mode):
    """One image as an array (at `size` if given, else as stored); None if undecodable."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            if size is None:
                return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8)
            return square_image(im, size, mode)
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for a damaged file
        return DataError(
            f"{name}: cannot decode image ({type(e).__name__}: {e}); remove or replace the file, or set dataset.skip_bad_images: true"
        )


def _load_folder_split(chosen: dict, classes, read, size, mode, skip_bad) -> Split:
    """Decode straight into one preallocated uint8 array (no list of images and np.stack: at
    224 px a Caltech-101-sized folder would otherwise need twice its array in RAM)."""
    total = sum(len(chosen[c]) for c in classes)
    x, ys, names, skipped = None, [], [], []
    for ci, cls in enumerate(classes):
        for name in chosen[cls]:
            img = _decode(read(name), name, size, mode)
            if isinstance(img, DataError):
                if not skip_bad:
                    raise img
                skipped.append(name)
                continue
            if x is None:
                x = np.empty((total, *img.shape), dtype=np.uint8)
            elif img.shape != x.shape[1:]:
                raise _MixedSizes()
            x[len(names)] = img
            ys.append(ci)
            names.append(name)
    if x is None:
        raise DataError("no decodable image found; check the files or the folder")
    split = Split(x[: len(names)], np.asarray(ys, dtype=np.int64), names)
    split.skipped = skipped
    return split


def image_folders(tree, read, train_limit, test_limit, seed, opts, order=None):
    """Train and test Splits and the class names of a {split: {class: [name]}} tree whose
    images `read(name)` returns as bytes. Class numbers follow `order` (a TFRecord's label
    numbers), else the sorted class names (folders)."""
    if "all" in tree:
        tree = split_unsplit(tree["all"], opts.get("test_fraction", 0.2), seed)

    def ordered(names):
        return [c for c in order if c in names] if order else sorted(names)

    train_cls, test_cls = ordered(tree["train"]), ordered(tree["test"])
    if set(train_cls) != set(test_cls):
        diff = sorted(set(train_cls) ^ set(test_cls))
        raise DataError(
            f"train and test have different classes (only in one: {', '.join(diff)}); "
            "give both splits the same class folders"
        )
    if len(train_cls) < 2:
        raise DataError(f"{len(train_cls)} class folder found ({', '.join(train_cls)}); need at least 2 classes")
    size, mode, skip = opts.get("image_size"), opts.get("resize", "crop"), opts.get("skip_bad_images", False)
    rng = np.random.default_rng(seed)  # one generator, train drawn first: a test_limit change keeps the train subset
    chosen = [_select(tree["train"], train_limit, rng), _select(tree["test"], test_limit, rng)]
    try:
        train = _load_folder_split(chosen[0], train_cls, read, size, mode, skip)
        test = _load_folder_split(chosen[1], test_cls, read, size, mode, skip)
        if size is None and train.x.shape[1:] != test.x.shape[1:]:
            raise _MixedSizes()
    except _MixedSizes:  # photos of mixed sizes, no image_size set: all to PHOTO_SIZE
        train = _load_folder_split(chosen[0], train_cls, read, PHOTO_SIZE, mode, skip)
        test = _load_folder_split(chosen[1], test_cls, read, PHOTO_SIZE, mode, skip)
    return train, test, train_cls


def resize_split(split: Split, size, mode="crop") -> Split:
    """Arrays from a fixed-size source (keras, synthetic, CIFAR batches) at another size."""
    from PIL import Image

    if size is None or split.x.shape[1:3] == (size, size):
        return split
    x = np.empty((len(split.x), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(split.x):
        x[i] = square_image(Image.fromarray(img), size, mode)
    return Split(x, split.y, split.names)
