"""The grid a config describes: its {sparsity} tokens (pruning patterns and methods), its
axes and cells, and what each architecture runs at - read by the rules, the stages and the
report, none of which needs the config checks. Pure Python: read at parse time."""

from __future__ import annotations

import os

from pqgrid.core.catalog import builder_kwargs, has_keras_model, pruning_methods
from pqgrid.core.modes import derives_from_fp32
from pqgrid.core.pruning_methods import METHODS, method_of, token_for

# Structured patterns hardware can exploit: "M:N" = at least M zeros in every N consecutive
# input-channel weights. 2:4 is what sparse tensor cores and XNNPACK-style kernels use.
PATTERNS = {"2:4": (2, 4)}


def sparsity_method(token) -> tuple:
    """A {sparsity} token or config value -> (method, percentage or pattern): "ch50" ->
    ("channels", 50), "50" or 50 -> ("magnitude", 50), "2of4" or "2:4" -> ("magnitude", "2:4")."""
    if token in PATTERNS:
        return "magnitude", token
    method = method_of(token)
    if method != "magnitude":
        return method, int(str(token)[len(METHODS[method].prefix) :])
    return "magnitude", sparsity_value(str(token))


def sparsity_token(value) -> str:
    """Config value -> the `{sparsity}` wildcard: 30 -> "30", "2:4" -> "2of4" (no colon in
    file names; the two kinds can never collide since one is all digits)."""
    if isinstance(value, str) and value in PATTERNS:
        return value.replace(":", "of")
    return str(value)


def sparsity_value(token: str):
    """Inverse of sparsity_token; a method's token stays as it is ("ch50")."""
    if any(m.prefix and token.startswith(m.prefix) for m in METHODS.values()):
        return token
    return token.replace("of", ":") if "of" in token else int(token)


def schedule_for(pruning: dict, sparsity):
    """YAML gives integer keys, `--config` on the command line may give strings."""
    schedules = pruning.get("schedules") or {}
    return schedules.get(sparsity, schedules.get(str(sparsity)))


def grid(config: dict) -> dict:
    """The grid's axes as lists of strings (wildcard values)."""
    return {
        "arch": selected_architectures(config),
        "seed": [str(s) for s in config["seeds"]],
        "sparsity": _sparsity_tokens(config["pruning"]),
        "quant": list(config["quantization"]["modes"]),
    }


def _sparsity_tokens(pruning: dict) -> list:
    """The {sparsity} values of the grid: 0 (the trained model) once, then each method's
    cells - magnitude's bare (percentages and patterns), the others' with their prefix
    (percentages only)."""
    methods = pruning.get("methods", ["magnitude"])
    tokens = [sparsity_token(s) for s in pruning["sparsities"] if s == 0 or "magnitude" in methods]
    for m in methods:
        if m != "magnitude":
            tokens += [token_for(m, s) for s in pruning["sparsities"] if isinstance(s, int) and s > 0]
    return tokens


def from_tflite_file(arch_cfg: dict, sparsity: str, quant: str) -> bool:
    """Whether a cell can be made for the architecture: any for a builder or a Keras model;
    for a `.tflite` only the file itself (fp32) and the modes derived from a float .tflite,
    at sparsity 0 (no Keras model: no pruning, QAT or converter-only modes)."""
    if has_keras_model(arch_cfg):
        return True
    return sparsity_token(sparsity) == "0" and (quant == "fp32" or derives_from_fp32(quant))


def cells(config: dict) -> list:
    """Every (arch, seed, sparsity, quant) of the grid as wildcard dicts: the product of the
    axes, less what `quantization.subsets` leaves out (a mode run on part of the grid)."""
    g = grid(config)
    subsets = config["quantization"].get("subsets") or {}
    out = []
    for a in g["arch"]:
        for s in g["seed"]:
            for p in g["sparsity"]:
                for q in g["quant"]:
                    if not from_tflite_file(config["architectures"][a], p, q):
                        continue
                    if method_of(p) not in pruning_methods(config["architectures"][a]):
                        continue
                    sub = subsets.get(q) or {}
                    if "architectures" in sub and a not in sub["architectures"]:
                        continue
                    if "sparsities" in sub and p not in [sparsity_token(v) for v in sub["sparsities"]]:
                        continue
                    out.append(dict(arch=a, seed=s, sparsity=p, quant=q))
    return out


def selected_architectures(config: dict) -> list:
    chosen = config.get("grid_architectures")
    return list(config["architectures"]) if chosen is None else list(chosen)


def input_size(config: dict, arch: str):
    """The image side an architecture runs at: its own `input_size`, else dataset.image_size
    (None: the source's own size, decided by the data stage)."""
    a = config["architectures"][arch]
    return a.get("input_size", config["dataset"].get("image_size"))


def arch_label(arch_cfg: dict, px: int) -> str:
    """A readable name for tables and figures: builder, the settings that make it differ from
    the plain builder, and the input size, e.g. "MobileNet α0.5 cifar-stem 96px"."""
    given = arch_cfg.get("model") or arch_cfg.get("tflite")  # a file: its name says what it is
    parts = [arch_cfg.get("builder") or os.path.basename(os.path.normpath(given))]
    for key, value in sorted(builder_kwargs(arch_cfg).items()):
        if key == "alpha":
            parts.append(f"α{value:g}")
        elif value is True:
            parts.append(key)
        elif value is not False:
            parts.append(f"{key}={value}")
    if arch_cfg.get("stem", "imagenet") != "imagenet":
        parts.append(f"{arch_cfg['stem']}-stem")
    if arch_cfg.get("weights"):
        parts.append("imagenet-init" if arch_cfg["weights"] == "imagenet" else "pretrained")
    parts.append(f"{px}px")
    return " ".join(parts)


def ship_devices(config: dict) -> list:
    """The devices `ship:` chooses for: those it names, else every device."""
    names = (config.get("ship") or {}).get("devices")
    return list(names) if names else list(config.get("devices") or {})
