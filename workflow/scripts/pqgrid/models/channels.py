"""Channel (filter) pruning: the filters of lowest L1 norm removed from every convolution
whose channels can be narrowed, the network rebuilt smaller and dense (Li et al. 2017,
"Pruning Filters for Efficient ConvNets"). Unlike magnitude pruning, the `.tflite` then has
fewer parameters and multiply-accumulates, so size and latency fall on any runtime.

A convolution's filters can go when its output reaches exactly one next convolution (or a
Dense layer) through layers that keep channels one to one - BatchNorm, activations,
padding, dropout, depthwise convolutions, global pooling - each with one consumer: those
layers then lose the same channels, the next convolution the same input channels. A
convolution feeding an Add, a Concatenate, a squeeze-excite Multiply or the model's output
keeps its filters (narrowing it would need the other branch narrowed alike). No library
does this for Keras functional models (tfmot prunes weights, not channels); written here.

What MobileNet v1 gives: every convolution but the classifier narrowed. MobileNetV2: the
expansion convolutions (their projections feed residual Adds and stay)."""

from __future__ import annotations

import logging

import numpy as np

from pqgrid.models.weights import ModelError

log = logging.getLogger("pqgrid")

# Layers that keep channels one to one: they lose the channels of the convolution before them.
FOLLOWING = {
    "BatchNormalization",
    "ReLU",
    "Activation",
    "ZeroPadding2D",
    "Dropout",
    "DepthwiseConv2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "MaxPooling2D",
    "AveragePooling2D",
}
# Layers whose input channels can be narrowed (they end a chain).
CONSUMERS = {"Conv2D", "Dense"}


def _graph(cfg: dict):
    """{layer: [inbound layer names]} and {layer: [consumer names]} of a functional config."""
    inbound = {}
    for layer in cfg["layers"]:
        names = [edge[0] for node in layer.get("inbound_nodes", []) for edge in node]
        inbound[layer["config"]["name"]] = names
    consumers = {name: [] for name in inbound}
    for name, sources in inbound.items():
        for source in sources:
            consumers[source].append(name)
    for out in cfg["output_layers"]:
        consumers[out[0]].append(None)  # the model's output: never narrowed
    return inbound, consumers


def prunable_chains(model) -> list:
    """[(convolution, [following layers], consumer)] for every convolution whose filters
    can be removed (see the module docstring)."""
    cfg = model.get_config()
    kinds = {layer["config"]["name"]: layer["class_name"] for layer in cfg["layers"]}
    layer_cfg = {layer["config"]["name"]: layer["config"] for layer in cfg["layers"]}
    _, consumers = _graph(cfg)
    chains = []
    for name, kind in kinds.items():
        if kind != "Conv2D" or layer_cfg[name].get("groups", 1) != 1:
            continue
        following, at = [], name
        while True:
            nxt = consumers[at]
            if len(nxt) != 1 or nxt[0] is None:
                break
            at = nxt[0]
            k = kinds[at]
            if k in CONSUMERS:
                chains.append((name, following, at))
                break
            if k not in FOLLOWING or (k == "DepthwiseConv2D" and layer_cfg[at].get("depth_multiplier", 1) != 1):
                break
            following.append(at)
    return chains


def prune_channels(model, share: float, custom_objects=None):
    """A new, narrower model: each prunable convolution keeps the round((1 - share) * n)
    filters of largest L1 norm (at least one), with the weights of every kept channel
    copied. Returns (model, report)."""
    import tf_keras

    chains = prunable_chains(model)
    if not chains:
        raise ModelError(
            "channels: no convolution of this model can be narrowed (each feeds an Add, a Concatenate, a "
            "Multiply or the output); prune it with magnitude instead"
        )
    keep, role = {}, {}  # conv -> kept filter indices; layer -> (kind, producer)
    for conv, following, consumer in chains:
        kernel = model.get_layer(conv).get_weights()[0]
        n = kernel.shape[-1]
        k = max(1, round((1 - share) * n))
        norms = np.abs(kernel).reshape(-1, n).sum(axis=0)
        keep[conv] = np.sort(np.argsort(-norms, kind="stable")[:k])
        for layer in following:
            role[layer] = conv
        role.setdefault(("in", consumer), conv)
    cfg = model.get_config()
    for layer in cfg["layers"]:
        name = layer["config"]["name"]
        if name in keep:
            layer["config"]["filters"] = int(len(keep[name]))
    new = tf_keras.Model.from_config(cfg, custom_objects=custom_objects)
    for layer in new.layers:
        weights = model.get_layer(layer.name).get_weights()
        if weights:
            layer.set_weights(_kept_weights(layer, weights, keep, role))
    before = sum(int(np.prod(w.shape)) for w in model.weights)
    after = sum(int(np.prod(w.shape)) for w in new.weights)
    channels = sum(model.get_layer(c).filters for c in keep)
    kept = sum(len(v) for v in keep.values())
    report = {
        "narrowed_convolutions": len(keep),
        "channels_removed_share": 1 - kept / channels,
        "parameters_before": before,
        "parameters_after": after,
    }
    log.info("channels: %d convolutions narrowed, %d of %d filters kept; parameters %d -> %d",
             len(keep), kept, channels, before, after)  # fmt: skip
    return new, report


def _kept_weights(layer, weights, keep, role) -> list:
    """A narrowed model's layer's weights, copied from the original's `weights`: a layer
    following a narrowed convolution loses its channels in every per-channel weight; a
    consumer loses the matching input channels; a narrowed convolution its own filters."""
    name = layer.name
    if name in role:
        idx = keep[role[name]]
        if type(layer).__name__ == "DepthwiseConv2D":
            return [weights[0][:, :, idx, :], *(w[idx] for w in weights[1:])]
        return [w[idx] for w in weights]
    if ("in", name) in role:
        idx = keep[role[("in", name)]]
        kernel = weights[0]
        weights[0] = kernel[idx] if kernel.ndim == 2 else kernel[:, :, idx, :]
    if name in keep:
        weights = [weights[0][..., keep[name]], *(w[keep[name]] for w in weights[1:])]
    return weights
