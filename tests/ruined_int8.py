"""A model trained outside pqgrid that one op ruins for int8: a small CNN trained on the
synthetic classes, then one channel of its first convolution scaled 1000x and the next
convolution's weights on that channel divided by 1000. In float the function is the same
(ReLU(1000 z) / 1000 = ReLU(z)); in int8 that one channel sets the tensor's range, and every
other channel rounds to zero."""

from pathlib import Path

import numpy as np

SCALE = 1000.0
FIRST = "conv_first"  # the layer whose output tensor is ruined


def ruined_model(folder: Path, data: Path, epochs: int = 6, seed: int = 0) -> dict:
    """Train on `data`'s train.npz (inputs scaled 'tf'), scale one channel; writes
    ruined.h5 and ruined.tflite (fp32, TFLiteConverter) in `folder`. Returns their paths
    and the float model's test top-1."""
    import tensorflow as tf
    import tf_keras
    from pqgrid.core.runtime import scale_inputs

    tf.keras.utils.set_random_seed(seed)
    with np.load(data / "train.npz") as d:
        x, y = scale_inputs(d["x"], "tf"), d["y"]
    with np.load(data / "test.npz") as d:
        xt, yt = scale_inputs(d["x"], "tf"), d["y"]
    layers = tf_keras.layers
    inp = layers.Input(x.shape[1:])
    h = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name=FIRST)(inp)
    h = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv_second")(h)
    h = layers.GlobalAveragePooling2D()(h)
    out = layers.Dense(int(y.max()) + 1, activation="softmax", name="scores")(h)
    model = tf_keras.Model(inp, out)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    # the channel that fires most, so it carries information and its range is the widest
    first = model.get_layer(FIRST)
    w, b = first.get_weights()
    channel = int(np.argmax(tf_keras.Model(inp, first.output).predict(x[:64], verbose=0).mean(axis=(0, 1, 2))))
    w[..., channel] *= SCALE
    b[channel] *= SCALE
    first.set_weights([w, b])
    second = model.get_layer("conv_second")
    w2, b2 = second.get_weights()
    w2[:, :, channel, :] /= SCALE
    second.set_weights([w2, b2])
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "ruined.h5")
    (folder / "ruined.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    top1 = float(np.mean(np.argmax(model.predict(xt, verbose=0), axis=1) == yt))
    return {"h5": folder / "ruined.h5", "tflite": folder / "ruined.tflite", "top1": top1, "channel": channel}
