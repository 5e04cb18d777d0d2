"""What training and fine-tuning share: data split, optimizer, kill -9-safe `fit`, saving.

Why not keras' BackupAndRestore: it restores weights and the epoch counter, but the input
pipeline restarts at its first shuffle and EarlyStopping forgets its state, so a resumed run
does not end with the weights of an uninterrupted one. Here each epoch's order is a pure
function of (seed, epoch) (stateless shuffle), and one tf.train.Checkpoint holds the model,
the optimizer, the random generator state (dropout) and the epoch; the history CSV restores
EarlyStopping's counters."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np

from pqgrid.core.io import atomic_path
from pqgrid.data import arrays as data_arrays
from pqgrid.data import prepare
from pqgrid.models.builders import all_layers, scale_inputs_tf

log = logging.getLogger("pqgrid")


def epoch_batches(x, y, batch_size, seed, first_epoch, last_epoch, scaling, num_classes):
    """tf.data pipeline over epochs [first_epoch, last_epoch): each epoch a permutation
    drawn from (seed, epoch), batches gathered from in-memory uint8 arrays, scaled and
    one-hot encoded on the fly, prefetched so the model never waits for input."""
    import tensorflow as tf

    # The images stay in the numpy array: tf.constant(x) would copy it (measured: +2 GB for
    # a 1 GB array), and a 224 px photo set must fit in ~2x its uint8 size.
    ys = tf.constant(y)
    n = len(x)

    def one_epoch(epoch):
        order = tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), epoch])))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    def gather(idx):
        images = tf.numpy_function(lambda i: x[i], [idx], tf.uint8, stateful=False)
        images.set_shape([None, *x.shape[1:]])
        return scale_inputs_tf(images, scaling), tf.one_hot(tf.gather(ys, idx), num_classes)

    return without_autotune(
        tf.data.Dataset.range(first_epoch, last_epoch)
        .flat_map(one_epoch)
        # one map thread: on few cores parallel input threads steal time from the model (P2)
        .map(gather, num_parallel_calls=1, deterministic=True)
        .prefetch(PREFETCH_BATCHES)
    )


def eval_batches(x, y, batch_size, scaling, num_classes):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    return without_autotune(
        ds.map(lambda a, b: (scale_inputs_tf(a, scaling), tf.one_hot(b, num_classes))).prefetch(PREFETCH_BATCHES)
    )


# Batches made ahead of the model: one in use, one ready (the map runs on one thread anyway).
PREFETCH_BATCHES = 2


def without_autotune(ds):
    """`ds` with tf.data's autotuning off. Its optimisation thread sleeps for a period that
    doubles up to 60 s, and deleting the iterator waits for that sleep to end (seen with gdb:
    RootDataset::Iterator::~Iterator waits on Model::OptimizeLoop): every fit ended with an
    idle wait of 0-55 s, ~1/8 of the laptop preset's wall time (benchmarks/README,
    "end-of-fit wait"). Nothing here needs autotuning: one map thread, a fixed prefetch."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def fingerprint(*parts) -> str:
    """Identity of a run's settings: a checkpoint is resumed only by the same run."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fit_resumable(
    model,
    optimizer,
    train_xy,
    val_xy,
    *,
    epochs,
    batch_size,
    seed,
    scaling,
    num_classes,
    resume_dir,
    run_id,
    history_csv,
    patience=None,
    extra_callbacks=(),
    jit_compile=False,
):
    """Compile and fit, checkpointing after every epoch into `resume_dir`; a rerun with the
    same `run_id` continues where the killed one stopped. Writes the history CSV
    (atomically); `save_model` removes `resume_dir` once the model is saved."""
    import tensorflow as tf
    import tf_keras

    x, y = train_xy
    model.compile(
        optimizer=optimizer,
        loss="categorical_crossentropy",
        metrics=["accuracy", tf_keras.metrics.TopKCategoricalAccuracy(k=3, name="top3")],
        jit_compile=bool(jit_compile),
    )
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var, rngs=_random_generators(model))
    rows = _restore(ckpt, Path(resume_dir), run_id, optimizer, model, epoch_var)
    manager = tf.train.CheckpointManager(ckpt, str(resume_dir), max_to_keep=1)
    first = int(epoch_var.numpy())
    callbacks = [_EpochEnd(rows, epochs, len(x), epoch_var, manager, Path(resume_dir)), *extra_callbacks]
    if patience:
        callbacks.append(_ResumedEarlyStopping(rows, patience))
    if first < epochs:
        model.fit(
            epoch_batches(x, y, batch_size, seed, first, epochs, scaling, num_classes),
            steps_per_epoch=math.ceil(len(x) / batch_size),
            epochs=epochs,
            initial_epoch=first,
            validation_data=eval_batches(*val_xy, 256, scaling, num_classes) if val_xy else None,
            callbacks=callbacks,
            verbose=0,
        )
    write_history(history_csv, rows)
    return rows


def _restore(ckpt, resume_dir: Path, run_id, optimizer, model, epoch_var) -> list:
    """Restore the checkpoint of the same run, if any, and return its history rows; else
    start a fresh `resume_dir` marked with `run_id`. A leftover that does not fit together
    (no history for the checkpointed epochs, an unreadable checkpoint) is checked before
    anything is restored, and discarded with a log line: training starts over, it never
    fails on it."""
    import tensorflow as tf

    same_run = (resume_dir / "run_id").exists() and (resume_dir / "run_id").read_text() == run_id
    latest = tf.train.latest_checkpoint(str(resume_dir)) if same_run else None
    if latest:
        try:
            epochs = int(tf.train.load_checkpoint(latest).get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))
            rows = _read_history(resume_dir / "history.csv")
            if len(rows) < epochs:
                raise ValueError(f"history.csv holds {len(rows)} of {epochs} checkpointed epochs")
        except (OSError, ValueError, tf.errors.OpError) as e:
            log.warning("discarding the inconsistent checkpoint in %s (%s); training starts over", resume_dir, e)
        else:
            # Build optimizer slots first so they restore now, not lazily after step 1.
            optimizer.build(model.trainable_variables)
            ckpt.restore(latest).assert_existing_objects_matched()
            log.info("resumed from %s at epoch %d", latest, epochs)
            return rows[:epochs]
    shutil.rmtree(resume_dir, ignore_errors=True)
    resume_dir.mkdir(parents=True)
    (resume_dir / "run_id").write_text(run_id)
    return []


def _read_history(path: Path) -> list:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _EpochEnd(rows, epochs, n_images, epoch_var, manager, resume_dir):
    """One log line per epoch, then the history row and the checkpoint."""
    import tf_keras

    class EpochEnd(tf_keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.t_start = time.time()
            self.done = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.time()

        def on_epoch_end(self, epoch, logs=None):
            dt = time.time() - self.t0
            self.done += 1
            eta = (time.time() - self.t_start) / self.done * (epochs - epoch - 1)
            row = {"epoch": epoch + 1, "seconds": round(dt, 2)}
            row.update({k: float(v) for k, v in (logs or {}).items() if k != "lr"})
            rows.append(row)
            metrics = " ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds"))
            log.info(
                "epoch %d/%d %s time %.1fs (%.0f img/s) ETA %.0fs", epoch + 1, epochs, metrics, dt, n_images / dt, eta
            )
            # The history row first (atomically), then the checkpoint it describes: killed
            # between the two, the rerun finds one row more than checkpointed epochs and
            # drops it; never a checkpoint without its history.
            with atomic_path(resume_dir / "history.csv") as tmp:
                _write_history(tmp, rows)
            epoch_var.assign(epoch + 1)
            manager.save()

    return EpochEnd()


def _random_generators(model) -> dict:
    """The tf.random.Generator of every random layer (Dropout...). tf_keras tracks them for
    SavedModel only, so a plain checkpoint would restart dropout's random stream."""

    gens = {}
    for layer in all_layers(model):
        rg = getattr(layer, "_random_generator", None)
        if rg is None or not hasattr(rg, "_maybe_init"):
            continue
        rg._maybe_init()  # created lazily on first use; must exist before restore
        if getattr(rg, "_generator", None) is not None:
            gens[layer.name] = rg._generator
    return gens


def train_val(train_npz, test_npz, settings, seed):
    """(x, y) to fit on and the validation split: the test split (as the thesis) or a
    stratified holdout of the training split (`validation: holdout`)."""

    x, y = data_arrays.load_npz(train_npz)
    if settings["validation"] == "holdout":
        tr, va = prepare.holdout_split(y, settings["holdout_fraction"], seed)
        return (x[tr], y[tr]), (x[va], y[va])
    return (x, y), data_arrays.load_npz(test_npz)


def rmsprop(settings, total_steps):
    """The thesis' optimizer (§3.3, §3.5): RMSprop with the learning rate falling linearly
    from `learning_rate` to `final_learning_rate` over the whole run."""
    import tf_keras

    schedule = linear_decay(settings["learning_rate"], settings["final_learning_rate"], total_steps)
    return tf_keras.optimizers.RMSprop(schedule, momentum=settings["momentum"])


def save_model(model, model_out, resume_dir):
    """Save the .h5 atomically (no optimizer), then drop the resume checkpoint."""

    with atomic_path(model_out) as tmp:
        model.save(tmp, save_format="h5", include_optimizer=False)
    shutil.rmtree(resume_dir, ignore_errors=True)


def write_history(path, rows):
    """The per-epoch history CSV, atomically."""

    with atomic_path(path) as tmp:
        _write_history(tmp, rows)


def _write_history(path, rows):
    if not rows:
        Path(path).write_text("epoch\n")
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _ResumedEarlyStopping(rows, patience):
    """EarlyStopping on val_loss whose best/wait survive a resume (rebuilt from history)."""
    import tf_keras

    class ResumedEarlyStopping(tf_keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            losses = [float(r["val_loss"]) for r in rows if "val_loss" in r]
            if losses:
                best = int(np.argmin(losses))
                self.best = losses[best]
                self.wait = len(losses) - 1 - best

    return ResumedEarlyStopping(monitor="val_loss", patience=patience, mode="min")


def linear_decay(start, end, steps):
    import tf_keras

    return tf_keras.optimizers.schedules.PolynomialDecay(start, max(1, steps), end_learning_rate=end, power=1.0)


def fine_tune(
    model, settings, train_xy, val_xy, *, epochs, seed, scaling, num_classes, model_out, history_csv, run_id, callbacks
):
    """Fine-tune an already trained model (pruning, QAT) for `epochs` epochs: RMSprop with
    the settings' linear decay over exactly those steps, resumable from `<model_out>.resume`
    by the same run (`run_id`) only. Returns the history rows."""
    steps_per_epoch = math.ceil(len(train_xy[0]) / settings["batch_size"])
    return fit_resumable(
        model,
        rmsprop(settings, epochs * steps_per_epoch),
        train_xy,
        val_xy,
        epochs=epochs,
        batch_size=settings["batch_size"],
        seed=seed,
        scaling=scaling,
        num_classes=num_classes,
        resume_dir=f"{model_out}.resume",
        run_id=run_id,
        history_csv=history_csv,
        extra_callbacks=callbacks,
    )
