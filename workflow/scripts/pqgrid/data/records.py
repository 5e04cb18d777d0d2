"""Data sets users keep in TensorFlow's formats: TFRecord files of `tf.train.Example`s and
folders written by `tf.data.Dataset.save`.

Both become what an image folder is (images as bytes by a name, grouped by split and class),
so limits, the seeded split of an unsplit set, image sizes, `resize` and `skip_bad_images`
are the image folders' own (images.image_folders). Encoded images (JPEG/PNG bytes, as TFDS
and most writers store them) are passed as they are; uint8 pixel arrays (a saved
`tf.data` set of decoded images) are written as PNG, which is lossless.

Layouts: a `.tfrecord` file, or a folder of TFRecord files whose names say `train` or `test`
(TFDS: `cifar10-train.tfrecord-00000-of-00001`; files naming neither form one unsplit set);
a folder with `dataset_spec.pb` (one saved set), or `train/` and `test/` folders that each
hold one. Each element is `(image, label)` or a mapping with an image key (IMAGE_KEYS) and
a label key (LABEL_KEYS). Class names: TFDS' `label.labels.txt` beside the data (one name
per line, in label order) when there is one, else the label numbers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pqgrid.data.arrays import DataError

IMAGE_KEYS = ("image", "image/encoded", "image_raw", "x")
LABEL_KEYS = ("label", "image/class/label", "y")
RECORD_SUFFIXES = (".tfrecord", ".tfrecords")
LABEL_NAMES_FILE = "label.labels.txt"


def is_tfrecord(path: Path) -> bool:
    return path.is_file() and path.suffix in RECORD_SUFFIXES


def record_files(path: Path) -> list:
    """The TFRecord files of a folder (TFDS shards carry a suffix after `.tfrecord`)."""
    return sorted(p for p in path.iterdir() if p.is_file() and ".tfrecord" in p.name)


def is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_spec.pb").is_file() or all(
        (path / s / "dataset_spec.pb").is_file() for s in ("train", "test")
    )


def read_records(path: Path):
    """(tree, read, classes) of a TFRecord file or folder: tree is {split: {class: [name]}}
    ("all" when the files name no split), read(name) the image's bytes."""
    files = [path] if path.is_file() else record_files(path)
    by_split = {}
    for f in files:
        split = next((s for s in ("train", "test") if s in f.name), "all")
        by_split.setdefault(split, []).append(f)
    if "all" in by_split and len(by_split) > 1:
        raise DataError(
            f"TFRecord files {[f.name for f in by_split['all']]} name neither train nor test beside ones that do; "
            "name every file's split or none"
        )
    images, labels = {}, {}
    for split, split_files in by_split.items():
        for i, (image, label) in enumerate(_examples(split_files)):
            name = f"{split}/{i:09d}"
            images[name], labels[name] = image, label
    return _grouped(images, labels, path)


def read_saved(path: Path):
    """(tree, read, classes) of a folder written by tf.data.Dataset.save (or train/ and test/)."""
    import tensorflow as tf

    parts = {"all": path} if (path / "dataset_spec.pb").is_file() else {s: path / s for s in ("train", "test")}
    images, labels = {}, {}
    for split, folder in parts.items():
        try:
            ds = tf.data.Dataset.load(str(folder))
        except (tf.errors.OpError, ValueError, OSError) as e:
            raise DataError(
                f"{folder}: tf.data cannot load it ({str(e).splitlines()[0][:200]}); save it again"
            ) from None
        for i, element in enumerate(ds.as_numpy_iterator()):
            image, label = _pair(element, folder)
            name = f"{split}/{i:09d}"
            images[name], labels[name] = _image_bytes(image, folder, i), label
    return _grouped(images, labels, path)


def _examples(files):
    """(image bytes, label) of every tf.train.Example in the files."""
    import tensorflow as tf

    try:
        for raw in tf.data.TFRecordDataset([str(f) for f in files]).as_numpy_iterator():
            example = tf.train.Example.FromString(raw)
            yield _pair(_features(example, files[0]), files[0])
    except tf.errors.DataLossError as e:
        raise DataError(
            f"{files[0].parent}: a TFRecord file is damaged ({str(e).splitlines()[0][:200]}); write it again"
        ) from None


def _features(example, where) -> dict:
    """A tf.train.Example's image and label features as Python values."""
    out = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        if len(values) == 1:
            out[key] = values[0]
    if not any(k in out for k in IMAGE_KEYS) or not any(k in out for k in LABEL_KEYS):
        raise DataError(
            f"{where}: records have features {sorted(example.features.feature)}; give the encoded image as one of "
            f"{', '.join(IMAGE_KEYS)} (bytes) and its class as one of {', '.join(LABEL_KEYS)} (int64)"
        )
    return out


def _pair(element, where):
    """(image, integer label) of one element: a tuple or a mapping."""
    if isinstance(element, dict):
        image = next((element[k] for k in IMAGE_KEYS if k in element), None)
        label = next((element[k] for k in LABEL_KEYS if k in element), None)
    elif isinstance(element, tuple) and len(element) == 2:
        image, label = element
    else:
        image = label = None
    if image is None or label is None or not np.issubdtype(np.asarray(label).dtype, np.integer):
        raise DataError(
            f"{where}: elements are {type(element).__name__}; give (image, label) or a mapping with "
            f"{'/'.join(IMAGE_KEYS)} and an integer {'/'.join(LABEL_KEYS)}"
        )
    return image, int(label)


def _image_bytes(image, where, i) -> bytes:
    """Encoded bytes as they are; a uint8 (h, w, 3|1) array as PNG (lossless)."""
    if isinstance(image, bytes):
        return image
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise DataError(
            f"{where}: element {i} is a {a.dtype} array of shape {a.shape}; give uint8 (height, width, 3) images "
            "or encoded JPEG/PNG bytes"
        )
    buffer = io.BytesIO()
    Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buffer, format="PNG")
    return buffer.getvalue()


def _grouped(images: dict, labels: dict, path: Path):
    if not images:
        raise DataError(f"{path}: holds no examples; write the data set again")
    numbers = sorted(set(labels.values()))
    if numbers[0] < 0:
        raise DataError(f"{path}: label {numbers[0]} is negative; labels are class numbers 0, 1, ...")
    names_file = path / LABEL_NAMES_FILE if path.is_dir() else path.parent / LABEL_NAMES_FILE
    if names_file.is_file():
        classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        if numbers[-1] >= len(classes):
            raise DataError(
                f"{names_file}: names {len(classes)} classes, the data have label {numbers[-1]}; name every class"
            )
    else:
        classes = [str(n) for n in range(numbers[-1] + 1)]
    tree = {}
    for name, label in labels.items():
        split = name.split("/", 1)[0]
        tree.setdefault(split, {}).setdefault(classes[label], []).append(name)
    order = [c for c in classes if any(c in t for t in tree.values())]
    return tree, images.__getitem__, order
