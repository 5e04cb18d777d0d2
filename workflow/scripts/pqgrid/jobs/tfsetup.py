"""Import TensorFlow the one way pqgrid needs it: Keras 2 (tf_keras, which tfmot requires),
pinned thread counts, seeded and deterministic. Call `tensorflow()` before any TF import."""

from __future__ import annotations

import contextlib
import os


def environment() -> None:
    """The variables TensorFlow must see when it is imported (also the warm server's)."""
    # tfmot does not support Keras 3: tf.keras must resolve to tf_keras. Must be set before
    # TensorFlow is imported anywhere in the process.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tensorflow(threads: int | None = None, seed: int | None = None, deterministic: bool = True):
    environment()
    import tensorflow as tf
    import tf_keras

    if threads:
        # RuntimeError: already initialised in this process (tests): keep the first
        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(min(2, int(threads)))
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    if seed is not None:
        tf_keras.utils.set_random_seed(int(seed))
        # Bitwise-repeatable kernels: two clean runs give identical metrics
        # (training.deterministic: false trades that for speed; its cost: benchmarks/README, P8).
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        # Dropout and other random layers draw from a tf.random.Generator whose state is
        # a variable, so a checkpoint restores it and a resumed run draws what an
        # uninterrupted one would have.
        tf_keras.backend.experimental.enable_tf_random_generator()
    return tf, tf_keras


def accelerated(setting, tf) -> bool:
    """Resolve a `true | false | auto` switch: auto means "on when a GPU is visible"."""
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(setting)
