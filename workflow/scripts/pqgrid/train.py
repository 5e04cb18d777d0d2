"""Stage `train_model`: one architecture from scratch (thesis §3.3), saved as .h5."""

from __future__ import annotations

import logging
import math

from . import data, fit, models
from .config import input_scaling

log = logging.getLogger("pqgrid")


def train_model(*, train_npz, test_npz, manifest, model_out, history_csv, arch_cfg, settings, seed, threads=None):
    from .tfsetup import accelerated, tensorflow

    tf, tf_keras = tensorflow(threads, seed)
    man = data.load_manifest(manifest)
    (x, y), val = fit.train_val(train_npz, test_npz, settings, seed)
    num_classes = len(man["classes"])
    mixed = accelerated(settings.get("mixed_precision", False), tf)
    xla = accelerated(settings.get("xla", False), tf)
    if mixed:
        tf_keras.mixed_precision.set_global_policy("mixed_float16")
    model = models.build(arch_cfg, num_classes, x.shape[1:], settings["batchnorm_momentum"])
    steps = math.ceil(len(x) / settings["batch_size"]) * settings["epochs"]
    resume_dir = f"{model_out}.resume"
    log.info(
        "training %s: %d images, %d classes, %d epochs (mixed precision %s, XLA %s)",
        arch_cfg["builder"],
        len(x),
        num_classes,
        settings["epochs"],
        mixed,
        xla,
    )
    fit.fit_resumable(
        model,
        fit.rmsprop(settings, steps),
        (x, y),
        val,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        seed=seed,
        scaling=input_scaling(arch_cfg),
        num_classes=num_classes,
        resume_dir=resume_dir,
        run_id=fit.fingerprint(arch_cfg, settings, seed, man["npz_sha256"]),
        history_csv=history_csv,
        patience=settings["early_stopping_patience"],
        jit_compile=xla,
    )
    if mixed:  # saved models are float32: rebuild under the float32 policy, copy weights
        tf_keras.mixed_precision.set_global_policy("float32")
        weights = model.get_weights()
        model = models.build(arch_cfg, num_classes, x.shape[1:], settings["batchnorm_momentum"])
        model.set_weights(weights)
    fit.save_model(model, model_out, resume_dir)
