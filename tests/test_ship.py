"""What to ship (config `ship:`, pqgrid/ship/choose.py): on tables of known numbers, the
cell within the budget with the best objective is chosen, a budget no cell meets gets "no
cell qualifies" and the closest cell, a per-class limit rejects a cell that loses one class;
bad `ship:` values are one line each; the smoke run writes its answer."""

import json

import pandas as pd
import pytest
from conftest import SMOKE_RUN
from pqgrid.core.config import check_config
from pqgrid.core.schema import ConfigError
from pqgrid.ship.choose import candidates, choose, markdown
from test_config import SCHEMA, cfg

CLASSES = [f"c{i}" for i in range(10)]
N = 1000  # test images, 100 per class


def _tables(cells, seeds=(0,)):
    """summary, per_class and bench of one architecture `a`: `cells` maps (sparsity, quant)
    to (per-class correct counts of 100, images gained and lost against fp32, p50 µs)."""
    rows, pcs, bench = [], [], []
    for seed in seeds:
        for (sp, q), (correct, gained, lost, p50) in cells.items():
            rows.append({"arch": "a", "seed": seed, "sparsity": sp, "quant": q, "top1": sum(correct) / N,
                         "test_images": N, "gained_vs_fp32": gained, "lost_vs_fp32": lost,
                         "file_bytes": 4_000_000 if q == "fp32" else 1_000_000, "gzip_bytes": 900_000})  # fmt: skip
            pcs += [{"arch": "a", "seed": seed, "sparsity": sp, "quant": q, "class": c, "support": 100, "correct": k,
                     "accuracy": k / 100} for c, k in zip(CLASSES, correct, strict=True)]  # fmt: skip
            bench.append({"arch": "a", "seed": seed, "sparsity": sp, "quant": q, "device": "local", "p50_us": p50})
    return pd.DataFrame(rows), pd.DataFrame(pcs), pd.DataFrame(bench)


FP32 = [80] * 10  # 80.0 %
CELLS = {
    ("0", "fp32"): (FP32, 0, 0, 100.0),
    # int8: 80.0 % with 3 images gained and 3 lost: drop 0 pp, upper bound ~0.5 pp
    ("0", "int8"): (FP32, 3, 3, 40.0),
    # pruned int8: faster, 5 pp lower
    ("50", "int8"): ([75] * 10, 10, 60, 30.0),
    # pruned fp32: within budget but slower than int8
    ("50", "fp32"): ([80] * 10, 2, 2, 90.0),
}


def _answer(cells=CELLS, seeds=(0,), budget=1.0, class_drop=None, objective="p50_us"):
    s, pc, b = _tables(cells, seeds)
    c = candidates(s, pc, b, "local", objective, budget, class_drop)
    return c, choose(c, "local", objective, budget, class_drop)


def test_the_fastest_cell_within_the_budget_is_chosen():
    c, answer = _answer()
    a = answer["architectures"]["a"]
    assert (a["chosen"]["sparsity"], a["chosen"]["quant"]) == ("0", "int8")
    assert [(r["sparsity"], r["quant"]) for r in a["runners_up"]] == [("50", "fp32")], "s50 int8 misses the budget"
    assert a["chosen"]["drop_high_pp"] < 1.0 and a["reference"]["objective"] == 100.0
    assert not c.set_index(["sparsity", "quant"]).loc[("0", "fp32"), "qualifies"], "the reference is no candidate"
    assert answer["overall"]["chosen"]["quant"] == "int8"
    text = markdown(answer)
    assert "**Ship a s0 int8**" in text and "| a | chosen | a s0 int8 | 80.00 |" in text
    # another objective, another answer: the smallest gzip size within budget
    _, by_size = _answer(objective="gzip_bytes")
    assert by_size["architectures"]["a"]["chosen"]["objective"] == 900_000


def test_a_budget_no_cell_meets_names_the_closest_cell():
    _, answer = _answer(budget=0.1)
    a = answer["architectures"]["a"]
    assert a["chosen"] is None and a["closest"]["misses_by_pp"] > 0
    assert (a["closest"]["sparsity"], a["closest"]["quant"]) == ("50", "fp32"), "the fewest discordant images"
    assert answer["overall"]["chosen"] is None
    text = markdown(answer)
    assert "No compressed cell is within 0.1 pp" in text and "no cell qualifies; closest (misses by" in text


def test_a_class_limit_rejects_a_cell_that_loses_one_class():
    """int8 keeps top-1 (80 %) but moves 20 images of one class onto the others: within the
    overall budget, not within a 15 pp per-class limit (100 images per class: a class's
    drop is known to about +-11 pp, so a tighter limit fails every cell)."""
    lopsided = [60] + [82, 82, 82, 82, 82, 82, 82, 82, 84]
    cells = {**CELLS, ("0", "int8"): (lopsided, 3, 3, 40.0)}
    _, free = _answer(cells)
    assert free["architectures"]["a"]["chosen"]["quant"] == "int8"
    assert free["architectures"]["a"]["chosen"]["worst_classes"].startswith("c0 +20.0 pp")
    _, limited = _answer(cells, class_drop=15.0)
    chosen = limited["architectures"]["a"]["chosen"]
    assert (chosen["sparsity"], chosen["quant"]) == ("50", "fp32"), "the next cell within both limits"


def test_without_an_fp32_cell_the_answer_says_what_to_add():
    """An architecture without its unpruned fp32 cell has no drop to measure; the others are
    answered as ever."""
    s, pc, b = _tables(CELLS)
    s2, pc2, b2 = (t[~((t.sparsity == "0") & (t.quant == "fp32"))].assign(arch="b") for t in _tables(CELLS))
    s, pc, b = pd.concat([s, s2]), pd.concat([pc, pc2]), pd.concat([b, b2])
    answer = choose(candidates(s, pc, b, "local", "p50_us", 1.0), "local", "p50_us", 1.0)
    assert answer["architectures"]["b"]["chosen"] is None and answer["architectures"]["a"]["chosen"]["quant"] == "int8"
    assert "| b | no unpruned fp32 cell to measure drops against: add fp32 to quantization.modes |" in markdown(answer)


def test_seeds_that_disagree_widen_the_drop():
    """Three seeds: the drop's interval is the seeds' t-interval widened to the pooled
    per-image one - a cell whose seeds scatter by 2 pp does not fit a 1 pp budget."""
    s, pc, b = _tables(CELLS, seeds=(0, 1, 2))
    s.loc[(s.quant == "int8") & (s.sparsity == "0"), "top1"] = [0.79, 0.80, 0.81]
    s.loc[(s.quant == "int8") & (s.sparsity == "0") & (s.seed == 2), "top1"] = 0.77
    c = candidates(s, pc, b, "local", "p50_us", 1.0)
    r = c.set_index(["sparsity", "quant"]).loc[("0", "int8")]
    assert r.seeds == 3 and r.drop_high_pp > 1.0 and not r.qualifies


@pytest.mark.parametrize(
    "ship, message",
    [
        ({"devices": ["pi"]}, r"ship.devices: 'pi' is not a device of this config \(devices: local\)"),
        ({"objective": "energy_mj"}, r"ship.objective: energy_mj needs a power source on local"),
        ({"objective": "speed"}, r"ship.objective: 'speed' is not allowed \(choose one of p50_us"),
        ({"max_top1_drop": -1}, r"ship.max_top1_drop: -1 is out of range"),
        ({"max_class_drop": "5"}, r"ship.max_class_drop: "),
        (
            {"budget": 1},
            r"ship.budget: unknown key \(allowed: devices, max_candidates, max_class_drop, max_top1_drop, objective, repair\)",
        ),
        ({"repair": "yes"}, r"ship.repair: "),
        ({"max_candidates": 0}, r"ship.max_candidates: 0 is out of range"),
        ({"max_candidates": 13}, r"ship.max_candidates: 13 is out of range"),
        ({"devices": []}, r"ship.devices: "),
    ],
)
def test_bad_ship_values_are_one_line(ship, message):
    with pytest.raises(ConfigError, match=message) as err:
        check_config(cfg(ship=ship, devices={"local": {"type": "local"}}), SCHEMA)
    assert "\n" not in str(err.value)


def test_the_smoke_run_says_what_to_ship(smoke_run):
    """The smoke preset's answer on `local`: a file per device, a chosen or closest cell per
    architecture, the figure beside."""
    res = smoke_run / SMOKE_RUN / "results"
    answer = json.loads((res / "ship/local.json").read_text())
    assert set(answer["architectures"]) == {"mobilenet_tiny", "v3small_tiny"}
    for e in answer["architectures"].values():
        assert e["chosen"] or e["closest"]
    assert (res / "ship/local.md").read_text().startswith("# What to ship on local")
    assert (res / "figures/ship_local.png").stat().st_size > 10_000


def test_the_repair_plan_covers_only_architectures_without_a_qualifying_cell(tmp_path):
    """plan_repair: an architecture with an int8 cell within the budget gets no candidate; one
    without gets max_candidates per seed, in order, even where a pruned fp32 cell qualifies;
    the class limit counts; repair: false and a budget every int8 cell meets plan none."""
    from pqgrid.ship.search import plan_repair

    s, pc, b = _tables(CELLS, seeds=(0, 1))
    # b: no s0 int8 and its s50 int8 loses 5 pp; its s50 fp32 is within the budget, but
    # only an int8 cell spares a repair (search.INT8_ACTIVATIONS)
    other = {k: v for k, v in CELLS.items() if k != ("0", "int8")}
    s2, pc2, b2 = _tables(other, seeds=(0, 1))
    s = pd.concat([s, s2.assign(arch="b")], ignore_index=True)
    pc = pd.concat([pc, pc2.assign(arch="b")], ignore_index=True)
    s.to_csv(tmp_path / "summary.csv", index=False)
    pc.to_csv(tmp_path / "per_class.csv", index=False)
    pd.concat([b, b2.assign(arch="b")], ignore_index=True).to_csv(tmp_path / "bench.csv", index=False)

    def plan(bench="bench.csv", **ship):
        out = tmp_path / "plan.json"
        settings = {"max_top1_drop": 1.0, "max_class_drop": None, "repair": True, "max_candidates": 3, **ship}
        plan_repair(
            summary_csv=tmp_path / "summary.csv",
            per_class_csv=tmp_path / "per_class.csv",
            bench_csv=tmp_path / bench,
            device="local",
            settings=settings,
            out_json=out,
        )
        return json.loads(out.read_text())

    p = plan()
    assert list(p["why"]) == ["b"] and "closest b s50 int8 misses by" in p["why"]["b"]
    assert [(c["arch"], c["seed"], c["token"]) for c in p["candidates"]] == [
        ("b", s, t) for s in (0, 1) for t in ("int8ma", "int8f1", "int8f2")
    ]
    assert plan(repair=False)["candidates"] == [] and plan(max_top1_drop=20.0)["candidates"] == []
    assert {c["arch"] for c in plan(max_class_drop=0.5)["candidates"]} == {"a", "b"}, "no cell meets 0.5 pp per class"


def test_repair_candidates_join_the_choice_and_say_what_they_keep_float():
    """A candidate's rows (summarize_repair's) are judged with the grid's cells: where the
    grid has none within the budget, the candidate is chosen and the answer says what it
    keeps float; a grid cell's own row is never replaced."""
    from pqgrid.ship.choose import repair_section, with_rows

    bad = {k: v for k, v in CELLS.items() if k[1] == "fp32"}
    bad[("0", "int8")] = ([50] * 10, 0, 300, 40.0)
    bad[("50", "fp32")] = ([70] * 10, 0, 100, 90.0)
    s, pc, b = _tables(bad)
    rs, rpc, rb = _tables({("0", "fp32"): (FP32, 0, 0, 999.0), ("0", "int8f1"): (FP32, 2, 2, 60.0)})
    s, pc, b = with_rows(s, rs), with_rows(pc, rpc), with_rows(b, rb)
    assert b[(b.quant == "fp32") & (b.sparsity == "0")].p50_us.tolist() == [100.0], "the grid's fp32 row stays"
    c = candidates(s, pc, b, "local", "p50_us", 1.0)
    answer = choose(c, "local", "p50_us", 1.0)
    assert answer["architectures"]["a"]["chosen"]["quant"] == "int8f1"
    plan = {"why": {"a": "no cell within 1 pp"}, "candidates": [{"arch": "a", "token": "int8f1"}]}
    record = {"arch": "a", "seed": 0, "token": "int8f1", "describes": "int8 with the 1 worst tensor(s) kept float",
              "kept_ops": ["CONV_2D model/conv_first/Relu"], "kept_mac_share": 0.25, "kept_as": "float"}  # fmt: skip
    answer["repair"] = repair_section(c, plan, {"a seed0 int8f1": record})
    text = markdown(answer)
    assert "## Repair of int8: a" in text and "1 ops, 25.0 % of MACs: CONV_2D model/conv_first/Relu" in text
    assert "| int8f1 | int8 with the 1 worst tensor(s) kept float | 80.00 |" in text


def test_int16_candidates_are_planned_only_where_the_device_runs_int16x8_faster(tmp_path):
    """int8x<k> candidates join the plan for a device whose int16x8 cell's p50 interval lies
    wholly below fp32's; not where int16x8 is slower, where the intervals overlap (drift,
    not a difference), or where no int16x8 cell was timed on that device."""
    from pqgrid.ship.search import plan_repair

    cells = {k: v for k, v in CELLS.items() if k[1] == "fp32"}
    cells[("0", "int8")] = ([50] * 10, 0, 300, 40.0)  # int8 ruined: a repair is planned
    cells[("0", "int16x8")] = (FP32, 1, 1, 0.0)
    s, pc, b = _tables(cells, seeds=(0, 1))
    s.to_csv(tmp_path / "summary.csv", index=False)
    pc.to_csv(tmp_path / "per_class.csv", index=False)

    def plan(fp32_us, int16_us):
        b16 = b.copy()
        for q, us in (("fp32", fp32_us), ("int16x8", int16_us)):
            rows = (b16.quant == q) & (b16.sparsity == "0")
            b16.loc[rows, "p50_us"] = us if us is not None else float("nan")
        if int16_us is None:
            b16 = b16[b16.quant != "int16x8"]
        b16.to_csv(tmp_path / "bench.csv", index=False)
        out = tmp_path / "plan.json"
        plan_repair(summary_csv=tmp_path / "summary.csv", per_class_csv=tmp_path / "per_class.csv",
                    bench_csv=tmp_path / "bench.csv", device="local", out_json=out,
                    settings={"max_top1_drop": 1.0, "repair": True, "max_candidates": 5})  # fmt: skip
        p = json.loads(out.read_text())
        return [c["token"] for c in p["candidates"] if c["seed"] == 0], p["int16"]["a"]

    tokens, why = plan([100.0, 104.0], [60.0, 62.0])
    assert tokens == ["int8ma", "int8f1", "int8x1", "int8f2", "int8x2"] and "faster than fp32" in why, why
    tokens, why = plan([100.0, 104.0], [900.0, 950.0])
    assert tokens == ["int8ma", "int8f1", "int8f2", "int8f4", "int8f8"] and "not faster" in why, why
    tokens, why = plan([100.0, 110.0], [90.0, 104.0])  # 7 % apart, intervals overlap
    assert "int8x1" not in tokens and "not faster" in why, why
    tokens, why = plan([100.0, 104.0], None)
    assert "int8x1" not in tokens and "no unpruned int16x8" in why, why
