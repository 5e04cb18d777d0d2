"""Stage `train_model`: one architecture from scratch (thesis §3.3), or from pretrained
weights (`weights:` imagenet or an .h5) with a new classifier, saved as .h5."""

from __future__ import annotations

import logging
import math
import shutil

from pqgrid.core.catalog import arch_kind, input_scaling
from pqgrid.data import arrays
from pqgrid.jobs.tfsetup import accelerated, tensorflow
from pqgrid.models import builders, fit
from pqgrid.models.imported import import_model

log = logging.getLogger("pqgrid")


def train_model(*, train_npz, test_npz, manifest, model_out, history_csv, arch_cfg, settings, seed, threads=None):
    if arch_kind(arch_cfg) == "model":  # trained outside pqgrid: imported (and fine-tuned if asked)
        return import_model(train_npz=train_npz, test_npz=test_npz, manifest=manifest, model_out=model_out,
                            history_csv=history_csv, arch_cfg=arch_cfg, settings=settings, seed=seed,
                            threads=threads)  # fmt: skip

    tf, tf_keras = tensorflow(threads, seed, settings.get("deterministic", True))
    man = arrays.load_manifest(manifest)
    (x, y), val = fit.train_val(train_npz, test_npz, settings, seed)
    num_classes = len(man["classes"])
    mixed = accelerated(settings.get("mixed_precision", False), tf)
    xla = accelerated(settings.get("xla", False), tf)
    if mixed:
        tf_keras.mixed_precision.set_global_policy("mixed_float16")
    # Built (and a weights file checked layer by layer) before any training.
    model = builders.build(arch_cfg, num_classes, x.shape[1:], settings["batchnorm_momentum"])
    start = f"weights {arch_cfg['weights']}" if arch_cfg.get("weights") else "from scratch"
    log.info("training %s (%s): %d images, %d classes, %d epochs (mixed precision %s, XLA %s)",
             arch_cfg["builder"], start, len(x), num_classes, settings["epochs"], mixed, xla)  # fmt: skip
    common = dict(
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        seed=seed,
        scaling=input_scaling(arch_cfg),
        num_classes=num_classes,
        patience=settings["early_stopping_patience"],
        jit_compile=xla,
    )
    run_id = fit.fingerprint(arch_cfg, settings, seed, man["npz_sha256"])
    resume_dirs, head_rows = [f"{model_out}.resume"], []
    if arch_cfg.get("weights"):
        head_rows = _train_head(model, (x, y), val, settings, run_id, model_out, history_csv, common)
        resume_dirs.insert(0, f"{model_out}.resume-head")
    if not arch_cfg.get("weights") or settings["transfer"]["fine_tune"]:
        rate = settings["transfer"]["fine_tune_learning_rate"] if arch_cfg.get("weights") else settings["learning_rate"]
        steps = math.ceil(len(x) / settings["batch_size"]) * settings["epochs"]
        rows = fit.fit_resumable(
            model,
            fit.rmsprop({**settings, "learning_rate": rate}, steps),
            (x, y),
            val,
            resume_dir=resume_dirs[-1],
            run_id=run_id,
            history_csv=history_csv,
            **common,
        )
        if head_rows:  # one history: the head phase's epochs, then fine-tuning's
            fit.write_history(
                history_csv, [{"phase": "head", **r} for r in head_rows] + [{"phase": "fine_tune", **r} for r in rows]
            )
    if mixed:
        model = _float32_copy(model, tf_keras, arch_cfg, num_classes, x.shape[1:], settings["batchnorm_momentum"])
    fit.save_model(model, model_out, resume_dirs[-1])
    for d in resume_dirs:
        shutil.rmtree(d, ignore_errors=True)


def _float32_copy(model, tf_keras, arch_cfg, num_classes, input_shape, momentum):
    """A mixed-precision model rebuilt under the float32 policy with its weights: saved
    models are float32."""
    tf_keras.mixed_precision.set_global_policy("float32")
    copy = builders.build(arch_cfg, num_classes, input_shape, momentum, load_weights=False)
    copy.set_weights(model.get_weights())
    return copy


def _train_head(model, train_xy, val, settings, run_id, model_out, history_csv, common):
    """Transfer phase 1: only the new classifier (builders.HEAD_LAYERS) learns; the pretrained
    base is frozen (its BatchNorm layers then run in inference mode, as Keras' transfer-
    learning guide advises). Then every layer is unfrozen for the fine-tuning phase."""
    epochs = settings["transfer"]["head_epochs"]
    resume_dir, rows = f"{model_out}.resume-head", []
    if epochs:
        for layer in model.layers:
            layer.trainable = layer.name in builders.HEAD_LAYERS
        steps = math.ceil(len(train_xy[0]) / settings["batch_size"]) * epochs
        rows = fit.fit_resumable(
            model,
            fit.rmsprop(settings, steps),
            train_xy,
            val,
            resume_dir=resume_dir,
            run_id=run_id,
            history_csv=history_csv,
            **{**common, "epochs": epochs, "patience": None},
        )
    for layer in model.layers:
        layer.trainable = True
    return rows
