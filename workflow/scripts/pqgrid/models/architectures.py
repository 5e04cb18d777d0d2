"""Keras builders for architectures no package ships for TensorFlow 2: SqueezeNet 1.0/1.1 and
EfficientNet-Lite0..4. Written by hand because neither keras.applications nor any PyPI
package this project may use provides them; each follows its reference implementation
layer for layer, and tests/test_architectures.py checks the parameter counts at 1000
classes and 224 px against the published ones (REFERENCE_PARAMS).

Both take the keyword arguments of a keras.applications builder (input_shape, weights,
classes, include_top, classifier_activation, pooling) plus `stem`: "cifar" turns the stem's
and the first block's stride-2 into stride 1 (models.py explains the cost)."""

from __future__ import annotations

import math

from pqgrid.models.weights import load_weights_file

# Trainable parameters at 1000 classes, 224 px (EfficientNet-Lite at its own resolution,
# which does not change the count). BatchNorm moving statistics are not trainable and are
# not counted, as in the references.
REFERENCE_PARAMS = {
    # torchvision.models.squeezenet1_0 / squeezenet1_1, `num_params` of IMAGENET1K_V1
    # (https://pytorch.org/vision/stable/models/generated/torchvision.models.squeezenet1_0.html)
    "SqueezeNet10": 1_248_424,
    "SqueezeNet11": 1_235_496,
    # tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder_test.py
    "EfficientNetLite0": 4_652_008,
    "EfficientNetLite1": 5_416_680,
    "EfficientNetLite2": 6_092_072,
    "EfficientNetLite3": 8_197_096,
    "EfficientNetLite4": 13_006_568,
}

# ---------------------------------------------------------------- SqueezeNet
# Iandola et al. 2016; layer plan of torchvision/models/squeezenet.py (and DeepScale's
# Caffe prototxt). Fire module = squeeze 1x1 -> [expand 1x1 | expand 3x3] concatenated.
# Entries: ("pool",) = 3x3/2 max pool in PyTorch's ceil mode; (squeeze, expand) = fire.
_SQUEEZENET = {
    "1.0": {
        "stem": (96, 7),
        "plan": [
            ("pool",),
            (16, 64),
            (16, 64),
            (32, 128),
            ("pool",),
            (32, 128),
            (48, 192),
            (48, 192),
            (64, 256),
            ("pool",),
            (64, 256),
        ],
    },
    "1.1": {
        "stem": (64, 3),
        "plan": [
            ("pool",),
            (16, 64),
            (16, 64),
            ("pool",),
            (32, 128),
            (32, 128),
            ("pool",),
            (48, 192),
            (48, 192),
            (64, 256),
            (64, 256),
        ],
    },
}


def _ceil_pool(x, name, stride):
    """3x3 max pool with PyTorch's ceil_mode=True: zero-pad the bottom/right edge so the last
    partial window counts. Zeros equal -inf padding here: the input comes out of a ReLU."""
    import tf_keras

    n = int(x.shape[1])
    if stride == 1:
        return x
    out = math.ceil((n - 3) / 2) + 1 if n >= 3 else 1
    pad = max(0, (out - 1) * 2 + 3 - n)
    if pad:
        x = tf_keras.layers.ZeroPadding2D(((0, pad), (0, pad)), name=f"{name}_pad")(x)
    return tf_keras.layers.MaxPooling2D(3, strides=2, name=name)(x)


# torchvision's initialisation (kaiming_uniform_ = he_uniform; the classifier conv from
# N(0, 0.01); biases 0). Keras' default glorot_uniform left the ReLU after the classifier
# conv dead within the first epoch on CIFAR-10 (top-1 10 %, measured): SqueezeNet has no
# BatchNorm to rescue it.
_CONV = {"kernel_initializer": "he_uniform", "bias_initializer": "zeros"}


def _fire(x, squeeze, expand, name):
    import tf_keras

    L = tf_keras.layers
    s = L.Conv2D(squeeze, 1, activation="relu", name=f"{name}_squeeze", **_CONV)(x)
    e1 = L.Conv2D(expand, 1, activation="relu", name=f"{name}_expand1x1", **_CONV)(s)
    e3 = L.Conv2D(expand, 3, padding="same", activation="relu", name=f"{name}_expand3x3", **_CONV)(s)
    return L.Concatenate(name=f"{name}_concat")([e1, e3])


def squeezenet(
    version,
    *,
    input_shape,
    classes=1000,
    include_top=True,
    weights=None,
    classifier_activation="softmax",
    pooling=None,
    dropout=0.5,
    classifier_relu=False,
    stem="imagenet",
):
    """SqueezeNet 1.0 or 1.1. The classifier is SqueezeNet's: dropout, 1x1 conv to `classes`,
    global average pooling (no Dense layer) - without the reference's ReLU after the conv
    unless `classifier_relu=True`: trained from scratch with RMSprop on CIFAR-10 (laptop
    preset, 1e-4, torchvision's initialisation) that ReLU died in the first epoch and the
    model stayed at 10 %; it has no weights, so parameter counts are the reference's either
    way. `stem: cifar` sets the stem conv's and the first max pool's stride to 1. Train it at
    a low learning rate: at RMSprop 1e-3 it stays at chance even without that ReLU."""
    import tf_keras

    L = tf_keras.layers
    spec = _SQUEEZENET[version]
    cifar = stem == "cifar"
    name = f"squeezenet{version.replace('.', '')}"
    inputs = L.Input(shape=tuple(input_shape))
    filters, kernel = spec["stem"]
    x = L.Conv2D(filters, kernel, strides=1 if cifar else 2, activation="relu", name="conv1", **_CONV)(inputs)
    pools = 0
    fires = 1
    for step in spec["plan"]:
        if step == ("pool",):
            pools += 1
            x = _ceil_pool(x, f"maxpool{pools}", stride=1 if cifar and pools == 1 else 2)
        else:
            fires += 1
            x = _fire(x, *step, name=f"fire{fires}")
    if include_top:
        x = L.Dropout(dropout, name="drop9")(x)
        classifier_init = tf_keras.initializers.RandomNormal(0.0, 0.01)
        x = L.Conv2D(classes, 1, kernel_initializer=classifier_init, name="conv10")(x)
        if classifier_relu:
            x = L.ReLU(name="conv10_relu")(x)
        x = L.GlobalAveragePooling2D(name="avgpool10")(x)
        x = L.Activation(classifier_activation, name="predictions")(x)
    return _finish(inputs, x, name, include_top, pooling, weights)


def SqueezeNet10(**kwargs):
    return squeezenet("1.0", **kwargs)


def SqueezeNet11(**kwargs):
    return squeezenet("1.1", **kwargs)


# ---------------------------------------------------------------- EfficientNet-Lite
# Tan & Le 2019 / the EfficientNet-Lite release (tensorflow/tpu, models/official/efficientnet/
# lite): EfficientNet-B0's blocks without squeeze-and-excitation, ReLU6 instead of swish, the
# stem (32 filters) and head (1280 filters) not width-scaled, and the first and last stage's
# repeats not depth-scaled. (width, depth, resolution, dropout) as efficientnet_lite_params.
LITE_PARAMS = {
    0: (1.0, 1.0, 224, 0.2),
    1: (1.0, 1.1, 240, 0.2),
    2: (1.1, 1.2, 260, 0.3),
    3: (1.2, 1.4, 280, 0.3),
    4: (1.4, 1.8, 300, 0.3),
}
# (kernel, repeats, filters_in, filters_out, expand_ratio, stride): EfficientNet-B0's stages
_BLOCKS = [
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
]
_BN = {"momentum": 0.99, "epsilon": 1e-3}


def _round_filters(filters, width, divisor=8):
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def _mbconv(x, filters_out, kernel, stride, expand, drop, name):
    import tf_keras

    L = tf_keras.layers
    filters_in = int(x.shape[-1])
    h = x
    if expand != 1:
        h = L.Conv2D(filters_in * expand, 1, padding="same", use_bias=False, name=f"{name}expand_conv")(h)
        h = L.BatchNormalization(**_BN, name=f"{name}expand_bn")(h)
        h = L.ReLU(6.0, name=f"{name}expand_activation")(h)
    h = L.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}dwconv")(h)
    h = L.BatchNormalization(**_BN, name=f"{name}bn")(h)
    h = L.ReLU(6.0, name=f"{name}activation")(h)
    h = L.Conv2D(filters_out, 1, padding="same", use_bias=False, name=f"{name}project_conv")(h)
    h = L.BatchNormalization(**_BN, name=f"{name}project_bn")(h)
    if stride == 1 and filters_in == filters_out:
        if drop > 0:  # stochastic depth, as EfficientNet ("drop connect")
            h = L.Dropout(drop, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(h)
        h = L.Add(name=f"{name}add")([h, x])
    return h


def efficientnet_lite(
    variant,
    *,
    input_shape,
    classes=1000,
    include_top=True,
    weights=None,
    classifier_activation="softmax",
    pooling=None,
    drop_connect_rate=0.2,
    stem="imagenet",
):
    """EfficientNet-Lite0..4. Input as MobileNet ('tf' scaling: x/127.5 - 1; the reference's
    (x - 127)/128 differs by < 1 %). Padding 'same' throughout (the reference's TF1 code
    pads the same way). `stem: cifar` sets the stem's and the first stride-2 stage's
    stride to 1."""
    import tf_keras

    L = tf_keras.layers
    width, depth, _, dropout = LITE_PARAMS[variant]
    cifar = stem == "cifar"
    inputs = L.Input(shape=tuple(input_shape))
    x = L.Conv2D(32, 3, strides=1 if cifar else 2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = L.BatchNormalization(**_BN, name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_activation")(x)
    repeats = [
        r if i in (0, len(_BLOCKS) - 1) else int(math.ceil(depth * r)) for i, (_, r, *_rest) in enumerate(_BLOCKS)
    ]
    total, b = sum(repeats), 0
    first_stride2 = True
    for i, (kernel, _, _, f_out, expand, stride) in enumerate(_BLOCKS):
        f_out = _round_filters(f_out, width)
        for j in range(repeats[i]):
            s = stride if j == 0 else 1
            if s == 2 and cifar and first_stride2:
                s, first_stride2 = 1, False
            elif s == 2:
                first_stride2 = False
            x = _mbconv(x, f_out, kernel, s, expand, drop_connect_rate * b / total, name=f"block{i + 1}{chr(97 + j)}_")
            b += 1
    x = L.Conv2D(1280, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = L.BatchNormalization(**_BN, name="top_bn")(x)
    x = L.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = L.GlobalAveragePooling2D(name="avg_pool")(x)
        x = L.Dropout(dropout, name="top_dropout")(x)
        x = L.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return _finish(inputs, x, f"efficientnet_lite{variant}", include_top, pooling, weights)


def EfficientNetLite0(**kwargs):  # noqa: N802 - named as keras.applications names builders
    return efficientnet_lite(0, **kwargs)


def EfficientNetLite1(**kwargs):  # noqa: N802
    return efficientnet_lite(1, **kwargs)


def EfficientNetLite2(**kwargs):  # noqa: N802
    return efficientnet_lite(2, **kwargs)


def EfficientNetLite3(**kwargs):  # noqa: N802
    return efficientnet_lite(3, **kwargs)


def EfficientNetLite4(**kwargs):  # noqa: N802
    return efficientnet_lite(4, **kwargs)


def _finish(inputs, x, name, include_top, pooling, weights):
    """As keras.applications: without the top, `pooling` avg/max pools the feature map; then
    the model is made and `weights` loaded."""
    import tf_keras

    if not include_top and pooling == "avg":
        x = tf_keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif not include_top and pooling == "max":
        x = tf_keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = tf_keras.Model(inputs, x, name=name)
    _load_weights(model, weights)
    return model


def _load_weights(model, weights):
    """`weights`: None (from scratch) or a path to an .h5 weights file (weights.load_weights_file
    checks it layer by layer first); these builders have no downloadable ImageNet weights."""
    if weights is None:
        return
    load_weights_file(model, weights)


# ---------------------------------------------------------------- MobileNet, sparse layout
# keras.applications' MobileNet pads its stride-2 layers (0, 1), TensorFlow's SAME on even
# sizes. XNNPACK's sparse inference (delegates/xnnpack/README.md, "Sparse Inference"; Elsen
# et al. 2020, "Fast Sparse ConvNets") takes only a subgraph that starts with a 3x3 stride-2
# convolution padded 1 on each side and holds depthwise convolutions padded symmetrically, so
# tfmot's PruneForLatencyOnXNNPack refuses keras' MobileNet. This is MobileNet v1 with every
# strided layer padded 1 on each side (ZeroPadding2D + valid) and a keepdims mean before the
# 1x1 classifier: the same blocks, widths and parameter count.
_MOBILENET_PLAN = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1)]


def SparseMobileNet(  # noqa: N802 - named as keras.applications names builders
    *,
    input_shape,
    classes=1000,
    alpha=1.0,
    dropout=1e-3,
    include_top=True,
    weights=None,
    classifier_activation="softmax",
    pooling=None,
    stem="imagenet",
):
    """MobileNet v1 in the layout XNNPACK's sparse path takes (see above). `stem: cifar`
    sets the first convolution's and the first strided block's stride to 1 (padding stays
    symmetric: 'same' at stride 1 pads 1 on each side)."""
    import tf_keras

    L = tf_keras.layers
    cifar = stem == "cifar"

    def bn_relu(x, name):
        return L.ReLU(6.0, name=f"{name}_relu")(L.BatchNormalization(name=f"{name}_bn")(x))

    inputs = L.Input(shape=tuple(input_shape))
    first = int(32 * alpha)
    if cifar:
        x = L.Conv2D(first, 3, padding="same", use_bias=False, name="conv1")(inputs)
    else:
        x = L.Conv2D(first, 3, strides=2, use_bias=False, name="conv1")(L.ZeroPadding2D(1, name="conv1_pad")(inputs))
    x = bn_relu(x, "conv1")
    strided = 0
    for i, (filters, stride) in enumerate(_MOBILENET_PLAN, start=1):
        if stride == 2:
            strided += 1
        if stride == 2 and not (cifar and strided == 1):
            x = L.ZeroPadding2D(1, name=f"conv_pad_{i}")(x)
            x = L.DepthwiseConv2D(3, strides=2, use_bias=False, name=f"conv_dw_{i}")(x)
        else:
            x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"conv_dw_{i}")(x)
        x = bn_relu(x, f"conv_dw_{i}")
        x = bn_relu(L.Conv2D(int(filters * alpha), 1, use_bias=False, name=f"conv_pw_{i}")(x), f"conv_pw_{i}")
    if include_top:
        x = L.GlobalAveragePooling2D(keepdims=True, name="global_average_pooling2d")(x)
        x = L.Dropout(dropout, name="dropout")(x)
        x = L.Conv2D(classes, 1, name="conv_preds")(x)
        x = L.Reshape((classes,), name="reshape_2")(x)
        x = L.Activation(classifier_activation, name="predictions")(x)
    return _finish(inputs, x, f"sparse_mobilenet_{alpha:g}", include_top, pooling, weights)
