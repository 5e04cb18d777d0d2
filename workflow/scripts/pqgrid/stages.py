"""The work of each rule as one plain function taking paths and plain values, so pytest can
call it without Snakemake. The rule scripts in workflow/scripts/ only unpack `snakemake`."""

from __future__ import annotations

import logging
import math
import re


from . import data as data_mod
from .io import atomic_path, sha256_file, write_json
from .sanity import collapse_message, collapsed

log = logging.getLogger("pqgrid")


def _train_val(train_npz, test_npz, settings, seed):
    x, y = data_mod.load_npz(train_npz)
    if settings["validation"] == "holdout":
        tr, va = data_mod.holdout_split(y, settings["holdout_fraction"], seed)
        return (x[tr], y[tr]), (x[va], y[va])
    return (x, y), data_mod.load_npz(test_npz)


def train_model(train_npz, test_npz, manifest, model_out, history_out, arch_cfg, settings, seed, threads=None):
    """Train one architecture from scratch (thesis §3.3) and save it as .h5."""
    from .tfsetup import tensorflow

    tf, tf_keras = tensorflow(threads, seed)
    from . import models, train

    from .tfsetup import accelerated

    man = data_mod.load_manifest(manifest)
    (x, y), val = _train_val(train_npz, test_npz, settings, seed)
    num_classes = len(man["classes"])
    mixed = accelerated(settings.get("mixed_precision", False), tf)
    xla = accelerated(settings.get("xla", False), tf)
    if mixed:
        tf_keras.mixed_precision.set_global_policy("mixed_float16")
    model = models.build(arch_cfg, num_classes, x.shape[1:], settings["batchnorm_momentum"])
    steps = math.ceil(len(x) / settings["batch_size"]) * settings["epochs"]
    opt = tf_keras.optimizers.RMSprop(
        train.linear_decay(settings["learning_rate"], settings["final_learning_rate"], steps),
        momentum=settings["momentum"],
    )
    resume_dir = f"{model_out}.resume"
    run_id = train.fingerprint(arch_cfg, settings, seed, man["npz_sha256"])
    log.info("training %s: %d images, %d classes, %d epochs (mixed precision %s, XLA %s)",
             arch_cfg["builder"], len(x), num_classes, settings["epochs"], mixed, xla)
    train.fit_resumable(
        model,
        opt,
        (x, y),
        val,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        seed=seed,
        scaling=models.BUILDERS[arch_cfg["builder"]]["input"],
        num_classes=num_classes,
        resume_dir=resume_dir,
        run_id=run_id,
        history_csv=history_out,
        patience=settings["early_stopping_patience"],
        jit_compile=xla,
    )
    if mixed:  # saved models are float32: rebuild under the float32 policy, copy weights
        tf_keras.mixed_precision.set_global_policy("float32")
        weights = model.get_weights()
        model = models.build(arch_cfg, num_classes, x.shape[1:], settings["batchnorm_momentum"])
        model.set_weights(weights)
    with atomic_path(model_out) as tmp:
        model.save(tmp, save_format="h5", include_optimizer=False)
    train.cleanup(resume_dir)


def load_keras(path):
    import tf_keras

    return tf_keras.models.load_model(path, compile=False)


def prune_model(trained_h5, train_npz, test_npz, manifest, model_out, history_out, arch_cfg, settings, seed, threads=None):
    """Magnitude-prune a trained model with tfmot's PolynomialDecay (thesis §3.5, Table 3.1),
    fine-tune, strip the wrappers and save the pruned .h5."""
    from .tfsetup import tensorflow

    tf, tf_keras = tensorflow(threads, seed)
    import tensorflow_model_optimization as tfmot

    from . import models, train

    man = data_mod.load_manifest(manifest)
    (x, y), val = _train_val(train_npz, test_npz, settings, seed)
    num_classes = len(man["classes"])
    base = load_keras(trained_h5)
    models.set_batchnorm_momentum(base, settings.get("batchnorm_momentum"))
    scaling = models.BUILDERS[arch_cfg["builder"]]["input"]
    # Measured now: the wrappers below share (and change) the trained model's layers.
    base_top1 = _top1(base, val, scaling)
    spe = math.ceil(len(x) / settings["batch_size"])
    plan = pruning_schedule(settings["schedule"], spe)
    freq, end, epochs = plan["frequency"], plan["end_step"], plan["epochs"]
    m_by_n = tuple(settings["m_by_n"]) if settings.get("m_by_n") else None
    if m_by_n:
        # A structured pattern is set once, at the first step, then fine-tuned around.
        schedule = tfmot.sparsity.keras.ConstantSparsity(m_by_n[0] / m_by_n[1], begin_step=0, frequency=freq)
    else:
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=settings["schedule"].get("initial_sparsity", 0.0),
            final_sparsity=settings["target_sparsity"] / 100.0,
            begin_step=plan["begin_step"],
            end_step=end,
            frequency=freq,
        )
    exclude = re.compile(settings["exclude"]) if settings.get("exclude") else None
    wrapped, skipped = [], []

    def wrap(layer):
        if exclude and exclude.search(layer.name):
            return layer
        if m_by_n:
            if isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense)) and not isinstance(
                layer, tf_keras.layers.DepthwiseConv2D
            ):
                if layer.kernel.shape[-2] % m_by_n[1]:
                    skipped.append(layer.name)  # input channels cannot hold the pattern
                    return layer
                wrapped.append(layer.name)
                return tfmot.sparsity.keras.prune_low_magnitude(
                    layer, pruning_schedule=schedule, sparsity_m_by_n=m_by_n
                )
            return layer
        if settings.get("depthwise") and isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            # tfmot's registry maps DepthwiseConv2D to [] (no mask, thesis §4.3.3); the
            # wrapper prefers a layer's own get_prunable_weights, so give it one.
            layer.get_prunable_weights = lambda layer=layer: [layer.depthwise_kernel]
            wrapped.append(layer.name)
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        if _prunable_weights(layer):
            wrapped.append(layer.name)
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    model = tf_keras.models.clone_model(base, clone_function=wrap)
    log.info("pruning %d layers to %s over %d epochs: mask updates at steps %s, then %d recovery epochs",
             len(wrapped), f"{m_by_n[0]}:{m_by_n[1]}" if m_by_n else f"{settings['target_sparsity']}%", epochs,
             plan["update_steps"], plan["recovery_epochs"])
    if skipped:
        log.info("left dense (input channels not a multiple of %d): %s", m_by_n[1], ", ".join(skipped))
    opt = tf_keras.optimizers.RMSprop(
        train.linear_decay(settings["learning_rate"], settings["final_learning_rate"], epochs * spe),
        momentum=settings["momentum"],
    )
    resume_dir = f"{model_out}.resume"
    run_id = train.fingerprint(arch_cfg, settings, seed, sha256_file(trained_h5), man["npz_sha256"])
    train.fit_resumable(
        model,
        opt,
        (x, y),
        val,
        epochs=epochs,
        batch_size=settings["batch_size"],
        seed=seed + 1000,  # another order than training's own epochs
        scaling=scaling,
        num_classes=num_classes,
        resume_dir=resume_dir,
        run_id=run_id,
        history_csv=history_out,
        extra_callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    n_bn = models.recalibrate_batchnorm(
        stripped, x, batch_size=settings["batch_size"], batches=settings.get("recalibration_batches", 0),
        scaling=scaling, seed=seed)
    if n_bn:
        log.info("BatchNorm statistics of %d layers re-estimated on %d training batches at the final weights",
                 n_bn, settings["recalibration_batches"])
    top1 = _top1(stripped, val, scaling)
    log.info("validation top-1: trained %.4f -> pruned %.4f", base_top1, top1)
    if collapsed(top1, base_top1, num_classes, len(val[1])):
        log.warning(collapse_message("the pruned model", top1, "the trained model", base_top1, num_classes))
    with atomic_path(model_out) as tmp:
        stripped.save(tmp, save_format="h5", include_optimizer=False)
    train.cleanup(resume_dir)


def _top1(model, xy, scaling):
    from . import models

    x, y = xy
    probs = model.predict(models.scale_inputs(x, scaling), batch_size=256, verbose=0)
    return float((probs.argmax(axis=1) == y).mean())


def pruning_schedule(schedule: dict, steps_per_epoch: int) -> dict:
    """Table 3.1 (epochs) in optimizer steps, as tfmot will execute it.

    tfmot's wrapper counts training steps from 1 and updates the masks whenever
    (step - begin) % frequency == 0 inside [begin, end]. Formula 2.8's n updates therefore land
    on steps begin+Δt, …, begin+nΔt: with Δt one epoch, on the *last batch* of epochs 1…n, each
    followed at once by that epoch's validation. The last one lands on the last step of
    t0 + nΔt epochs, so a run of exactly that length saves weights that were never trained at
    their final mask, and BatchNorm statistics that describe the denser network of one step
    before (this is what left the laptop preset's 90 % models at chance, issue 9).
    `recovery_epochs` adds fine-tuning at the final sparsity after the last update."""
    # Rounded down, so that n updates never spill into an extra epoch (0.5 epochs of 235 steps
    # is 117 steps, not 118).
    freq = max(1, math.floor(schedule["frequency_epochs"] * steps_per_epoch + 1e-9))
    begin = round(schedule.get("begin_epoch", 0) * steps_per_epoch)
    end = begin + schedule["steps"] * freq
    recovery = int(schedule.get("recovery_epochs", 0))
    return {
        "begin_step": begin,
        "end_step": end,
        "frequency": freq,
        "update_steps": [begin + k * freq for k in range(1, schedule["steps"] + 1)],
        "recovery_epochs": recovery,
        "epochs": math.ceil(end / steps_per_epoch) + recovery,
    }


def _prunable_weights(layer):
    """Layers whose kernels tfmot prunes (Conv2D, Dense...). Rescaling, Normalization,
    TFOpLambda and the like have none and are left unwrapped (thesis §3.5 excluded them by a
    name regex); DepthwiseConv2D maps to [] in tfmot's registry, so stays dense."""
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    if not PruneRegistry.supports(layer):
        return []
    return PruneRegistry._weight_names(layer) if layer.__class__ in PruneRegistry._LAYERS_WEIGHTS_MAP else []


def keras_eval(model_h5, train_npz, test_npz, manifest, out_json, arch_cfg, cell, threads=None):
    """Top-1/top-3 on train and test of a Keras model (thesis Table 4.1) + parameter stats."""
    from .tfsetup import tensorflow

    tensorflow(threads, 0)
    from . import models
    from .evaluate import topk_accuracy
    from .io import versions

    model = load_keras(model_h5)
    scaling = models.BUILDERS[arch_cfg["builder"]]["input"]
    out = {"cell": cell, "model_sha256": sha256_file(model_h5), **models.parameter_stats(model)}
    for split, path in (("train", train_npz), ("test", test_npz)):
        x, y = data_mod.load_npz(path)
        probs = model.predict(models.scale_inputs(x, scaling), batch_size=256, verbose=0)
        out[f"top1_{split}"] = topk_accuracy(probs, y, 1)
        out[f"top3_{split}"] = topk_accuracy(probs, y, 3)
    out["manifest_sha256"] = sha256_file(manifest)
    out["versions"] = versions()
    write_json(out_json, out)
    return out
