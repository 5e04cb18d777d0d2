"""The pruning methods (config `pruning.methods`): one record per method with every fact
pqgrid uses about it - read by the config checks, the grid's {sparsity} tokens, the pruning
job and the report; the schema's enum is checked against it (tests/test_config.py). Adding a
method = one entry here and, where it prunes otherwise than tfmot's wrappers, its branch in
models/prune.py (CONTRIBUTING.md, "A pruning method"). No TensorFlow import: the Snakefile
reads this at parse time.

A cell's {sparsity} token carries a method other than magnitude as a prefix ("ch50": channels
at 50 %). Magnitude, the thesis' method, has none ("50"), so adding a method to a config
changes no magnitude cell's path or params."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PruningMethod:
    name: str
    prefix: str  # before the percentage in its cells' {sparsity} token; "" for magnitude
    describes: str  # for people (docs, the schema's text)
    largest_sparsity: int  # the largest percentage the config check lets through (M:N patterns: magnitude only)
    # how models/prune.py prunes: "wrappers" (tfmot's prune_low_magnitude, optionally with a
    # tfmot pruning policy) or "channels" (models/channels.py: filters removed at once)
    prunes: str
    policy: str | None = None  # tfmot.sparsity.keras.<policy> limiting which layers are wrapped
    # the layouts it takes, said in the line that leaves an architecture out of its cells
    layout: str = "any model"


METHODS = {
    m.name: m
    for m in (
        PruningMethod(
            "magnitude",
            "",
            "tfmot's unstructured magnitude pruning of every prunable kernel (the thesis)",
            largest_sparsity=99,
            prunes="wrappers",
        ),  # fmt: skip
        PruningMethod(
            "xnnpack_sparse",
            "xnn",
            "tfmot's PruneForLatencyOnXNNPack policy: 1x1 convolutions only, in the layout XNNPACK's sparse inference takes",
            largest_sparsity=99,
            prunes="wrappers",
            policy="PruneForLatencyOnXNNPack",
            layout="SparseMobileNet's symmetric padding (builder SparseMobileNet)",
        ),  # fmt: skip
        PruningMethod(
            "channels",
            "ch",
            "the filters of lowest L1 norm removed: a smaller dense model (models/channels.py)",
            # 90 %: beyond it a chain of convolutions keeps a filter or two per layer
            largest_sparsity=90,
            prunes="channels",
            layout="a chain of convolutions",
        ),  # fmt: skip
    )
}
DEFAULT = "magnitude"


def method(name: str) -> PruningMethod:
    return METHODS[name]


def method_of(token) -> str:
    """The pruning method of a {sparsity} token or table value; never raises (report code)."""
    token = str(token)
    for m in METHODS.values():
        if m.prefix and token.startswith(m.prefix) and token[len(m.prefix) :].isdigit():
            return m.name
    return DEFAULT


def token_for(name: str, percentage: int) -> str:
    """(method, percentage) -> its cells' {sparsity} token: ("channels", 50) -> "ch50"."""
    return f"{METHODS[name].prefix}{percentage}"
