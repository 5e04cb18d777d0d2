"""Stage `prune_model`: pruning with tfmot (thesis §3.5, Table 3.1) - magnitude, or for
XNNPACK's sparse inference (`xnnpack_sparse`) - or channel pruning (models/channels.py),
fine-tuning, BatchNorm re-estimation, and the pruned .h5."""

from __future__ import annotations

import logging
import math
import re

from pqgrid.core.catalog import input_scaling
from pqgrid.core.io import sha256_file
from pqgrid.core.pruning_methods import DEFAULT, method
from pqgrid.core.sanity import collapse_message, collapsed
from pqgrid.data import arrays
from pqgrid.jobs.tfsetup import tensorflow
from pqgrid.models import builders, fit
from pqgrid.models.channels import prune_channels
from pqgrid.models.weights import ModelError

log = logging.getLogger("pqgrid")


def prune_model(
    *, trained_h5, train_npz, test_npz, manifest, model_out, history_csv, arch_cfg, settings, seed, threads=None
):
    """Prune a trained model to `settings["target_sparsity"]` (or an M:N pattern), fine-tune,
    strip the wrappers, re-estimate BatchNorm statistics and save the pruned .h5."""

    tensorflow(threads, seed, settings.get("deterministic", True))
    import tensorflow_model_optimization as tfmot

    man = arrays.load_manifest(manifest)
    (x, y), val = fit.train_val(train_npz, test_npz, settings, seed)
    num_classes = len(man["classes"])
    base = builders.load_keras(trained_h5, arch_cfg.get("custom_objects"))
    builders.set_batchnorm_momentum(base, settings.get("batchnorm_momentum"))
    scaling = input_scaling(arch_cfg)
    # Measured now: the wrappers below share (and change) the trained model's layers.
    base_top1 = _top1(base, val, scaling)
    spe = math.ceil(len(x) / settings["batch_size"])
    plan = pruning_schedule(settings["schedule"], spe)
    channels = method(settings.get("method", DEFAULT)).prunes == "channels"
    if channels:
        # filters removed at once, then the schedule's epochs of fine-tuning of the smaller model
        objects = builders.custom_objects(arch_cfg.get("custom_objects"))
        model, _ = prune_channels(base, settings["target_sparsity"] / 100, objects)
    else:
        model, _ = wrap_for_pruning(base, settings, plan)
    fit.fine_tune(
        model,
        settings,
        (x, y),
        val,
        epochs=plan["epochs"],
        seed=seed + 1000,  # another order than training's own epochs
        scaling=scaling,
        num_classes=num_classes,
        model_out=model_out,
        history_csv=history_csv,
        run_id=fit.fingerprint(arch_cfg, settings, seed, sha256_file(trained_h5), man["npz_sha256"]),
        callbacks=[] if channels else [tfmot.sparsity.keras.UpdatePruningStep()],
    )
    stripped = model if channels else tfmot.sparsity.keras.strip_pruning(model)
    batches = settings.get("recalibration_batches", 0)
    n_bn = builders.recalibrate_batchnorm(
        stripped, x, batch_size=settings["batch_size"], batches=batches, scaling=scaling, seed=seed
    )
    if n_bn:
        log.info(
            "BatchNorm statistics of %d layers re-estimated on %d training batches at the final weights", n_bn, batches
        )
    top1 = _top1(stripped, val, scaling)
    log.info("validation top-1: trained %.4f -> pruned %.4f", base_top1, top1)
    if collapsed(top1, base_top1, num_classes, len(val[1])):
        log.warning(collapse_message("the pruned model", top1, "the trained model", base_top1, num_classes))
    fit.save_model(stripped, model_out, f"{model_out}.resume")


def wrap_for_pruning(base, settings, plan):
    """A copy of `base` whose prunable layers are wrapped with tfmot's prune_low_magnitude
    (sharing the trained weights), and a label of the target."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    m_by_n = tuple(settings["m_by_n"]) if settings.get("m_by_n") else None
    schedule = _schedule(tfmot, settings, plan, m_by_n)
    exclude = re.compile(settings["exclude"]) if settings.get("exclude") else None
    wrapped, skipped = [], []
    policy = _method_policy(tfmot, base, method(settings.get("method", DEFAULT)))

    def wrap(layer):
        if exclude and exclude.search(layer.name):
            return layer
        if policy is not None and not policy.allow_pruning(layer):
            return layer  # 1x1 convolutions only: what XNNPACK's sparse kernels take
        extra = {}
        if m_by_n:
            if not _takes_m_by_n(layer, tf_keras):
                return layer
            if layer.kernel.shape[-2] % m_by_n[1]:
                skipped.append(layer.name)  # input channels cannot hold the pattern
                return layer
            extra = {"sparsity_m_by_n": m_by_n}
        elif settings.get("depthwise") and isinstance(layer, tf_keras.layers.DepthwiseConv2D):
            # tfmot's registry maps DepthwiseConv2D to [] (no mask, thesis §4.3.3); the
            # wrapper prefers a layer's own get_prunable_weights, so give it one.
            layer.get_prunable_weights = lambda layer=layer: [layer.depthwise_kernel]
        elif not _prunable_weights(layer):
            return layer
        wrapped.append(layer.name)
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule, **extra)

    model = tf_keras.models.clone_model(base, clone_function=wrap)
    target = f"{m_by_n[0]}:{m_by_n[1]}" if m_by_n else f"{settings['target_sparsity']}%"
    log.info("pruning %d layers to %s over %d epochs: mask updates at steps %s, then %d recovery epochs",
             len(wrapped), target, plan["epochs"], plan["update_steps"], plan["recovery_epochs"])  # fmt: skip
    if skipped:
        log.info("left dense (input channels not a multiple of %d): %s", m_by_n[1], ", ".join(skipped))
    return model, target


def _schedule(tfmot, settings, plan, m_by_n):
    """tfmot's pruning schedule: a structured m:n pattern is set once, at the first step, then
    fine-tuned around; a sparsity grows polynomially to its target over the plan's steps."""
    if m_by_n:
        return tfmot.sparsity.keras.ConstantSparsity(m_by_n[0] / m_by_n[1], begin_step=0, frequency=plan["frequency"])
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=settings["schedule"].get("initial_sparsity", 0.0),
        final_sparsity=settings["target_sparsity"] / 100.0,
        begin_step=plan["begin_step"],
        end_step=plan["end_step"],
        frequency=plan["frequency"],
    )


def _method_policy(tfmot, base, chosen):
    """The tfmot pruning policy of a pruning method that has one (checked against `base`
    before any training), else None."""
    if not chosen.policy:
        return None
    policy = getattr(tfmot.sparsity.keras, chosen.policy)()
    try:
        policy.ensure_model_supports_pruning(base)
    except ValueError as e:
        raise ModelError(
            f"{chosen.name}: tfmot's {chosen.policy} refuses this model ({str(e).splitlines()[0][:200]}); "
            f"use a model with {chosen.layout} or leave {chosen.name} out"
        ) from None
    return policy


def _takes_m_by_n(layer, tf_keras) -> bool:
    """Conv2D/Dense kernels take an M:N pattern; depthwise kernels do not (one input channel)."""
    return isinstance(layer, (tf_keras.layers.Conv2D, tf_keras.layers.Dense)) and not isinstance(
        layer, tf_keras.layers.DepthwiseConv2D
    )


def _top1(model, xy, scaling):
    x, y = xy
    probs = builders.predict_keras(model, x, scaling)
    return float((probs.argmax(axis=1) == y).mean())


def pruning_schedule(schedule: dict, steps_per_epoch: int) -> dict:
    """Table 3.1 (epochs) in optimizer steps, as tfmot will execute it.

    tfmot's wrapper counts training steps from 1 and updates the masks whenever
    (step - begin) % frequency == 0 inside [begin, end]. Formula 2.8's n updates therefore land
    on steps begin+Δt, …, begin+nΔt: with Δt one epoch, on the *last batch* of epochs 1…n, each
    followed at once by that epoch's validation. The last one lands on the last step of
    t0 + nΔt epochs, so a run of exactly that length saves weights that were never trained at
    their final mask, and BatchNorm statistics that describe the denser network of one step
    before (a 90 % model of the laptop preset stays at chance that way).
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


def prunable_layer_names(model) -> list:
    """The layers magnitude pruning wraps in `model` (those with kernels tfmot prunes);
    the others stay dense, whatever their kind."""
    return [layer.name for layer in builders.all_layers(model) if _prunable_weights(layer)]
