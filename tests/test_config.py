"""Config checks: every bad input stops the run before any job starts, in one line."""

import copy
import re

import pytest
import yaml
from conftest import ROOT, snakemake
from pqgrid.core.config import check_config
from pqgrid.core.grid import grid
from pqgrid.core.schema import ConfigError, load_schema
from pqgrid.jobs.settings import pruning_settings, training_settings

BASE = yaml.safe_load((ROOT / "config.yaml").read_text())
SCHEMA = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def cfg(**changes):
    c = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = c
        keys = [int(k) if k.isdigit() else k for k in path.split("__")]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return c


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"architectures__mobilenet__builder": "MobileNetV9"},
            r"architectures.mobilenet.builder: unknown builder 'MobileNetV9'",
        ),
        (
            {"architectures__mobilenet__alpha_typo": 0.5},
            r"architectures.mobilenet.alpha_typo: unknown key \(MobileNet takes: alpha",
        ),
        ({"quantization__modes": ["fp32", "int4"]}, r"quantization.modes: unknown mode 'int4'"),
        ({"pruning__sparsities": [0, 100]}, r"pruning.sparsities: 100 is not a whole percentage"),
        ({"pruning__sparsities": [0, -5]}, r"pruning.sparsities: -5"),
        (
            {
                "pruning__methods": ["channels"],
                "pruning__sparsities": [0, "2:4"],
                "pruning__schedules": {"2:4": {"frequency_epochs": 1, "steps": 1}},
            },  # fmt: skip
            r"pruning.methods: channels prune to a percentage; add one",
        ),
        (
            {
                "pruning__methods": ["magnitude", "channels"],
                "pruning__sparsities": [0, 95],
                "pruning__schedules": {95: {"frequency_epochs": 1, "steps": 1}},
            },
            r"pruning.sparsities: 95 % is beyond what channels prunes \(up to 90 %\); lower it",
        ),  # fmt: skip
        ({"pruning__methods": ["thinning"]}, r"pruning.methods.*thinning"),
        ({"devices__local__setup": "packages"}, r"devices.local.setup: sets up a board over SSH; remove it"),
        ({"pruning__sparsities": [0, 50]}, r"pruning.schedules: no schedule for sparsity 50"),
        (
            {"pruning__schedules__30": {"frequency_epochs": 0, "steps": 2}},
            r"pruning.schedules.30.frequency_epochs: 0 is out of range \(must be > 0\)",
        ),
        (
            {"pruning__schedules__30": {"frequency_epochs": 1, "steps": 0}},
            r"pruning.schedules.30.steps: 0 is out of range",
        ),
        ({"architectures": {}}, r"architectures: \{\} is empty"),
        ({"quantization__modes": []}, r"quantization.modes: the grid is empty"),
        ({"seeds": []}, r"seeds: the grid is empty"),
        ({"grid_architectures": ["nope"]}, r"grid_architectures: 'nope' is not defined"),
        ({"pruning__exclude": "conv(["}, r"pruning.exclude: invalid regex"),
        ({"pruning__sparsities": [0, "3:8"]}, r"pruning.sparsities: pattern '3:8' is not supported"),
        ({"quantization__modes": ["int8_sparse", "int7_sparse"]}, r"unknown mode 'int7_sparse'"),
        ({"devices": {"pi": {"type": "ssh", "password": "x"}}}, r"devices.pi.password: passwords are not accepted"),
        ({"devices": {"pi": {"type": "ssh"}}}, r"devices.pi.host: an ssh device needs a host"),
        (
            {"devices": {"pi": {"type": "local", "power": {"command": "m", "watts": 3}}}},
            r"devices.pi.power: give exactly one source .* not command and watts",
        ),
        (
            {"devices": {"pi": {"type": "local", "power": {"idle_seconds": 5}}}},
            r"devices.pi.power: give exactly one source .* not none",
        ),
        (
            {"devices": {"pi": {"type": "local", "power": {"rapl": "/sys/x", "where": "device"}}}},
            r"devices.pi.power.where: only a power command runs somewhere",
        ),
        (
            {"devices": {"pi": {"type": "local", "power": {"command": "m", "pattern": "[0-9.]+ W"}}}},
            r"devices.pi.power.pattern: needs one group",
        ),
        (
            {"devices": {"pi": {"type": "local", "power": {"watts": 0}}}},
            r"devices.pi.power.watts: 0 is out of range",
        ),
        (
            {"devices": {"pi": {"type": "local", "power": {"command": "m", "where": "board"}}}},
            r"devices.pi.power.where: 'board' is not allowed \(choose one of host, device\)",
        ),
        (
            {"devices": {"pi": {"type": "local", "cooldown": {"timeout_seconds": 60}}}},
            r"devices.pi.cooldown.*max_temp_c",
        ),
        (
            {"devices": {"pi": {"type": "local", "power": {"command": ""}}}},
            r"devices.pi.power.command: '' should be non-empty",
        ),
        (
            {"devices": {"pi": {"type": "local", "tool": "benchmark_model"}}},
            r"devices.pi.benchmark_model: tool benchmark_model needs",
        ),
        (
            {"devices": {"pi": {"type": "local", "op_profiling": True}}},
            r"devices.pi.op_profiling: only benchmark_model profiles ops",
        ),
        (
            {"devices": {"pi": {"type": "local", "tool": "tflite_bench"}}},
            r"devices.pi.tool: 'tflite_bench' is not allowed \(choose one of harness, benchmark_model, benchmark_litert_model\)",
        ),
        (
            {"devices": {"pi": {"type": "local", "accuracy": "yes"}}},
            r"devices.pi.accuracy: 'yes' is not boolean",
        ),
        ({"dataset__source": "/no/such/cifar.tar.gz"}, r"dataset.source: '/no/such/cifar.tar.gz' does not exist"),
        ({"quantization__qat__epochs": 0}, r"quantization.qat.epochs: 0 is out of range \(must be >= 1\)"),
        ({"training__threads": 0}, r"training.threads: 0 is out of range \(must be >= 1\)"),
        ({"warm_start": "false"}, r"warm_start: 'false' is not boolean"),
        ({"architectures__mobilenet__qat": {"epochs": -1}}, r"architectures.mobilenet.qat.epochs: -1 is out of range"),
        ({"quantization__modes": ["fp32", "int16x4"]}, r"quantization.modes: unknown mode 'int16x4'"),
        (
            {"architectures__mobilenet": {"builder": "EfficientNetV2B0"}},
            r"quantization.modes: qat is not supported for mobilenet \(EfficientNetV2B0",
        ),
        (
            {"quantization__subsets": {"int4": {"sparsities": [0]}}},
            r"quantization.subsets.int4: unknown mode 'int4'",
        ),
        (
            {"quantization__subsets": {"qat": {"sparsities": [50]}}},
            r"quantization.subsets.qat.sparsities: 50 is not in pruning.sparsities",
        ),
        (
            {"quantization__subsets": {"qat": {"architectures": ["nope"]}}},
            r"quantization.subsets.qat.architectures: 'nope' is not in the grid",
        ),
        ({"quantization__subsets": {"qat": {"sparsity": [0]}}}, r"quantization.subsets.qat.sparsity: unknown key"),
        (
            {"architectures__mobilenet__training": {"epoch": 3}},
            r"architectures.mobilenet.training.epoch: unknown key \(allowed: batch_size, batchnorm_momentum",
        ),
    ],
)
def test_check_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message) as err:
        check_config(cfg(**changes), SCHEMA)
    assert "\n" not in str(err.value)


def test_default_config_passes_and_expands():
    check_config(BASE, SCHEMA)
    for preset in ("smoke", "laptop"):
        c = copy.deepcopy(BASE)
        for key, value in yaml.safe_load((ROOT / "presets" / f"{preset}.yaml").read_text()).items():
            c[key] = {**c[key], **value} if isinstance(value, dict) and isinstance(c.get(key), dict) else value
        c["dataset"]["source"] = "synthetic"  # the laptop preset's copy may be absent
        check_config(c, SCHEMA)
    g = grid(BASE)
    assert len(g["arch"]) == 7 and g["sparsity"] == ["0", "30", "60", "90"] and len(g["quant"]) == 7


def test_device_settings_per_stage_and_which_devices_measure_what():
    from pqgrid.jobs.settings import device_settings, devices_with

    c = copy.deepcopy(BASE)
    pi = {"type": "ssh", "host": "pi4", "accuracy": True, "num_runs": 80, "cooldown": {"max_temp_c": 55}}
    pi["power"] = {"command": "usb-meter --watts", "where": "host", "pattern": "([0-9.]+) W"}
    c["devices"] = {"local": {"type": "local"}, "pi4": pi, "plug": {"type": "local", "power": {"watts": 3.5}}}
    check_config(c, SCHEMA)
    assert devices_with(c, "power") == ["pi4", "plug"] and devices_with(c, "accuracy") == ["pi4"]
    # a stage's params hold only what it reads: turning on accuracy does not retime every cell
    assert "accuracy" not in device_settings(c, "pi4", "latency") and "power" not in device_settings(
        c, "pi4", "latency"
    )
    assert "num_runs" not in device_settings(c, "pi4", "energy") and device_settings(c, "pi4", "energy")["power"]
    assert set(device_settings(c, "pi4", "accuracy")) == {"type", "host", "accuracy"}


def test_subsets_run_a_mode_on_part_of_the_grid():
    from pqgrid.core.grid import cells

    c = cfg(
        grid_architectures=["mobilenet", "efficientnet_b0"],
        quantization__modes=["fp32", "qat", "int16x8"],
        quantization__subsets={"qat": {"sparsities": [0, 60]}, "int16x8": {"architectures": ["efficientnet_b0"]}},
    )
    check_config(c, SCHEMA)
    got = {(x["arch"], x["sparsity"], x["quant"]) for x in cells(c)}
    assert len([g for g in got if g[2] == "fp32"]) == 8
    assert {(a, p) for a, p, q in got if q == "qat"} == {
        (a, p) for a in ("mobilenet", "efficientnet_b0") for p in ("0", "60")
    }
    assert {a for a, _, q in got if q == "int16x8"} == {"efficientnet_b0"}
    # an unsupported builder may stay in the grid when qat leaves it out
    c["architectures"]["v2net"] = {"builder": "EfficientNetV2B0"}
    c["grid_architectures"].append("v2net")
    c["quantization"]["subsets"]["qat"]["architectures"] = ["mobilenet"]
    check_config(c, SCHEMA)


def test_qat_settings_merge_and_mark_pqat():
    from pqgrid.jobs.settings import cell_settings, qat_settings

    q0, q60 = qat_settings(BASE, "mobilenet", 0), qat_settings(BASE, "mobilenet_v3_small_min", 60)
    assert q0["epochs"] == 2 and q0["learning_rate"] == 1e-4 and q0["preserve_sparsity"] is False
    assert q60["learning_rate"] == 1e-5 and q60["preserve_sparsity"] is True
    assert cell_settings(BASE, "mobilenet", "60", "qat")["quantization"]["qat"]["preserve_sparsity"] is True
    assert "qat" not in cell_settings(BASE, "mobilenet", "60", "int8")["quantization"]


def test_pattern_and_sparse_mode_tokens():
    from pqgrid.core.grid import sparsity_token, sparsity_value
    from pqgrid.core.modes import split_quant

    c = cfg(pruning__sparsities=[0, 50, "2:4"], quantization__modes=["fp32", "int8_sparse"])
    c["pruning"]["schedules"][50] = c["pruning"]["schedules"]["2:4"] = {"frequency_epochs": 1, "steps": 1}
    check_config(c)
    assert grid(c)["sparsity"] == ["0", "50", "2of4"]
    assert sparsity_value("2of4") == "2:4" and sparsity_value("50") == 50 and sparsity_token("2:4") == "2of4"
    assert split_quant("int8_sparse") == ("int8", True) and split_quant("fp16") == ("fp16", False)
    p = pruning_settings(c, "mobilenet", "2:4")
    assert p["m_by_n"] == [2, 4] and p["target_sparsity"] == 50


def test_overrides_merge():
    t = training_settings(BASE, "mobilenet_v3_small_min")
    assert t["learning_rate"] == 1e-4 and t["epochs"] == BASE["training"]["epochs"]
    p = pruning_settings(BASE, "mobilenet_v3_large_min", 90)
    assert p["learning_rate"] == 1e-5 and p["schedule"] == {"frequency_epochs": 6, "steps": 4}
    assert pruning_settings(BASE, "mobilenet", 30)["learning_rate"] == 1e-4


def test_job_settings_are_what_each_rule_receives():
    from pqgrid.jobs import settings

    c = cfg(
        training__validation="holdout",
        training__batchnorm_momentum=0.9,
        architectures__mobilenet={"builder": "MobileNet", "pruning": {"recalibration_batches": 7}},
    )
    p = settings.pruning_settings(c, "mobilenet", 60)
    # fine-tuning validates like training and keeps its BatchNorm momentum; overrides win
    assert (p["validation"], p["holdout_fraction"], p["batchnorm_momentum"]) == ("holdout", 0.1, 0.9)
    assert p["recalibration_batches"] == 7 and p["target_sparsity"] == 60 and "sparsities" not in p
    assert settings.cell("mobilenet", "1", "2of4", "int8") == {
        "arch": "mobilenet",
        "seed": 1,
        "sparsity": "2:4",
        "quant": "int8",
    }
    assert settings.cell("mobilenet", "0", "30") == {"arch": "mobilenet", "seed": 0, "sparsity": 30}
    cs = settings.cell_settings(c, "mobilenet", "0", "fp32")
    assert cs["pruning"] is None and cs["input_scaling"] == "tf" and cs["quantization"]["mode"] == "fp32"
    assert settings.cell_settings(c, "mobilenet", "60", "int8")["pruning"] == p
    f = settings.figure_settings(BASE, "pareto_gzip")
    assert f["label_top"] == 12 and f["dpi"] == 120 and "per_figure" not in f
    assert "devices: pi4" in settings.findings_context(BASE, ["pi4"])


def _dry(workflow_dir, bad: dict):
    (workflow_dir / "bad.yaml").write_text(yaml.safe_dump(bad))
    return snakemake(workflow_dir, "-n", "all", "--configfile", "bad.yaml", check=False)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"architectures": {"x": {"builder": "NoNet"}}}, "architectures.x.builder: unknown builder 'NoNet'"),
        ({"quantization": {"modes": ["int3"]}}, "quantization.modes: unknown mode 'int3'"),
        ({"pruning": {"sparsities": [0, 99]}}, "pruning.schedules: no schedule for sparsity 99"),
        ({"dataset": {"source": "missing-dir"}}, "dataset.source: 'missing-dir' does not exist"),
        ({"training": {"epochz": 3}}, "epochz"),  # schema: additionalProperties false
    ],
)
def test_snakemake_stops_before_any_job(workflow_dir, bad, message):
    proc = _dry(workflow_dir, bad)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out
    assert "rule " not in out and not (workflow_dir / "results").exists()


def _job_counts(text):
    counts = {}
    table = text.split("Job stats:")[1]
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def test_dry_run_default_grid_counts(workflow_dir):
    proc = snakemake(workflow_dir, "-n", "all")
    counts = _job_counts(proc.stdout)
    assert counts["train_model"] == 7
    assert counts["prune_model"] == 21
    assert counts["qat_model"] == 28
    assert counts["layer_error"] == 28
    assert counts["convert_tflite"] == 196
    assert "gzip_tflite" not in counts  # the convert job writes the .gz too
    assert counts["evaluate_tflite"] == 196
    assert counts["evaluate_keras"] == 28


def _threads_per_rule(stdout):
    """{rule: set of thread counts} of a dry run's jobs (Snakemake prints `threads:` only above 1)."""
    out = {}
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", stdout, flags=re.M):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            t = re.search(r"^\s+threads: (\d+)$", block, re.M)
            out.setdefault(m.group(1), set()).add(int(t.group(1)) if t else 1)
    return out


def test_fitting_jobs_take_training_threads(workflow_dir):
    """Training, pruning and QAT jobs run on `training.threads` (default 1: two fits at once
    on two cores, benchmarks/README P9), an architecture may override it, and it is part of
    the settings their params carry (a change re-fits: float rounding depends on it)."""
    fitting = ("train_model", "prune_model", "qat_model")
    default = _threads_per_rule(snakemake(workflow_dir, "-n", "all", "--cores", "4").stdout)
    assert all(default[r] == {1} for r in fitting) and default["evaluate_keras"] == {1}
    (workflow_dir / "threads.yaml").write_text(
        "training: {threads: 3}\narchitectures:\n  mobilenet: {builder: MobileNet, training: {threads: 2}}\n"
    )
    proc = snakemake(workflow_dir, "-n", "all", "--cores", "4", "--configfile", "threads.yaml")
    threads = _threads_per_rule(proc.stdout)
    assert all(threads[r] == {2, 3} for r in fitting)
    c = cfg(training__threads=3)
    c["architectures"]["mobilenet"]["training"] = {"threads": 2}
    assert training_settings(c, "mobilenet")["threads"] == 2
    assert pruning_settings(c, "mobilenet", 60)["threads"] == 2
    from pqgrid.jobs.settings import qat_settings

    assert qat_settings(c, "mobilenet_v2", 0)["threads"] == 3


def test_per_figure_settings_are_typed_and_named():
    ok = cfg(grid_architectures=["mobilenet"])
    ok["report"]["figures"]["per_figure"]["per_class_pruning_efficientnet_b0"] = {"alpha": 0.01}  # not in this grid
    check_config(ok, SCHEMA)
    for figure, values, message in (
        ("fig_9_9", {}, r"report.figures.per_figure.fig_9_9: no such figure"),
        ("pareto_gzip", {"label_top": "3"}, r"report.figures.per_figure.pareto_gzip.label_top: '3' is not integer"),
        ("pareto_gzip", {"alpha": 0.1}, r"report.figures.per_figure.pareto_gzip.alpha: unknown key"),
        ("fig_4_2_top1_vs_sparsity_fp32", {"x": "size"}, r"\.x: 'size' is not allowed"),
    ):
        bad = cfg()
        bad["report"]["figures"]["per_figure"][figure] = values
        with pytest.raises(ConfigError, match=message):
            check_config(bad, SCHEMA)


def test_forgetting_settings_are_checked():
    ok = cfg()
    ok["report"]["forgetting"] = {"fdr": 0.1, "gallery_tiles": 8}
    check_config(ok, SCHEMA)
    for values, message in (
        ({"fdr": 2}, r"report.forgetting.fdr: 2 is out of range"),
        ({"fdr": 0}, r"report.forgetting.fdr: 0 is out of range"),
        ({"gallery_tiles": 0}, r"report.forgetting.gallery_tiles: 0 is out of range"),
        ({"tiles": 3}, r"report.forgetting.tiles: unknown key \(allowed: fdr, gallery_tiles\)"),
    ):
        bad = cfg()
        bad["report"]["forgetting"] = values
        with pytest.raises(ConfigError, match=message):
            check_config(bad, SCHEMA)


def test_the_readme_raspberry_pi_example_is_a_valid_config():
    """The `devices:` block printed under "Adding a Raspberry Pi" passes the checks as printed."""
    text = (ROOT / "docs" / "devices.md").read_text()
    section = text[text.index("### Adding a Raspberry Pi") :]
    block = section[section.index("```yaml") + 7 : section.index("```", section.index("```yaml") + 7)]
    devices = yaml.safe_load(block)["devices"]
    c = copy.deepcopy(BASE)
    c["devices"] = devices
    check_config(c, SCHEMA)
    assert devices["pi4"]["accuracy"] and devices["pi4"]["power"]["where"] == "host" and devices["pi4"]["cooldown"]


def test_training_deterministic_reaches_pruning_and_qat_only_where_set():
    from pqgrid.jobs.settings import pruning_settings, qat_settings, training_settings

    c = copy.deepcopy(BASE)
    check_config(c, SCHEMA)
    assert "deterministic" not in pruning_settings(c, "mobilenet", 30)  # unset: params of old results unchanged
    c["training"]["deterministic"] = False
    check_config(c, SCHEMA)
    assert training_settings(c, "mobilenet")["deterministic"] is False
    assert (
        pruning_settings(c, "mobilenet", 30)["deterministic"] is False
        and qat_settings(c, "mobilenet", 0)["deterministic"] is False
    )
    c["architectures"]["mobilenet"]["training"] = {"deterministic": True}
    assert pruning_settings(c, "mobilenet", 30)["deterministic"] is True


def test_schema_lists_every_pruning_method():
    """The schema's enum of pruning.methods is exactly METHODS; each record's limit is what the
    config check enforces, and its prefix what the grid's tokens carry."""
    from pqgrid.core.pruning_methods import METHODS, method_of

    text = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")["properties"]["pruning"]
    assert text["properties"]["methods"]["items"]["enum"] == list(METHODS)
    for m in METHODS.values():
        if m.prefix:
            assert method_of(f"{m.prefix}50") == m.name and method_of(f"{m.prefix}x") == "magnitude"
    schedules = {s: {"frequency_epochs": 1, "steps": 1} for s in (50, 91)}
    c = cfg(pruning__methods=["magnitude", "channels"], pruning__sparsities=[0, 50], pruning__schedules=schedules)
    check_config(c, SCHEMA)
    assert "ch50" in grid(c)["sparsity"]
    bad = cfg(pruning__methods=["magnitude", "channels"], pruning__sparsities=[0, 91], pruning__schedules=schedules)
    with pytest.raises(ConfigError, match=f"up to {METHODS['channels'].largest_sparsity} %"):
        check_config(bad, SCHEMA)


def test_an_architectures_kind_is_asked_in_one_place():
    """catalog.arch_kind: a builder, a Keras model file or a .tflite - what the rules and the
    stages branch on; a .tflite architecture has only its unpruned magnitude cells."""
    from pqgrid.core.catalog import arch_kind, pruning_methods

    assert arch_kind({"builder": "MobileNet"}) == "builder"
    assert arch_kind({"model": "m.h5", "scaling": "tf"}) == "model"
    assert arch_kind({"tflite": "m.tflite", "scaling": "tf"}) == "tflite"
    assert pruning_methods({"tflite": "m.tflite"}) == ["magnitude"]
    assert "channels" in pruning_methods({"model": "m.h5"})


def test_every_mode_has_a_converter():
    """quant/convert.py's CONVERTERS has one setup per mode of MODES, no more."""
    from pqgrid.core.modes import MODES
    from pqgrid.quant.convert import CONVERTERS

    assert list(CONVERTERS) == list(MODES)


def test_schema_lists_every_quantization_mode():
    """The schema's description of quantization.modes names exactly the modes of MODES."""
    from pqgrid.core.modes import MODES
    from pqgrid.core.schema import load_schema

    text = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")["properties"]["quantization"]
    described = text["properties"]["modes"]["description"].split(",")[0].split(" | ")
    assert described == list(MODES)


def test_what_a_cell_is_made_from_and_compared_with_by_kind():
    """The wiring common.smk asks the library for, per architecture kind and mode."""
    from pqgrid.core.catalog import accuracy_reference, convert_source, has_keras_model

    builder, model, tflite = {"builder": "MobileNet"}, {"model": "m.h5"}, {"tflite": "m.tflite"}
    assert [has_keras_model(a) for a in (builder, model, tflite)] == [True, True, False]
    assert convert_source(builder, "fp32") == convert_source(model, "int8_sparse") == "keras_model"
    assert convert_source(builder, "int8") == convert_source(tflite, "int16x8") == "fp32_tflite"
    assert convert_source(builder, "qat") == "qat_model" and convert_source(tflite, "fp32") == "tflite_file"
    assert accuracy_reference(builder, "int8") == accuracy_reference(model, "fp32") == "keras"
    assert accuracy_reference(tflite, "int8") == "fp32_tflite" and accuracy_reference(tflite, "fp32") is None


def test_model_file_digests_follow_content_not_path(tmp_path):
    from pqgrid.core.provenance import file_digest, model_file_digests

    (tmp_path / "a.h5").write_bytes(b"weights")
    (tmp_path / "moved.h5").write_bytes(b"weights")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "saved_model.pb").write_bytes(b"graph")
    a, moved = (
        model_file_digests({"model": str(tmp_path / "a.h5")}),
        model_file_digests({"model": str(tmp_path / "moved.h5")}),
    )
    assert a == moved == {"model": file_digest(tmp_path / "a.h5"), "custom_objects": None}
    assert model_file_digests({"model": str(tmp_path / "folder")})["model"] is not None
    assert model_file_digests({"builder": "MobileNet"}) is None
    assert model_file_digests({"builder": "MobileNet", "weights": "imagenet"}) is None
    assert model_file_digests({"builder": "MobileNet", "weights": str(tmp_path / "a.h5")}) == file_digest(
        tmp_path / "a.h5"
    )
