"""benchmarks/bench.py split: the wall-time split of a finished run, on a run written here."""

import importlib.util

import pytest
from conftest import ROOT

LOG = """Building DAG of jobs...
Using shell: /usr/bin/bash
Provided cores: 2
[Wed Nov 25 05:53:08 2026]
localrule prepare_data:
    output: results/data/train.npz
    jobid: 5
    benchmark: benchmarks/results/data/prepare_data.tsv
Shell command: None
[Wed Nov 25 05:53:12 2026]
Finished jobid: 5 (Rule: prepare_data)
[Wed Nov 25 05:53:12 2026]
localrule train_model:
    output: results/models/m/seed0/trained.h5, results/models/m/seed0/trained.history.csv
    jobid: 4
    threads: 2
    benchmark: benchmarks/results/models/m/seed0/trained.tsv
[Wed Nov 25 05:55:19 2026]
Finished jobid: 4 (Rule: train_model)
[Wed Nov 25 05:55:19 2026]
rule convert_tflite:
    jobid: 9
[Wed Nov 25 05:55:19 2026]
localrule prune_model:
    output: results/models/m/seed0/pruned_60.h5, results/models/m/seed0/pruned_60.history.csv
    jobid: 12
[Wed Nov 25 05:55:19 2026]
localrule benchmark_on_device:
    jobid: 10
[Wed Nov 25 05:55:29 2026]
Finished jobid: 10 (Rule: benchmark_on_device)
[Wed Nov 25 05:55:38 2026]
Finished jobid: 9 (Rule: convert_tflite)
[Wed Nov 25 05:55:40 2026]
Finished jobid: 12 (Rule: prune_model)
[Wed Nov 25 05:55:40 2026]
localrule plot_figure:
    jobid: 11
[Wed Nov 25 05:55:43 2026]
Finished jobid: 11 (Rule: plot_figure)
[Wed Nov 25 05:55:43 2026]
localrule all:
    jobid: 0
[Wed Nov 25 05:55:43 2026]
Finished jobid: 0 (Rule: all)
"""


def test_split_of_a_run_from_its_log_benchmark_files_and_histories(tmp_path):
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (tmp_path / ".snakemake" / "log").mkdir(parents=True)
    (tmp_path / ".snakemake" / "log" / "x.snakemake.log").write_text(LOG)
    tsv = tmp_path / "benchmarks" / "results" / "models" / "m" / "seed0" / "trained.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("s\th:m:s\tmax_rss\n126.50\t0:02:06\t1391\n")  # Snakemake's own: wins over the log's 127 s
    hist = tmp_path / "results" / "models" / "m" / "seed0" / "trained.history.csv"
    hist.parent.mkdir(parents=True)
    hist.write_text("epoch,seconds,loss\n1,60.0,2.3\n2,40.5,2.0\n")
    # a 1-thread pruning job (Snakemake prints no `threads:` for 1) beside the rest
    (hist.parent / "pruned_60.history.csv").write_text("epoch,seconds,loss\n1,12.0,2.3\n")
    r = bench.split_run(tmp_path)
    assert r["jobs"] == 6 and r["wall"] == 155  # 05:53:08 -> 05:55:43, `all` left out
    # fitting: epoch-seconds x threads / cores = 100.5 x 2/2 + 12 x 1/2
    assert r["fitting"] == pytest.approx(106.5) and r["epochs"] == pytest.approx(112.5) and r["cores"] == 2
    # the rest of the fitting jobs in job-seconds: 126.5 (benchmark file) + 21 (log) - 112.5
    assert r["parts"]["fitting jobs, other"] == pytest.approx(35.0)
    assert r["parts"]["data"] == 4 and r["parts"]["conversion"] == 19 and r["parts"]["device"] == 10
    assert r["parts"]["report"] == 3 and r["parts"]["evaluation"] == 0
    # booked core-seconds: the 2-thread training counts twice, every other job once
    assert r["booked"] == pytest.approx(4 + 126.5 * 2 + 19 + 21 + 10 + 3) and r["bound"] == pytest.approx(155.0)
