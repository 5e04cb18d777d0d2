"""The repair search in the DAG (workflow/rules/ship.smk): stage `plan_repair` (a Snakemake
checkpoint) reads the grid's measured cells and names the repair candidates
(pqgrid/ship/repair.py) of every architecture that has no int8 cell within the budget; stage
`summarize_repair` puts the candidates' evaluations and timings into the grid's own long
tables' form, so `choose_ship` compares them with the grid's cells by the same rules.

Every candidate of the plan is built, not one after the other until one qualifies: they are
independent jobs that run side by side, and the worst case (no candidate qualifies, all
`max_candidates` built) is the same either way. Candidates start from each seed's unpruned
fp32 .tflite: int8 is what fails where no cell qualifies, and the drop is measured against
that model."""

from __future__ import annotations

import logging

import pandas as pd

from pqgrid.core import modes
from pqgrid.core.io import atomic_path, write_json, write_text
from pqgrid.evaluate.summary import CELL_KEYS, COLUMNS, PER_CLASS_COLUMNS, collect_bench, summarize
from pqgrid.ship import choose, repair

log = logging.getLogger("pqgrid")

REPAIRED_FROM = "0"  # the sparsity candidates are made at: the unpruned model


# Modes whose activations are int8 (split_quant drops a _sparse suffix): those the int8
# debugger describes, and qat (integer-only). A repair makes an int8 model, so it is worth
# building exactly where the grid has none within the budget: a qualifying pruned fp32 or
# int16x8 cell (int16x8 ran ~11x slower than fp32 on this machine, docs/results) is no
# reason to give up int8's speed - the choice still weighs every cell by the objective.
INT8_ACTIVATIONS = (*modes.names(layer_error=True), *modes.names(from_qat_model=True))


def needs_repair(summary, per_class, settings) -> dict:
    """{arch: why} for every architecture with an fp32 model and no int8 cell within the
    budget - on accuracy alone (the file size as a stand-in objective: every cell has one),
    so new timings never change the plan."""
    budget = dict(max_top1_drop=settings["max_top1_drop"], max_class_drop=settings.get("max_class_drop"))
    c = choose.candidates(summary, per_class, pd.DataFrame(columns=["device"]), None, "file_bytes", **budget)
    out = {}
    for arch, g in c.groupby("arch", sort=False) if len(c) else ():
        int8 = g[g.quant.map(lambda q: modes.split_quant(q)[0] in INT8_ACTIVATIONS)]
        if g.reference.any() and not int8.qualifies.any():
            closest = int8.sort_values("misses_by_pp", kind="stable")
            miss = (f"closest {choose._cell(closest.iloc[0])} misses by {closest.misses_by_pp.iloc[0]:.1f} pp"
                    if len(closest) else "none in the grid")  # fmt: skip
            out[arch] = f"no int8 cell within {settings['max_top1_drop']:g} pp ({miss})"
    return out


def int16_faster(summary, bench, device, arch) -> tuple[bool, str]:
    """Whether the device ran `arch`'s unpruned int16x8 cell faster than its fp32 one, beyond
    the spread of the timing sessions (int16x8's upper bound below fp32's lower bound of the
    p50 interval, as the ship choice computes it) - and the numbers, said in words. Only
    then are int16 repair candidates worth building on that device."""
    p50 = choose.objective_per_cell(summary, bench, device, "p50_us")
    p50 = p50[(p50.arch == arch) & (p50.sparsity == REPAIRED_FROM)].set_index("quant") if len(p50) else p50
    if not {"fp32", "int16x8"} <= set(p50.index):
        return False, f"no unpruned int16x8 and fp32 cell timed on {device}"
    i16, f32 = p50.loc["int16x8"], p50.loc["fp32"]
    faster = bool(i16.objective_hi < f32.objective_lo)  # NaN (one session) is never faster
    verb = "faster" if faster else "not faster"
    return faster, (f"int16x8 p50 {i16.objective:,.1f} µs [{i16.objective_lo:,.1f}, {i16.objective_hi:,.1f}] "
                    f"{verb} than fp32 {f32.objective:,.1f} µs [{f32.objective_lo:,.1f}, {f32.objective_hi:,.1f}] on {device}")  # fmt: skip


def plan_repair(*, summary_csv, per_class_csv, bench_csv, device, settings, out_json):
    """Stage `plan_repair`: the candidates to build, per architecture that needs them and
    every seed that has its fp32 model; none with `repair: false`. int16 candidates only
    where `int16_faster` on this device."""
    summary, per_class, bench = pd.read_csv(summary_csv), pd.read_csv(per_class_csv), pd.read_csv(bench_csv)
    why = needs_repair(summary, per_class, settings) if settings.get("repair", True) else {}
    s = summary.assign(sparsity=summary.sparsity.astype(str))
    fp32 = s[(s.sparsity == REPAIRED_FROM) & (s.quant == "fp32")]
    int16 = {arch: int16_faster(s, bench, device, arch) for arch in why}
    planned = [
        {"arch": arch, "seed": int(seed), "sparsity": REPAIRED_FROM, "token": r.token, "describes": r.describes}
        for arch in why
        for seed in sorted(fp32[fp32.arch == arch].seed.unique())
        for r in repair.plan(settings.get("max_candidates", 6), int16=int16[arch][0])
    ]
    for arch, text in why.items():
        log.info("%s: %s; %d repair candidates planned (%s)", arch, text,
                 sum(p["arch"] == arch for p in planned), int16[arch][1])  # fmt: skip
    write_json(out_json, {"why": why, "int16": {a: t for a, (_, t) in int16.items()}, "candidates": planned})


def summarize_repair(*, eval_jsons, reference_jsons, keras_jsons, per_class_csvs, prediction_npzs, bench_jsons,
                     out_csv, out_md, out_per_class, out_bench):  # fmt: skip
    """Stage `summarize_repair`: the candidates' rows of summary.csv / per_class.csv /
    bench.csv. The fp32 models they are measured against come along (`reference_jsons`, their
    per-class CSVs and predictions last in the lists) for each row's images gained and lost."""
    if not eval_jsons:
        with atomic_path(out_csv) as tmp:
            pd.DataFrame(columns=COLUMNS).to_csv(tmp, index=False)
        with atomic_path(out_per_class) as tmp:
            pd.DataFrame(columns=[*CELL_KEYS, *PER_CLASS_COLUMNS, "accuracy"]).to_csv(tmp, index=False)
        write_text(out_md, "No repair candidates: every architecture has a cell within the budget.\n")
    else:
        summarize(eval_jsons=[*eval_jsons, *reference_jsons], keras_jsons=keras_jsons, per_class_csvs=per_class_csvs,
                  prediction_npzs=prediction_npzs, out_csv=out_csv, out_md=out_md, out_per_class=out_per_class)  # fmt: skip
    collect_bench(bench_jsons=bench_jsons, out_csv=out_bench)
