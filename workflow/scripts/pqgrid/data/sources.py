"""Load CIFAR-10-like data from any supported source into uint8 arrays.

Sources: 'keras' (tf_keras.datasets.cifar10), 'synthetic' (procedural, for tests), an
image-folder tree (directory or .tar/.tar.gz: <root>/train/<class>/*, <root>/test/<class>/*,
or <root>/<class>/* split here), the original CIFAR-10 python batches (directory or
cifar-10-python.tar.gz), an .npz of arrays, TFRecord files or a saved tf.data set (records.py). Photos of any size are made square (crop or pad) while decoding.
Images are decoded with Pillow straight from the archive: nothing is unpacked to disk."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from pqgrid.core.io import sha256_file
from pqgrid.data.arrays import DataError, Split
from pqgrid.data.images import IMAGE_SUFFIXES, image_folders, index_folder, resize_split, split_unsplit
from pqgrid.data.records import is_saved_dataset, is_tfrecord, read_records, read_saved, record_files

log = logging.getLogger("pqgrid")


CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


IMAGE_SUFFIXES |= {".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico"}


# ---------------------------------------------------------------- synthetic
def synthetic(train_per_class=100, test_per_class=20, num_classes=10, size=32, seed=0):
    """Learnable procedural images, so tests can assert accuracy: class c is a stripe pattern
    of its own hue (evenly spaced around the colour wheel), orientation and frequency; every
    image draws its phase, contrast, brightness and pixel noise at random. Tiny CNNs trained
    from scratch reach >= 90 % test top-1 on them within the smoke preset's budget (tested),
    so a pruned or quantized cell that breaks shows up as lost accuracy."""
    rng = np.random.default_rng(seed)
    classes = [f"class{c}" for c in range(num_classes)]
    colours = _hues(num_classes)

    def make(n_per_class):
        xs, ys = [], []
        for c in range(num_classes):
            for _ in range(n_per_class):
                xs.append(_stripes(rng, c, num_classes, colours, size, size))
                ys.append(c)
        return Split(np.stack(xs), np.asarray(ys, dtype=np.int64))

    return make(train_per_class), make(test_per_class), classes


def _hues(num_classes):
    import colorsys

    return np.array([colorsys.hsv_to_rgb(c / num_classes, 0.9, 1.0) for c in range(num_classes)])


def _stripes(rng, c, num_classes, colours, h, w):
    """One image of class c: its hue, orientation and frequency; random phase, contrast,
    brightness and pixel noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / h, xx / w
    angle = np.pi * c / num_classes
    freq = 2 + (c % 3)
    phase = rng.uniform(0, 2 * np.pi)
    contrast = rng.uniform(0.25, 0.45)
    wave = np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    img = rng.uniform(0.35, 0.55) + contrast * (wave[..., None] + 0.6) * colours[c]
    img = img + rng.normal(0, 0.08, (h, w, 3))
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def synthetic_photos(per_class=60, num_classes=10, seed=0) -> dict:
    """An unsplit photo folder in memory, {"photos/<class>/<file>": bytes}: the synthetic
    classes at random sizes (48..160 px a side, any aspect ratio) as JPEG, with grey PNGs and
    RGBA PNGs among them. Read through the same code as a folder on disk (`synthetic-photos`:
    the seed-003 preset and tests, where no photo collection can be shipped)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = _hues(num_classes)
    files = {}
    for c in range(num_classes):
        for i in range(per_class):
            h, w = (int(v) for v in rng.integers(48, 161, 2))
            im = Image.fromarray(_stripes(rng, c, num_classes, colours, h, w))
            buf = io.BytesIO()
            if i % 5 == 4:
                im.convert("L").save(buf, "PNG")
            elif i % 7 == 6:
                im.convert("RGBA").save(buf, "PNG")
            else:
                im.save(buf, "JPEG", quality=85)
            ext = "png" if i % 5 == 4 or i % 7 == 6 else "jpg"
            files[f"photos/class{c}/{i:04d}.{ext}"] = buf.getvalue()
    return files


# ---------------------------------------------------------------- keras
def keras_cifar10():
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        import tf_keras

        (xtr, ytr), (xte, yte) = tf_keras.datasets.cifar10.load_data()
    except Exception as e:  # noqa: BLE001 - any download failure means the same to a user
        raise DataError(
            "dataset.source 'keras': could not download CIFAR-10 "
            f"({type(e).__name__}; offline?). Put a local copy at data/cifar10.tar.gz (an image-folder "
            ".tar.gz or cifar-10-python.tar.gz) and add presets/cifar10-local.yaml after the preset, or "
            "point dataset.source at your copy"
        ) from None
    return (
        Split(xtr, ytr.reshape(-1).astype(np.int64)),
        Split(xte, yte.reshape(-1).astype(np.int64)),
        list(CIFAR10_CLASSES),
    )


# ---------------------------------------------------------------- CIFAR python batches
def _unpickle(fh, name):
    try:
        d = pickle.load(fh, encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return x, np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{name}: not a readable CIFAR-10 batch ({e})") from None


CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")


def looks_like_cifar_batches(names) -> bool:
    """Any CIFAR-10 batch file present: the source is read (and checked) as batches."""
    return any(n in CIFAR_FILES for n in names)


def _cifar_batches(read, names):
    """`read(name)` opens a member; names maps 'data_batch_1'.. to member names. All seven
    files must be there: a partial set would silently train on fewer images."""
    missing = [f for f in CIFAR_FILES if f not in names]
    if missing:
        raise DataError(
            f"CIFAR-10 python batches: {', '.join(missing)} missing (need data_batch_1..5, test_batch, batches.meta);"
            " re-download or re-extract cifar-10-python.tar.gz"
        )
    parts = [_unpickle(read(names[k]), names[k]) for k in CIFAR_FILES[:5]]
    xte, yte = _unpickle(read(names["test_batch"]), names["test_batch"])
    try:
        meta = pickle.load(read(names["batches.meta"]), encoding="bytes")
        classes = [c.decode() for c in meta[b"label_names"]]
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same: damaged file
        raise DataError(f"{names['batches.meta']}: not a readable CIFAR-10 batches.meta ({e})") from None
    return (
        Split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])),
        Split(xte, yte),
        classes,
    )


# ---------------------------------------------------------------- dispatch
def load(source: str, train_per_class=None, test_per_class=None, seed=0, synthetic_classes=10, **opts):
    """Return (train, test, classes, source_sha256) with stratified per-class limits.
    `opts`: image_size, resize, test_fraction, skip_bad_images (config.yaml, dataset)."""
    size, mode = opts.get("image_size"), opts.get("resize", "crop")
    if source == "synthetic":
        train, test, classes = synthetic(train_per_class or 100, test_per_class or 20, synthetic_classes, seed=seed)
        digest = _array_digest(train, test)
        return resize_split(train, size, mode), resize_split(test, size, mode), classes, digest
    if source == "synthetic-photos":
        files = synthetic_photos((train_per_class or 48) + (test_per_class or 12), synthetic_classes, seed)
        train, test, classes = image_folders(
            index_folder(files), files.__getitem__, train_per_class, test_per_class, seed, opts
        )
        h = hashlib.sha256()
        for name in sorted(files):
            h.update(name.encode() + files[name])
        return _check(train, test, classes, source) + (h.hexdigest(),)
    if source == "keras":
        train, test, classes = keras_cifar10()
        digest = _array_digest(train, test)
    else:
        path = Path(source)
        if not path.exists():
            raise DataError(f"dataset.source {source}: does not exist; check the path")
        if is_tfrecord(path) or (path.is_dir() and (record_files(path) or is_saved_dataset(path))):
            reader = read_records if is_tfrecord(path) or record_files(path) else read_saved
            try:
                tree, read, order = reader(path)
                train, test, classes = image_folders(tree, read, train_per_class, test_per_class, seed, opts, order)
            except DataError as e:
                raise DataError(f"dataset.source {source}: {e}") from None
            digest = _directory_digest(path) if path.is_dir() else sha256_file(path)
            return _check(train, test, classes, source) + (digest,)
        if path.is_dir():
            train, test, classes = _from_directory(path, train_per_class, test_per_class, seed, opts)
            digest = _directory_digest(path)
        elif path.suffix == ".npz":
            train, test, classes = from_npz(path, opts.get("test_fraction", 0.2), seed)
            digest = sha256_file(path)
        else:
            train, test, classes = _from_archive(path, train_per_class, test_per_class, seed, opts)
            digest = sha256_file(path)
        if train.names:  # image folders were limited (and sized) while reading
            return _check(train, test, classes, source) + (digest,)
    rng = np.random.default_rng(seed)
    train = resize_split(stratified_limit(train, train_per_class, rng), size, mode)
    test = resize_split(stratified_limit(test, test_per_class, rng), size, mode)
    return _check(train, test, classes, source) + (digest,)


def _from_directory(path: Path, train_limit, test_limit, seed, opts):
    files = [str(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file()]
    batch_names = {
        PurePosixPath(f).name: f
        for f in files
        if PurePosixPath(f).name.startswith(("data_batch_", "test_batch", "batches.meta"))
    }
    if looks_like_cifar_batches(batch_names):
        return _cifar_batches(lambda n: (path / n).open("rb"), batch_names)
    try:
        tree = index_folder(files)
        _check_empty_classes(path, tree)
        return image_folders(tree, lambda n: (path / n).read_bytes(), train_limit, test_limit, seed, opts)
    except DataError as e:
        raise DataError(f"dataset.source {path}: {e}") from None


def _check_empty_classes(path: Path, tree):
    """A class folder without a single image (a directory source shows empty folders)."""
    for split in tree.values():
        some = next(iter(split.values()))[0]
        root = path / PurePosixPath(some).parent.parent
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            if d.name not in split:
                raise DataError(f"class folder {d.relative_to(path)} has no images; add images or remove the folder")


def _from_archive(path: Path, train_limit, test_limit, seed, opts):
    try:
        tar = tarfile.open(path)  # noqa: SIM115 - read from while the images are decoded, closed by GC
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"dataset.source {path}: not a readable .tar/.tar.gz ({e}); re-download or repack it") from None
    with tar:

        def read(name):
            return tar.extractfile(members[name]).read()

        batch_names = {
            PurePosixPath(n).name: n
            for n in members
            if PurePosixPath(n).name.startswith(("data_batch_", "test_batch", "batches.meta"))
        }
        try:
            if looks_like_cifar_batches(batch_names):
                return _cifar_batches(lambda n: io.BytesIO(read(n)), batch_names)
            tree = index_folder(members)
            return image_folders(tree, read, train_limit, test_limit, seed, opts)
        except (tarfile.TarError, OSError, EOFError, KeyError) as e:
            raise DataError(f"dataset.source {path}: archive is corrupt ({e}); re-download it") from None
        except DataError as e:
            raise DataError(f"dataset.source {path}: {e}") from None


def stratified_limit(split: Split, per_class, rng) -> Split:
    if per_class is None:
        return split
    keep = []
    for c in np.unique(split.y):
        idx = np.flatnonzero(split.y == c)
        keep.append(np.sort(rng.permutation(idx)[:per_class]))
    keep = np.sort(np.concatenate(keep))
    return Split(split.x[keep], split.y[keep])


def _check(train: Split, test: Split, classes, source):
    if len(classes) < 2:
        raise DataError(f"dataset.source {source}: {len(classes)} class found; need at least 2")
    if set(np.unique(train.y)) != set(np.unique(test.y)):
        raise DataError(f"dataset.source {source}: train and test have different classes")
    return train, test, classes


def _array_digest(*splits) -> str:
    h = hashlib.sha256()
    for s in splits:
        h.update(np.ascontiguousarray(s.x).tobytes())
        h.update(np.ascontiguousarray(s.y).tobytes())
    return h.hexdigest()


def _directory_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(path).as_posix().encode() + b"\0")
            h.update(sha256_file(p).encode())
    return h.hexdigest()


def from_npz(path: Path, test_fraction: float, seed: int):
    """Arrays a user already has: an .npz with uint8 images `x` (N, H, W, 3) and integer
    labels `y` (N,), split here like an unsplit folder (test_fraction, seeded, stratified),
    or `x_train`/`y_train`/`x_test`/`y_test`; optional `classes` (names in label order)."""
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"dataset.source {path}: not a readable .npz ({e}); write it with numpy.savez") from None
    if "x" in arrays:
        x, y = arrays["x"], arrays.get("y")
    elif "x_train" in arrays:
        x, y = arrays["x_train"], arrays.get("y_train")
    else:
        raise DataError(
            f"dataset.source {path}: has {sorted(arrays)}; give x and y (or x_train, y_train, x_test, y_test)"
        )
    labels = [
        v
        for k, v in arrays.items()
        if k.startswith("y") and v.ndim == 1 and len(v) and np.issubdtype(v.dtype, np.integer)
    ]
    n_classes = 1 + max((int(v.max()) for v in labels), default=0)
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else [str(i) for i in range(n_classes)]
    train = _npz_split(path, "x" if "x" in arrays else "x_train", x, y, len(classes))
    if "x_test" in arrays:
        return train, _npz_split(path, "x_test", arrays["x_test"], arrays.get("y_test"), len(classes)), classes
    per_class = {c: [f"{i:09d}" for i in np.flatnonzero(train.y == c)] for c in range(len(classes))}
    try:
        parts = split_unsplit({c: v for c, v in per_class.items() if v}, test_fraction, seed)
    except DataError as e:
        raise DataError(f"dataset.source {path}: {e}") from None
    pick = {k: np.array(sorted(int(n) for names in part.values() for n in names)) for k, part in parts.items()}
    return Split(x[pick["train"]], train.y[pick["train"]]), Split(x[pick["test"]], train.y[pick["test"]]), classes


def _npz_split(path, name, x, y, n_classes) -> Split:
    """One split's arrays checked: what is wrong, named, with the fix."""
    label = name.replace("x", "y", 1)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"dataset.source {path}: {name} has shape {x.shape}; give (N, height, width, 3) RGB images")
    if x.dtype != np.uint8:
        raise DataError(f"dataset.source {path}: {name} is {x.dtype}; store 0..255 images as uint8 (x.astype('uint8'))")
    if y is None or y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        got = "missing" if y is None else f"{y.dtype} of shape {y.shape}"
        raise DataError(f"dataset.source {path}: {label} is {got}; give one integer label per image of {name}")
    if y.min() < 0 or y.max() >= n_classes:
        raise DataError(
            f"dataset.source {path}: {label} has labels outside 0..{n_classes - 1}; `classes` names each label"
        )
    return Split(x, y.astype(np.int64))
