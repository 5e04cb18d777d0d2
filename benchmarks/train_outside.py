"""A model trained the way a user trains one, outside pqgrid: plain tf_keras, its own
architecture (no pqgrid builder), its own data loading - for docs/results/your-model.md.

    .venv/bin/python benchmarks/train_outside.py --data data/cifar10.tar.gz --out runs/outside

reads an image-folder archive (<root>/train/<class>/*, <root>/test/<class>/*, as pqgrid's
data stage does, with Pillow) into memory, trains `resnet_ish` for --epochs epochs and
writes <out>/resnet_ish.keras, <out>/resnet_ish.tflite (float) and <out>/outside.json: the
Keras test top-1 and a careful user's own int8 conversion (TFLiteConverter, default
optimizations, 200 calibration images) with its top-1."""

import argparse
import io
import json
import os
import tarfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def load_archive(path):
    """{split: (x uint8 (N, 32, 32, 3), y int)} and the sorted class names."""
    data, classes = {"train": ([], []), "test": ([], [])}, set()
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith((".jpg", ".jpeg", ".png"))]
        for m in members:
            parts = Path(m.name).parts
            classes.add(parts[-2])
        names = sorted(classes)
        for m in members:
            parts = Path(m.name).parts
            split = "train" if "train" in parts else "test"
            img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
            data[split][0].append(np.asarray(img, dtype=np.uint8))
            data[split][1].append(names.index(parts[-2]))
    return {k: (np.stack(x), np.asarray(y)) for k, (x, y) in data.items()}, names


def resnet_ish(input_shape=(32, 32, 3), classes=10):
    """Three stages of two 3x3 convolutions with a residual add, BatchNorm, ReLU; global
    pooling; softmax. No keras.applications builder, no pqgrid builder."""
    import tf_keras

    L = tf_keras.layers
    x_in = L.Input(input_shape)
    x = x_in
    for width in (32, 64, 128):
        x = L.Conv2D(width, 3, strides=2 if width > 32 else 1, padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
        y = L.Conv2D(width, 3, padding="same", use_bias=False)(x)
        y = L.ReLU()(L.BatchNormalization()(y))
        x = L.Add()([x, y])
    x = L.GlobalAveragePooling2D()(x)
    return tf_keras.Model(x_in, L.Dense(classes, activation="softmax")(L.Dropout(0.2)(x)), name="resnet_ish")


def top1_tflite(flat, x, y):
    import tensorflow as tf

    it = tf.lite.Interpreter(model_content=flat)
    it.resize_tensor_input(it.get_input_details()[0]["index"], (256, *x.shape[1:]))
    it.allocate_tensors()
    hits = 0
    for i in range(0, len(x), 256):
        batch = x[i : i + 256]
        pad = np.zeros((256, *x.shape[1:]), np.float32)
        pad[: len(batch)] = batch
        it.set_tensor(it.get_input_details()[0]["index"], pad)
        it.invoke()
        hits += int(
            (it.get_tensor(it.get_output_details()[0]["index"])[: len(batch)].argmax(1) == y[i : i + 256]).sum()
        )
    return hits / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=6)
    a = ap.parse_args()
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    started = time.time()
    (splits, names) = load_archive(a.data)
    (x, y), (xt, yt) = splits["train"], splits["test"]
    x, xt = x / 127.5 - 1.0, (xt / 127.5 - 1.0).astype(np.float32)
    model = resnet_ish(classes=len(names))
    model.compile(tf_keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x.astype(np.float32), y, epochs=a.epochs, batch_size=128, verbose=2)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "resnet_ish.keras")
    keras_top1 = float((model.predict(xt, batch_size=256, verbose=0).argmax(1) == yt).mean())
    fp32 = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    (out / "resnet_ish.tflite").write_bytes(fp32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[i : i + 1].astype(np.float32)] for i in range(min(200, len(x))))
    own_int8 = conv.convert()
    report = {
        "classes": names,
        "train_images": len(x),
        "test_images": len(xt),
        "epochs": a.epochs,
        "keras_top1": keras_top1,
        "own_fp32_tflite_top1": top1_tflite(fp32, xt, yt),
        "own_int8_top1": top1_tflite(own_int8, xt, yt),
        "own_int8_bytes": len(own_int8),
        "seconds": round(time.time() - started),
    }
    (out / "outside.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
