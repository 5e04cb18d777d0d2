"""The cluster profile on a real one-node SLURM (slurmctld + slurmd + munge on loopback):
the smoke preset goes through `sbatch`, and every target appears."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SMOKE_RUN, copy_workflow
from slurm_cluster import SlurmCluster, available


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = available()
    if why:
        pytest.skip(f"no SLURM here: {why}")
    c = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield c
    c.stop()


def site_profile(dst: Path):
    """profiles/slurm with its site placeholders filled for the one-node test cluster:
    partition `debug`, no account, no GPU, small memory (2 cores, no GPU here)."""
    prof = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    prof["default-resources"].update(slurm_partition="debug", mem_mb=500, runtime=20, cpus_per_task=1)
    del prof["default-resources"]["slurm_account"]
    prof["slurm-no-account"] = True
    for res in prof["set-resources"].values():
        res.pop("gpu", None)
        res.update(mem_mb=1000, cpus_per_task=1, runtime=20)
    prof["set-threads"] = {k: 1 for k in prof["set-threads"]}
    prof["jobs"] = 4
    # jobs here last seconds: check at once (the plugin adds 10 s per round that finds none done)
    prof["slurm-init-seconds-before-status-checks"] = 1
    dst.mkdir(parents=True)
    (dst / "config.yaml").write_text(yaml.safe_dump(prof))
    return prof


def test_smoke_grid_through_slurm(cluster, tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    site_profile(wf / "profiles" / "site")
    exe = Path(sys.executable).with_name("snakemake")
    # The cluster path is under test, not the grid: one architecture of the smoke preset,
    # unpruned, in fp32 and int8 (tests/test_workflow.py runs the rest) - 2 cells of 1 model,
    # trained 2 epochs instead of 10 (what is asserted is that every job ran where it should
    # and every target appeared, not what the model learnt; a pruning job is one more
    # TensorFlow job like training, ~50 s on the critical path here). The findings, not `all`: what they read is
    # every cluster job; the ~30 tables and figures are local jobs the other tests run.
    (wf / "one_arch.yaml").write_text(
        "grid_architectures: [mobilenet_tiny]\ntraining: {epochs: 2}\npruning: {sparsities: [0]}\n"
        "quantization:\n  modes: [fp32, int8]\n  subsets: null\n"
        "devices: {local: {repeats: 1}}\n"  # one timing session: this test is about where jobs run
    )
    t0 = time.time()
    proc = subprocess.run(
        [
            str(exe),
            "--profile",
            "profiles/site",
            "results/findings.md",
            "--configfile",
            "presets/smoke.yaml",
            "one_arch.yaml",
        ],
        cwd=wf,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    took = time.time() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    res = wf / SMOKE_RUN / "results"
    assert len(list((res / "eval").rglob("s*_*.json"))) == 2
    assert (res / "tables/summary.csv").is_file() and (res / "findings.md").is_file()
    assert len(list((res / "bench/local").rglob("*.json"))) == 2
    # "Job 5 has been submitted with SLURM jobid 1 (log: .../slurm_logs/rule_train_model/...)"
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: [^)]*/slurm_logs/([^/]+)/", out)
    assert submitted, "jobs went through sbatch"
    kinds = [k for _, k in submitted]
    assert kinds.count("rule_train_model") == 1, "the training job was a SLURM job"
    groups = [k for k in kinds if k.startswith("group_cell")]
    # int8 is derived from the fp32 .tflite, so Snakemake joins the connected group: one job
    # per model holds its cells' convert (+ gzip) -> evaluate
    assert len(groups) == 1, "each model's convert (+ gzip) -> evaluate jobs were one group job"
    assert "rule_benchmark_on_device" not in kinds, "benchmarks stay on the submitting host"
    ungrouped = len(submitted) - len(groups) + 2 * 2
    print(
        f"\nSLURM smoke run: {len(submitted)} sbatch submissions ({len(groups)} group jobs; "
        f"{ungrouped} without grouping), {took:.0f}s"
    )


def test_bad_partition_is_reported_not_hung(cluster, tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    prof = site_profile(wf / "profiles" / "site")
    prof["default-resources"]["slurm_partition"] = "no_such_partition"
    (wf / "profiles" / "site" / "config.yaml").write_text(yaml.safe_dump(prof))
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run(
        [str(exe), "--profile", "profiles/site", "results/data/manifest.json", "--configfile", "presets/smoke.yaml"],
        cwd=wf,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "partition" in (proc.stdout + proc.stderr).lower()


def test_every_tensorflow_rule_has_cluster_resources():
    """A rule whose job imports TensorFlow (its conda env is envs/train.yaml) and fits a model
    gets a GPU and a time limit in the SLURM profile; every other TensorFlow rule a time limit
    of its own. Keys the profile README names exist in the config schema."""
    import re as _re

    prof = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["set-resources"]
    rules = {}
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for name, body in _re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(), _re.M):
            rules[name] = body
    tf_rules = {n for n, b in rules.items() if "envs/train.yaml" in b and n not in ("prepare_data",)}
    assert tf_rules >= {"train_model", "prune_model", "qat_model", "convert_tflite", "layer_error", "evaluate_keras"}
    for name in tf_rules - {"evaluate_tflite"}:  # LiteRT evaluation is a grouped 1-core job
        assert name in prof and prof[name].get("runtime"), name
    for name in ("train_model", "prune_model", "qat_model"):
        assert prof[name].get("gpu") == 1, name
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())["properties"]
    readme = (ROOT / "profiles" / "slurm" / "README.md").read_text()
    for key in _re.findall(r"`(\w+): [^`]*` in config.yaml", readme):
        assert key in schema, key
