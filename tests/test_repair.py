"""The repair of int8 (pqgrid/ship/repair.py) on a model one op ruins (tests/ruined_int8.py):
the converter's min/max int8 loses most of its accuracy, the per-channel error finds the op,
and keeping it float brings int8 back to the float model (int16 activations for it, much of
the way)."""

import json

import numpy as np
import pytest
from conftest import synthetic_npz
from ruined_int8 import FIRST, ruined_model

ARCH = {"model": "ruined.h5", "scaling": "tf"}
CELL = {"arch": "ruined", "seed": 0, "sparsity": 0}


@pytest.fixture(scope="module")
def ruined(tmp_path_factory):
    root = tmp_path_factory.mktemp("ruined")
    data = synthetic_npz(root, 60, 30)
    return {**ruined_model(root, data), "data": data, "root": root}


def top1(tflite, data):
    from pqgrid.evaluate.accuracy import predict_tflite

    with np.load(data / "test.npz") as d:
        x, y = d["x"], d["y"]
    return float(np.mean(np.argmax(predict_tflite(tflite, x, 64, 1, scaling="tf"), axis=1) == y))


def test_plan_and_tokens():
    from pqgrid.ship.repair import parse, plan

    assert [r.token for r in plan(6)] == ["int8ma", "int8f1", "int8f2", "int8f4", "int8f8", "int8f16"]
    assert [r.token for r in plan(1)] == ["int8ma"]
    assert [r.token for r in plan(6, int16=True)] == ["int8ma", "int8f1", "int8x1", "int8f2", "int8x2", "int8f4"]
    assert parse("int8f4").worst_tensors == 4 and parse("int8ma").worst_tensors == 0
    assert (
        parse("int8x2").kept_as == "int16" and parse("int8f2").kept_as == "float" and parse("int8x2").worst_tensors == 2
    )
    assert all(parse(r.token) == r for r in plan(12, int16=True))
    for bad in ("int8f0", "int8", "int8f", "fp32", "int8f01", "int8x", "int8x0", "int8y1"):
        with pytest.raises(ValueError, match="no repair candidate"):
            parse(bad)


def test_one_ruinous_op_is_found_and_kept_float(ruined, tmp_path):
    """min/max int8 loses > 20 pp; channel_noise ranks the scaled tensor first where
    rmse/scale does not; int8 with it (its writer and readers) float is within 1 pp of fp32,
    and its record names those ops."""
    from pqgrid.quant.convert import derive_from_fp32
    from pqgrid.quant.layer_error import layer_error
    from pqgrid.ship.repair import repair_tflite

    data, fp32 = ruined["data"], ruined["tflite"]
    common = dict(train_npz=data / "train.npz", arch_cfg=ARCH, calibration_samples=50, seed=0)
    derive_from_fp32(fp32_tflite=fp32, out_tflite=tmp_path / "int8.tflite", mode="int8", **common)
    base = top1(fp32, data)
    assert base > 0.6, base
    assert base - top1(tmp_path / "int8.tflite", data) > 0.20

    table = layer_error(fp32_tflite=fp32, test_npz=data / "test.npz", out_csv=tmp_path / "le.csv", samples=20, **common)
    assert table.sort_values("channel_noise", ascending=False).layer.iloc[0] == FIRST
    assert table.layer.iloc[0] != FIRST  # rmse/scale (the table's own order) misses it
    # its reader computes from the lost channels too; the ops behind it are healthy
    healthy = table[~table.layer.isin([FIRST, "conv_second"])]
    assert table.channel_noise.max() > 0.5 > healthy.channel_noise.max()

    records = {}
    for token in ("int8ma", "int8f1", "int8x1"):
        out = tmp_path / f"{token}.tflite"
        records[token] = repair_tflite(fp32_tflite=fp32, layer_error_csv=tmp_path / "le.csv", out_tflite=out,
                                       out_json=tmp_path / f"{token}.json", cell={**CELL, "quant": token}, **common)  # fmt: skip
        records[token]["top1"] = top1(out, data)
    assert base - records["int8f1"]["top1"] <= 0.01, records
    assert base - records["int8ma"]["top1"] > 0.20  # moving averages do not help here
    kept = records["int8f1"]
    assert kept["kept_op_count"] == 2 and all("CONV_2D" in op for op in kept["kept_ops"]), kept
    assert any(FIRST in op for op in kept["kept_ops"]) and any("conv_second" in op for op in kept["kept_ops"])
    assert 0 < kept["kept_mac_share"] < 1 and records["int8ma"]["kept_op_count"] == 0 and kept["kept_as"] == "float"
    assert json.loads((tmp_path / "int8f1.json").read_text())["worst_tensors"] == kept["worst_tensors"]
    # the same two ops at int16 activations: 256x finer steps over the ruined range win back
    # much of int8's loss (not all: the scaled channel still takes most of the 16 bits)
    x1 = records["int8x1"]
    assert x1["kept_as"] == "int16" and x1["kept_ops"] == kept["kept_ops"], x1
    assert records["int8x1"]["top1"] - top1(tmp_path / "int8.tflite", data) > 0.20, records
    assert np.int16 in _tensor_types(tmp_path / "int8x1.tflite") and np.int8 in _tensor_types(
        tmp_path / "int8x1.tflite"
    )
    assert np.int16 not in _tensor_types(tmp_path / "int8f1.tflite")
    again = tmp_path / "again.tflite"
    repair_tflite(fp32_tflite=fp32, layer_error_csv=tmp_path / "le.csv", out_tflite=again,
                  out_json=tmp_path / "again.json", cell={**CELL, "quant": "int8f1"}, **common)  # fmt: skip
    assert again.read_bytes() == (tmp_path / "int8f1.tflite").read_bytes()  # one thread, in order: repeatable


def _tensor_types(tflite) -> set:
    """The numpy types of the model's tensors."""
    from ai_edge_litert.interpreter import Interpreter

    return {d["dtype"] for d in Interpreter(model_path=str(tflite)).get_tensor_details()}


def _ruined_run(tmp_path, ruined, **ship):
    """The smoke preset on the ruined model's data with only that model (a .tflite
    architecture: its fp32 cell is the file), fp32 and int8, timed on `local`."""
    import yaml
    from conftest import copy_workflow

    wf = copy_workflow(tmp_path / "wf")
    data = ruined["data"]
    with np.load(data / "train.npz") as tr, np.load(data / "test.npz") as te:
        np.savez(tmp_path / "data.npz", x_train=tr["x"], y_train=tr["y"], x_test=te["x"], y_test=te["y"],
                 classes=np.array([f"class{c}" for c in range(10)]))  # fmt: skip
    cfg = yaml.safe_load((wf / "presets/smoke.yaml").read_text())
    cfg.update(
        run_dir="runs/ruined",
        dataset={"source": str(tmp_path / "data.npz"), "seed": 0},
        architectures={"ruined": {"tflite": str(ruined["tflite"]), "scaling": "tf"}},
        grid_architectures=["ruined"],
        pruning={**cfg["pruning"], "sparsities": [0], "schedules": {}},
        quantization={**cfg["quantization"], "modes": ["fp32", "int8"], "subsets": {}, "calibration_samples": 50},
        ship={**cfg["ship"], **ship},
        devices={"local": {"type": "local", "threads": 1, "repeats": 1}},  # one session: the choice, not latency claims
    )
    (wf / "ruined.yaml").write_text(yaml.safe_dump(cfg))
    return wf, ("--configfile", "ruined.yaml")


def test_the_search_repairs_int8_in_the_dag(ruined, tmp_path):
    """No grid cell qualifies (min/max int8 loses > 20 pp); the checkpoint plans int8ma and
    int8f1, both are made, evaluated and timed like cells, and the answer ships int8f1 with
    the ruined op and its reader float. A second run plans nothing; a changed budget reruns
    the plan and the choice only; repair: false plans no candidate."""
    from conftest import ran_rules, snakemake

    wf, args = _ruined_run(tmp_path, ruined, max_candidates=2)
    snakemake(wf, "--cores", "2", "results/ship/local.md", *args, timeout=900)
    ship = wf / "runs/ruined/results/ship"
    answer = json.loads((ship / "local.json").read_text())
    grid = {c["quant"]: c for c in answer["cells"]}
    assert grid["int8"]["drop_pp"] > 20 and not grid["int8"]["qualifies"]
    chosen = answer["architectures"]["ruined"]["chosen"]
    assert chosen["quant"] == "int8f1" and chosen["drop_high_pp"] <= 1.0, chosen
    tried = answer["repair"]["ruined"]["candidates"]
    assert [t["quant"] for t in tried] == ["int8ma", "int8f1"] or {t["quant"] for t in tried} == {"int8ma", "int8f1"}
    f1 = next(t for t in tried if t["quant"] == "int8f1")
    assert any(FIRST in op for op in f1["kept_ops"]) and f1["qualifies"]
    md = (ship / "local.md").read_text()
    assert "Repair of int8: ruined" in md and "int8f1" in md and "kept float" in md
    # no int16x8 cell in this grid: no int16 candidate, and the answer says why
    assert "int16 candidates (int8x<k>): none; no unpruned int16x8 and fp32 cell timed on local." in md, md
    again = snakemake(wf, "-n", "results/ship/local.md", *args)
    (tmp_path / "again.txt").write_text(again.stdout + again.stderr)
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]
    budget = snakemake(
        wf, "--cores", "2", "results/ship/local.md", *args, "--config", "ship={max_top1_drop: 1.5, max_candidates: 2}"
    )
    assert set(ran_rules(budget.stderr)) <= {"plan_repair", "summarize_repair", "choose_ship"}, ran_rules(budget.stderr)
    off = snakemake(wf, "--cores", "2", "results/ship/local.md", *args, "--config", "ship={repair: false}")
    assert json.loads((ship / "local.repair_plan.json").read_text())["candidates"] == [], off.stderr[-2000:]
    assert json.loads((ship / "local.json").read_text())["architectures"]["ruined"]["chosen"] is None


def test_damaged_inputs_stop_a_candidate_with_one_line(ruined, tmp_path):
    """A cut-off fp32 .tflite, or a per-layer error file without channel_noise, each one
    line naming the file; nothing is written."""
    from pqgrid.core.io import DamagedFile
    from pqgrid.ship.repair import repair_tflite

    cut = tmp_path / "cut.tflite"
    cut.write_bytes(ruined["tflite"].read_bytes()[:5000])
    old = tmp_path / "old.layer_error.csv"
    import pandas as pd
    from pqgrid.quant.layer_error import COLUMNS

    pd.DataFrame([dict.fromkeys([c for c in COLUMNS if c != "channel_noise"], 1)]).to_csv(old, index=False)
    common = dict(train_npz=ruined["data"] / "train.npz", arch_cfg=ARCH, calibration_samples=10, seed=0)
    out = tmp_path / "out.tflite"
    for fp32, table, name in ((cut, None, "cut.tflite"), (ruined["tflite"], old, "old.layer_error.csv")):
        with pytest.raises(DamagedFile, match=name) as err:
            repair_tflite(fp32_tflite=fp32, layer_error_csv=table, out_tflite=out, out_json=tmp_path / "r.json",
                          cell={**CELL, "quant": "int8f1"}, **common)  # fmt: skip
        assert "\n" not in str(err.value) and not out.exists() and not (tmp_path / "r.json").exists()


def test_every_op_of_a_model_is_named(tmp_path):
    """The op graph names ops the quantizer has no recipe for (SHAPE, in EfficientNet-B0's
    file): the candidate's record lists them, and nothing stops at them."""
    import tensorflow as tf
    from pqgrid.ship.repair import graph

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.float32)])
    def flatten(x):
        return tf.reshape(x, tf.concat([tf.shape(x)[:1], [-1]], 0))

    conv = tf.lite.TFLiteConverter.from_concrete_functions([flatten.get_concrete_function()], flatten)
    (tmp_path / "shape.tflite").write_bytes(conv.convert())
    ops, _ = graph(tmp_path / "shape.tflite")
    assert "SHAPE" in {name for name, *_ in ops}, ops
