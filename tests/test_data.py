import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, make_tar, write_cifar_batches, write_image_tree
from pqgrid.data import arrays, images
from pqgrid.data import prepare as data_prepare
from pqgrid.data import sources as data_sources
from pqgrid.data.arrays import DataError


def test_image_folder_directory(image_tree):
    train, test, classes, digest = data_sources.load(str(image_tree))
    assert classes == sorted(CLASSES)
    assert train.x.shape == (12, 32, 32, 3) and train.x.dtype == np.uint8
    assert test.x.shape == (6, 32, 32, 3)
    assert np.bincount(train.y).tolist() == [4, 4, 4]
    assert len(digest) == 64


def test_image_folder_tar_gz_with_wrapping_folder(image_tree, tmp_path):
    tgz = make_tar(image_tree, tmp_path / "d.tar.gz", "cifar10")
    train, test, classes, digest = data_sources.load(str(tgz))
    direct = data_sources.load(str(image_tree))
    assert classes == direct[2]
    np.testing.assert_array_equal(train.x, direct[0].x)
    np.testing.assert_array_equal(test.y, direct[1].y)


def test_cifar_batches_directory_and_archive(tmp_path):
    d = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    train, test, classes, _ = data_sources.load(str(d))
    assert train.x.shape == (300, 32, 32, 3) and test.x.shape == (60, 32, 32, 3)
    assert classes[0] == "airplane" and len(classes) == 10
    tgz = make_tar(d, tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py")
    train2, test2, _, _ = data_sources.load(str(tgz))
    np.testing.assert_array_equal(train.x, train2.x)
    np.testing.assert_array_equal(test.y, test2.y)


def test_cifar_batch_pixel_layout(tmp_path):
    """CIFAR stores planes R, G, B of 1024 bytes each; the loader must give HWC."""
    d = write_cifar_batches(tmp_path / "b")
    import pickle

    with open(d / "data_batch_1", "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")[b"data"][0]
    train, _, _, _ = data_sources.load(str(d))
    assert train.x[0, 0, 0].tolist() == [raw[0], raw[1024], raw[2048]]
    assert train.x[0, 0, 1, 0] == raw[1]


def test_synthetic_is_seeded_and_balanced():
    a = data_sources.load("synthetic", 5, 3, seed=1)
    b = data_sources.load("synthetic", 5, 3, seed=1)
    c = data_sources.load("synthetic", 5, 3, seed=2)
    np.testing.assert_array_equal(a[0].x, b[0].x)
    assert not np.array_equal(a[0].x, c[0].x)
    assert np.bincount(a[0].y).tolist() == [5] * 10
    assert a[3] == b[3] != c[3]


def test_stratified_limits_folder_and_arrays(tmp_path):
    tree = write_image_tree(tmp_path / "t", per_class=(6, 4))
    train, test, _, _ = data_sources.load(str(tree), train_per_class=2, test_per_class=3, seed=0)
    assert np.bincount(train.y).tolist() == [2, 2, 2]
    assert np.bincount(test.y).tolist() == [3, 3, 3]
    again = data_sources.load(str(tree), train_per_class=2, test_per_class=3, seed=0)[0]
    other = data_sources.load(str(tree), train_per_class=2, test_per_class=3, seed=5)[0]
    assert train.names == again.names and train.names != other.names
    d = write_cifar_batches(tmp_path / "b")
    tr, te, _, _ = data_sources.load(str(d), train_per_class=7, test_per_class=2)
    assert np.bincount(tr.y).tolist() == [7] * 10 and np.bincount(te.y).tolist() == [2] * 10


def test_holdout_split_is_stratified_and_disjoint():
    y = np.repeat(np.arange(4), 10)
    tr, va = data_prepare.holdout_split(y, 0.2, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 40
    assert np.bincount(y[va]).tolist() == [2, 2, 2, 2]


def test_prepare_writes_npz_and_manifest(image_tree, tmp_path):
    out = tmp_path / "out"
    man = data_prepare.prepare(
        source=str(image_tree),
        train_npz=out / "train.npz",
        test_npz=out / "test.npz",
        manifest_path=out / "manifest.json",
    )
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(man))
    assert on_disk["counts"]["train"] == {"cat": 4, "dog": 4, "frog": 4}
    x, y = arrays.load_npz(out / "train.npz")
    assert x.shape == (12, 32, 32, 3) and y.tolist() == sorted(y.tolist())


# ------------------------------------------------------------------ bad input
def _expect(match, source, tmp_path, **kw):
    out = tmp_path / "out"
    with pytest.raises(DataError, match=match):
        data_prepare.prepare(
            source=str(source),
            train_npz=out / "train.npz",
            test_npz=out / "test.npz",
            manifest_path=out / "manifest.json",
            **kw,
        )
    # nothing half-written is left behind
    assert not out.exists() or not any(out.iterdir())


def test_missing_path(tmp_path):
    _expect("does not exist", tmp_path / "nope", tmp_path)


def test_corrupt_archive(tmp_path, image_tree):
    tgz = make_tar(image_tree, tmp_path / "d.tar.gz", "root")
    blob = tgz.read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(blob[: len(blob) // 2])
    _expect("corrupt|not a readable", bad, tmp_path)


def test_unsplit_archive_with_a_one_image_class(tmp_path):
    src = tmp_path / "flat"
    (src / "cat").mkdir(parents=True)
    write_image_tree(tmp_path / "x")
    (tmp_path / "x" / "train" / "cat" / "0000.png").rename(src / "cat" / "0000.png")
    tgz = make_tar(src, tmp_path / "flat.tar.gz", "flat")
    _expect(r"class 'cat' has 1 image; need at least 2 \(one for train, one for test\)", tgz, tmp_path)


def test_different_classes(tmp_path):
    tree = write_image_tree(tmp_path / "t")
    (tree / "test" / "frog").rename(tree / "test" / "toad")
    _expect("different classes.*frog, toad", tree, tmp_path)


def test_fewer_than_two_classes(tmp_path):
    tree = write_image_tree(tmp_path / "t", classes=["only"])
    _expect("need at least 2", tree, tmp_path)


def test_undecodable_image(tmp_path):
    tree = write_image_tree(tmp_path / "t")
    (tree / "train" / "dog" / "0001.png").write_bytes(b"not an image")
    _expect(r"train/dog/0001.png: cannot decode", tree, tmp_path)


def test_mixed_image_sizes_become_224_px_without_image_size(tmp_path):
    tree = write_image_tree(tmp_path / "t")
    write_image_tree(tmp_path / "big", classes=["cat"], size=(40, 40))
    (tmp_path / "big" / "train" / "cat" / "0000.png").replace(tree / "train" / "cat" / "0003.png")
    train, test, _, _ = data_sources.load(str(tree))
    assert train.x.shape[1:] == test.x.shape[1:] == (images.PHOTO_SIZE, images.PHOTO_SIZE, 3)


# ------------------------------------------------------------------ photo folders
def write_photos(root: Path, classes=("ant", "bee", "cow"), per_class=10, seed=0):
    """<root>/<class>/*: JPEG/PNG/BMP of random sizes and aspect ratios, grey, RGBA and
    palette images among them (what a phone folder or Caltech-101 holds)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    kinds = [("RGB", ".jpg"), ("L", ".png"), ("RGBA", ".png"), ("P", ".gif"), ("RGB", ".bmp")]
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = (int(v) for v in rng.integers(20, 90, 2))
            arr = np.full((h, w, 3), 70 * ci, np.uint8) + rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
            mode, ext = kinds[i % len(kinds)]
            Image.fromarray(arr).convert(mode).save(root / c / f"img{i:03d}{ext}")
    return root


def test_photo_folder_any_size_and_colour_mode_loads_square(tmp_path):
    photos = write_photos(tmp_path / "photos")
    for mode in ("crop", "pad"):
        train, test, classes, _ = data_sources.load(str(photos), image_size=48, resize=mode, test_fraction=0.2, seed=3)
        assert classes == ["ant", "bee", "cow"]  # from the folder names
        assert train.x.shape == (24, 48, 48, 3) and test.x.shape == (6, 48, 48, 3)
        assert train.x.dtype == np.uint8
    # pad keeps the whole photo: a 60x20 white strip is centred on black
    from PIL import Image

    strip = Image.new("RGB", (60, 20), (255, 255, 255))
    padded = images.square_image(strip, 30, "pad")
    assert padded.shape == (30, 30, 3) and padded[0, 0].tolist() == [0, 0, 0] and padded[15, 15].tolist() == [255] * 3
    cropped = images.square_image(strip, 30, "crop")
    assert (cropped == 255).all()  # the centre 20x20 of the strip, scaled to 30x30
    grey = images.square_image(Image.new("L", (8, 8), 100), 8)
    assert grey.shape == (8, 8, 3) and (grey == 100).all()


def test_unsplit_folder_split_is_stratified_and_seeded(tmp_path):
    photos = write_photos(tmp_path / "photos", per_class=10)
    (photos / "bee" / "img010.jpg").write_bytes((photos / "bee" / "img000.jpg").read_bytes())  # 11 bees
    a = data_sources.load(str(photos), image_size=32, test_fraction=0.3, seed=0)
    b = data_sources.load(str(photos), image_size=32, test_fraction=0.3, seed=0)
    c = data_sources.load(str(photos), image_size=32, test_fraction=0.3, seed=1)
    assert np.bincount(a[1].y).tolist() == [3, 3, 3]  # round(0.3 * 10), round(0.3 * 11)
    assert np.bincount(a[0].y).tolist() == [7, 8, 7]
    assert a[1].names == b[1].names and np.array_equal(a[0].x, b[0].x)
    assert a[1].names != c[1].names
    assert not set(a[0].names) & set(a[1].names)


def test_bad_photo_named_or_skipped_with_a_count(tmp_path):
    photos = write_photos(tmp_path / "photos")
    (photos / "bee" / "img004.bmp").write_bytes(b"GIF89a broken")
    _expect(r"bee/img004.bmp: cannot decode image .*skip_bad_images: true", photos, tmp_path, image_size=32)
    out = tmp_path / "ok"
    man = data_prepare.prepare(
        source=str(photos),
        train_npz=out / "train.npz",
        test_npz=out / "test.npz",
        manifest_path=out / "manifest.json",
        image_size=32,
        skip_bad_images=True,
    )
    assert man["skipped_images"]["count"] == 1 and man["skipped_images"]["files"] == ["bee/img004.bmp"]
    assert sum(man["counts"]["train"].values()) + sum(man["counts"]["test"].values()) == 29


def test_empty_or_single_class_folder_fails_in_one_line(tmp_path):
    photos = write_photos(tmp_path / "photos")
    (photos / "dog").mkdir()
    _expect(r"class folder dog has no images; add images or remove the folder", photos, tmp_path, image_size=32)
    one = write_photos(tmp_path / "one", classes=("ant",))
    _expect(r"1 class folder found \(ant\); need at least 2 classes", one, tmp_path, image_size=32)


def test_photo_folder_peak_memory_under_twice_the_array(tmp_path):
    """Decoding goes straight into one preallocated array: the peak traced allocation while
    loading 150 photos at 224 px stays under 2x their uint8 array (issue: Caltech-101 at 224)."""
    import tracemalloc

    photos = write_photos(tmp_path / "photos", per_class=50)
    tracemalloc.start()
    train, test, _, _ = data_sources.load(str(photos), image_size=224)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    array = train.x.nbytes + test.x.nbytes
    assert array == 150 * 224 * 224 * 3
    assert peak < 2 * array, (peak, array)


def test_fixed_size_source_resized_to_image_size():
    train, test, _, _ = data_sources.load("synthetic", 2, 1, image_size=64)
    assert train.x.shape == (20, 64, 64, 3) and test.x.shape == (10, 64, 64, 3)


def test_keras_source_offline_says_how_to_use_a_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # no cached copy
    import socket

    try:
        socket.create_connection(("www.cs.toronto.edu", 443), timeout=3).close()
        pytest.skip("internet reachable: the download would succeed")
    except OSError:
        pass
    with pytest.raises(DataError, match=r"data/cifar10.tar.gz.*presets/cifar10-local.yaml"):
        data_sources.keras_cifar10()


@pytest.mark.parametrize("missing", ["data_batch_3", "test_batch", "batches.meta"])
@pytest.mark.parametrize("packed", [False, True])
def test_cifar_batches_with_a_file_missing_name_it(tmp_path, missing, packed):
    d = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    (d / missing).unlink()
    source = make_tar(d, tmp_path / "c.tar.gz", "cifar-10-batches-py") if packed else d
    _expect(f"{missing} missing", source, tmp_path)


def test_cifar_truncated_meta_is_named(tmp_path):
    d = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    meta = d / "batches.meta"
    meta.write_bytes(meta.read_bytes()[:20])
    _expect("batches.meta: not a readable CIFAR-10 batches.meta", d, tmp_path)


def test_synthetic_photos_go_through_the_folder_reader():
    """`synthetic-photos`: variable-size JPEG, grey and RGBA PNG, unsplit, made square."""
    files = data_sources.synthetic_photos(per_class=10, num_classes=3, seed=0)
    import io

    from PIL import Image

    dims = {Image.open(io.BytesIO(b)).size for b in files.values()}
    modes = {Image.open(io.BytesIO(b)).mode for b in files.values()}
    assert len(dims) > 20 and {"RGB", "L", "RGBA"} <= modes
    train, test, classes, digest = data_sources.load("synthetic-photos", 8, 2, synthetic_classes=3, image_size=40)
    assert classes == ["class0", "class1", "class2"]
    assert train.x.shape == (24, 40, 40, 3) and test.x.shape == (6, 40, 40, 3)
    assert digest == data_sources.load("synthetic-photos", 8, 2, synthetic_classes=3, image_size=40)[3]


def test_tiff_loads_and_hidden_resource_forks_are_ignored(tmp_path):
    from PIL import Image

    photos = write_photos(tmp_path / "photos", per_class=4)
    Image.new("RGB", (50, 30), (9, 9, 9)).save(photos / "ant" / "scan.tiff")
    (photos / "bee" / "._img000.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS copy leftovers
    train, test, classes, _ = data_sources.load(str(photos), image_size=32, test_fraction=0.25)
    assert len(train.y) + len(test.y) == 13 and classes == ["ant", "bee", "cow"]
    assert not any("._" in n for n in train.names + test.names)


def test_npz_source_splits_and_keeps_its_classes(tmp_path):
    """An .npz the user has: x/y split here (stratified, seeded, test_fraction) with its class
    names; x_train/.../y_test used as given; the same file gives the same arrays."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)
    y = np.tile(np.arange(3), 20)
    np.savez(tmp_path / "d.npz", x=x, y=y, classes=np.array(["cat", "dog", "eel"]))
    train, test, classes, digest = data_sources.load(str(tmp_path / "d.npz"), test_fraction=0.25, seed=1)
    assert classes == ["cat", "dog", "eel"] and len(test.y) == 15 and len(train.y) == 45
    assert np.bincount(test.y).tolist() == [5, 5, 5]
    assert {tuple(img.ravel()[:4]) for img in np.concatenate([train.x, test.x])} == {tuple(i.ravel()[:4]) for i in x}
    again = data_sources.load(str(tmp_path / "d.npz"), test_fraction=0.25, seed=1)
    assert np.array_equal(again[1].x, test.x) and again[3] == digest
    np.savez(tmp_path / "s.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    train, test, classes, _ = data_sources.load(str(tmp_path / "s.npz"))
    assert np.array_equal(test.x, x[40:]) and classes == ["0", "1", "2"]


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {"x": np.zeros((4, 8, 8, 3), np.float32), "y": np.zeros(4, int)},
            r"x is float32; store 0\.\.255 images as uint8",
        ),
        (
            {"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(4, int)},
            r"x has shape \(4, 8, 8\); give \(N, height, width, 3\)",
        ),
        ({"x": np.zeros((4, 8, 8, 3), np.uint8)}, r"y is missing; give one integer label per image of x"),
        (
            {"x": np.zeros((4, 8, 8, 3), np.uint8), "y": np.array([0, 1, 2, 3]), "classes": np.array(["a", "b"])},
            r"labels outside 0\.\.1",
        ),
        ({"images": np.zeros((4, 8, 8, 3), np.uint8)}, r"has \['images'\]; give x and y"),
    ],
)
def test_npz_source_errors_name_the_array_and_the_fix(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        data_sources.load(str(tmp_path / "bad.npz"))


# ------------------------------------------------------------------ TensorFlow's formats
def _example(image: bytes, label: int, image_key="image", label_key="label"):
    import tensorflow as tf

    feature = {
        image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        label_key: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _png(img) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="PNG")
    return buffer.getvalue()


def _splits(n_classes=3, per_class=6, size=8):
    rng = np.random.default_rng(2)
    out = {}
    for split, n in (("train", per_class), ("test", per_class // 2)):
        y = np.tile(np.arange(n_classes), n)
        out[split] = (rng.integers(0, 256, (len(y), size, size, 3), dtype=np.uint8), y)
    return out


def test_tfrecord_shards_load_as_written_with_their_class_names(tmp_path):
    """TFDS' layout: <name>-train.tfrecord-0000x-of-0000n shards of tf.train.Examples (PNG
    bytes, int64 label) and label.labels.txt naming the labels in their order (not sorted:
    label 0 is zebra). Every image and label comes back as written."""
    import tensorflow as tf

    data = _splits()
    folder = tmp_path / "records"
    folder.mkdir()
    for split, (x, y) in data.items():
        half = len(y) // 2
        for shard, rows in enumerate((range(half), range(half, len(y)))):
            with tf.io.TFRecordWriter(str(folder / f"mine-{split}.tfrecord-{shard:05d}-of-00002")) as w:
                for i in rows:
                    w.write(_example(_png(x[i]), int(y[i])))
    (folder / "label.labels.txt").write_text("zebra\nant\ncow\n")
    train, test, classes, digest = data_sources.load(str(folder), seed=0)
    assert classes == ["zebra", "ant", "cow"], "the labels' own order, not sorted"
    for split, got in (("train", train), ("test", test)):
        want_x, want_y = data[split]
        order = np.lexsort((np.arange(len(want_y)), want_y))  # loaded grouped by class, in file order
        assert np.array_equal(got.x, want_x[order]) and np.array_equal(got.y, want_y[order]), split
    out = tmp_path / "out"
    data_prepare.prepare(source=str(folder), train_npz=out / "train.npz", test_npz=out / "test.npz",
                         manifest_path=out / "manifest.json")  # fmt: skip
    assert json.loads((out / "manifest.json").read_text())["classes"] == ["zebra", "ant", "cow"]
    assert data_sources.load(str(folder), seed=0)[3] == digest


def test_a_saved_tf_data_set_loads_split_or_unsplit(tmp_path):
    """tf.data.Dataset.save folders: train/ and test/ of (uint8 image, label) pairs as they
    are; one set of {"image", "label"} mappings split here (stratified, test_fraction)."""
    import tensorflow as tf

    data = _splits()
    for split, (x, y) in data.items():
        tf.data.Dataset.from_tensor_slices((x, y)).save(str(tmp_path / "saved" / split))
    train, test, classes, _ = data_sources.load(str(tmp_path / "saved"))
    assert classes == ["0", "1", "2"]
    order = np.lexsort((np.arange(len(data["test"][1])), data["test"][1]))
    assert np.array_equal(test.x, data["test"][0][order]) and np.array_equal(test.y, data["test"][1][order])
    x, y = data["train"]
    tf.data.Dataset.from_tensor_slices({"image": x, "label": y}).save(str(tmp_path / "one"))
    train, test, classes, _ = data_sources.load(str(tmp_path / "one"), test_fraction=1 / 3, seed=0)
    assert np.bincount(test.y).tolist() == [2, 2, 2] and np.bincount(train.y).tolist() == [4, 4, 4]


def test_tf_formats_bad_input_is_one_line_naming_the_fix(tmp_path):
    import tensorflow as tf

    folder = tmp_path / "nolabel"
    folder.mkdir()
    with tf.io.TFRecordWriter(str(folder / "a.tfrecord")) as w:
        w.write(_example(_png(np.zeros((4, 4, 3), np.uint8)), 0, label_key="klass"))
    with pytest.raises(
        DataError, match=r"records have features \['image', 'klass'\]; give .* its class as one of label"
    ):
        data_sources.load(str(folder / "a.tfrecord"))
    good = tmp_path / "cut.tfrecord"
    with tf.io.TFRecordWriter(str(good)) as w:
        for i in range(8):
            w.write(_example(_png(np.full((4, 4, 3), i, np.uint8)), i % 2))
    good.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"a TFRecord file is damaged .*; write it again"):
        data_sources.load(str(good))
    tf.data.Dataset.from_tensor_slices((np.zeros((4, 4, 4, 3), np.float32), np.arange(4) % 2)).save(str(tmp_path / "f"))
    with pytest.raises(DataError, match=r"element 0 is a float32 array .*; give uint8 \(height, width, 3\) images"):
        data_sources.load(str(tmp_path / "f"))
