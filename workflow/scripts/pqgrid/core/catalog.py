"""The architecture catalog: every builder pqgrid knows (keras.applications' and its own),
one record each - the keyword arguments a user may set (checked like every other config
value), the input scaling it expects, whether QAT works for it, its smallest input side and
where its function is. Read by the config checks, the model builder, the report's labels and
the schema tests. Pure Python: the Snakefile reads it at parse time."""

from __future__ import annotations

from pqgrid.core import modes
from pqgrid.core.pruning_methods import METHODS

# Builders pqgrid knows (keras.applications and its own), with the keyword arguments a user may set and the
# input scaling the builder's own `preprocess_input` expects:
#   "tf"  -> x / 127.5 - 1 (done by pqgrid before the model, in training, calibration and eval)
#   "raw" -> 0..255 floats, the model rescales inside itself (MobileNetV3, EfficientNet)
# Each keyword argument with its JSON-schema type, checked like every other config value.
_ALPHA = {"type": "number", "exclusiveMinimum": 0, "maximum": 4}
_RATE = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
_V3 = {"alpha": _ALPHA, "minimalistic": {"type": "boolean"}, "dropout_rate": _RATE}
# "qat": whether pqgrid/models/qat.py has been shown to make the builder's models trainable with
# fake quantization (tests/test_qat.py builds each family); others fail before any job.
# "min_size": the smallest input side the builder accepts (keras.applications checks 32;
# SqueezeNet's is torchvision's). "source": "pqgrid" marks the builders of architectures.py
# (written here; no ImageNet weights, `weights:` takes an .h5 file for them).
# "methods": the pruning methods besides magnitude its layout allows (core/pruning_methods.py;
# xnnpack_sparse needs SparseMobileNet's symmetric padding, channels a chain of 1x1 convolutions
# models/channels.py can narrow); a user's model or builder is tried by the pruning job.
# "function": where the builder function is, as "module:attribute" (imported by
# models/builders.py when a model is built, never at parse time; written out in full so that
# jobs/stage_code.py sees which definitions a stage reaches through it).
_KERAS = {"min_size": 32, "source": "keras"}  # "function": tf_keras.applications.<name>, added below
_OWN = {"source": "pqgrid", "input": "tf", "qat": True}
_SQUEEZE = {"dropout": _RATE, "classifier_relu": {"type": "boolean"}}
BUILDERS = {
    "MobileNet": {
        "kwargs": {"alpha": _ALPHA, "depth_multiplier": {"type": "integer", "minimum": 1}, "dropout": _RATE},
        "input": "tf",
        "qat": True,
        "methods": ["channels"],
        **_KERAS,
    },
    "MobileNetV2": {"kwargs": {"alpha": _ALPHA}, "input": "tf", "qat": True, "methods": ["channels"], **_KERAS},
    "SparseMobileNet": {
        "kwargs": {"alpha": _ALPHA, "dropout": _RATE},
        "min_size": 32,
        "methods": ["xnnpack_sparse", "channels"],
        **_OWN,
        "function": "pqgrid.models.architectures:SparseMobileNet",
    },
    "MobileNetV3Large": {"kwargs": _V3, "input": "raw", "qat": True, **_KERAS},
    "MobileNetV3Small": {"kwargs": _V3, "input": "raw", "qat": True, **_KERAS},
    **{f"EfficientNetB{i}": {"kwargs": {}, "input": "raw", "qat": True, **_KERAS} for i in range(8)},
    **{f"EfficientNetV2B{i}": {"kwargs": {}, "input": "raw", "qat": False, **_KERAS} for i in range(4)},
    "SqueezeNet10": {
        "kwargs": _SQUEEZE,
        "min_size": 21,
        **_OWN,
        "function": "pqgrid.models.architectures:SqueezeNet10",
    },
    "SqueezeNet11": {
        "kwargs": _SQUEEZE,
        "min_size": 17,
        **_OWN,
        "function": "pqgrid.models.architectures:SqueezeNet11",
    },
    **{
        f"EfficientNetLite{i}": {"kwargs": {"drop_connect_rate": _RATE}, "min_size": 32, **_OWN, "function": function}
        for i, function in enumerate(
            (
                "pqgrid.models.architectures:EfficientNetLite0",
                "pqgrid.models.architectures:EfficientNetLite1",
                "pqgrid.models.architectures:EfficientNetLite2",
                "pqgrid.models.architectures:EfficientNetLite3",
                "pqgrid.models.architectures:EfficientNetLite4",
            )
        )
    },
}

for _name, _entry in BUILDERS.items():
    _entry.setdefault("function", f"tf_keras.applications:{_name}")

# Keys of an architecture entry that are pqgrid's own; every other key is a builder kwarg.
#   input_size  image side the architecture trains and runs at (data resized once to it)
#   stem        "imagenet" (the builder's strides) or "cifar" (first two stride-2 layers at 1)
#   weights     null (from scratch), "imagenet" (keras.applications download) or an .h5 path
#   scaling     what the model takes (core/runtime.py scale_inputs); default: the builder's
#   model       a trained model file instead of a builder (models/imported.py)
#   custom_objects  the module of that model's own layers
#   classes     the class names of a model file's outputs, in its order (output_order)
ARCH_RESERVED = {
    "builder",
    "training",
    "pruning",
    "qat",
    "input_size",
    "stem",
    "weights",
    "scaling",
    "model",
    "custom_objects",
    "tflite",
    "classes",
}
# What tables and findings call a model given as a file (it has no builder).
MODEL_FILE = "model file"
TFLITE_FILE = "tflite file"
STEMS = ("imagenet", "cifar")


def builder_kwargs(arch_cfg: dict) -> dict:
    return {k: v for k, v in arch_cfg.items() if k not in ARCH_RESERVED}


def is_user_builder(builder) -> bool:
    """`module:function` or `path/to/file.py:function`: a builder of the user's own."""
    return isinstance(builder, str) and builder not in BUILDERS and ":" in builder


def builder_entry(builder: str) -> dict:
    """The catalog's record of a builder; a user's `module:function` gets one of its own:
    any keyword arguments its function takes, no scaling of its own (the config gives it),
    QAT tried (a layer tfmot cannot quantize fails naming it), no smallest size."""
    if builder in BUILDERS:
        return BUILDERS[builder]
    return {
        "kwargs": None,
        "input": None,
        "qat": True,
        "min_size": 1,
        "source": "user",
        "function": builder,
        "methods": ["xnnpack_sparse", "channels"],
    }


def arch_kind(arch_cfg: dict) -> str:
    """How an architecture is given - the one place that asks: "builder" (pqgrid trains it),
    "model" (a trained Keras model file: imported, fine-tuned if asked) or "tflite" (a float
    .tflite: its unpruned cells only). The config check makes it exactly one of them."""
    for kind in ("tflite", "model"):
        if arch_cfg.get(kind):
            return kind
    return "builder"


def has_keras_model(arch_cfg: dict) -> bool:
    """Whether pqgrid holds a Keras model of the architecture (trained or imported); a
    `.tflite` architecture has none: no pruned or QAT cells, its fp32 file is the reference."""
    return arch_kind(arch_cfg) != "tflite"


def convert_source(arch_cfg: dict, quant: str) -> str:
    """What a cell's .tflite is converted from: "fp32_tflite" (a mode derived from the cell's
    fp32 file, modes.Mode.from_fp32: the model is converted once), "qat_model" (its
    quantization-aware fine-tuned copy), "tflite_file" (a `.tflite` architecture's own
    file) or "keras_model" (the trained or pruned model)."""
    if modes.derives_from_fp32(quant):
        return "fp32_tflite"
    if modes.mode(quant).from_qat_model:
        return "qat_model"
    return "keras_model" if has_keras_model(arch_cfg) else "tflite_file"


def accuracy_reference(arch_cfg: dict, quant: str) -> str | None:
    """What a cell's accuracy is compared with (a collapse to chance is a defect): "keras"
    (its Keras model's metrics), for a `.tflite` architecture "fp32_tflite" (its fp32 file's),
    None for that fp32 file itself."""
    if has_keras_model(arch_cfg):
        return "keras"
    return None if quant == "fp32" else "fp32_tflite"


def builder_name(arch_cfg: dict) -> str:
    """The builder of an architecture, or MODEL_FILE / TFLITE_FILE for a model given as a file."""
    return {"builder": arch_cfg.get("builder"), "model": MODEL_FILE, "tflite": TFLITE_FILE}[arch_kind(arch_cfg)]


def input_scaling(arch_cfg: dict):
    return arch_cfg.get("scaling") or builder_entry(arch_cfg["builder"])["input"]


def output_order(arch_cfg: dict, data_classes) -> list | None:
    """Which output of a model file scores each class of the data set (`classes:` names its
    outputs in its own order): order[j] is the output of data class j. None: the same order.
    A Keras model gets its last Dense layer reordered once, when it is imported
    (models/imported.py); a .tflite's scores are reordered where they are read."""
    named = arch_cfg.get("classes")
    if not named or list(named) == list(data_classes):
        return None
    missing = [c for c in data_classes if c not in named]
    if missing or len(named) != len(data_classes):
        extra = [c for c in named if c not in data_classes]
        raise ValueError(
            f"classes: the data set's classes {missing} are not among the model's, {extra} are not the data set's; "
            "name the data set's classes (its folder names or .npz `classes`) in the model's output order"
        )
    return [list(named).index(c) for c in data_classes]


def pruning_methods(arch_cfg: dict) -> list:
    """The pruning methods an architecture can have: magnitude always; the others where its
    builder's layout allows them (a model file or user builder: tried by the pruning job)."""
    if arch_kind(arch_cfg) == "tflite":  # its unpruned cells only (config.from_tflite_file)
        return ["magnitude"]
    if arch_kind(arch_cfg) == "model":
        return list(METHODS)
    return ["magnitude", *builder_entry(arch_cfg["builder"]).get("methods", [])]
