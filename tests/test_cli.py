"""Mistakes at the command line get one line naming them and the fix, before any job:
unknown targets with the nearest ones of the grid, --config values typed as YAML, helper
scripts' --help that touches nothing."""

import subprocess
import sys

import pytest
from conftest import ROOT, SMOKE, copy_workflow, snakemake
from pqgrid.jobs.cli import CommandLineError, typed_config, unknown_targets


def test_config_lists_and_mappings_are_yaml():
    assert typed_config(["seeds=[0,1]", "training={epochs: 2}", "warm_start=False"]) == {
        "seeds": [0, 1],
        "training": {"epochs": 2},
    }
    with pytest.raises(CommandLineError, match=r"space after the colon \(\{epochs: 2\}\)"):
        typed_config(["training={epochs:2}"])
    with pytest.raises(CommandLineError, match="not valid YAML") as err:
        typed_config(["seeds=[0,1"], {"seeds": [0], "training": {"epochs": 10}})
    assert "e.g. 'seeds=[0]'" in str(err.value), err.value  # an example for the key at hand
    with pytest.raises(CommandLineError, match=r"e.g. 'training=\{epochs: 10\}'"):
        typed_config(["training={epochs: [}"], {"seeds": [0], "training": {"epochs": 10, "batch_size": 64}})


def test_several_configfile_flags_are_one_line():
    from pqgrid.jobs.cli import one_configfile_flag

    one_configfile_flag(["-n", "all", "--configfile", "a.yaml", "b.yaml", "--cores", "1"])  # one flag: fine
    one_configfile_flag(["--configfiles", "a.yaml"])
    with pytest.raises(CommandLineError, match=r"keeps only the last \(c.yaml\).*--configfile a.yaml b.yaml c.yaml$"):
        one_configfile_flag(["--configfile", "a.yaml", "b.yaml", "-n", "--configfile=c.yaml"])


def test_unknown_target_names_the_nearest():
    grid = ["results/eval/mobilenet/seed0/s60_int8.json", "results/figures/pareto_gzip.png"]
    line = unknown_targets(["results/eval/mobilenett/seed0/s60_int8.json"], lambda p: False, lambda: grid, {"all"})
    assert "nearest in this grid: results/eval/mobilenet/seed0/s60_int8.json" in line
    assert unknown_targets(["all"], lambda p: False, lambda: grid, {"all"}) is None
    assert unknown_targets(["x"], lambda p: True, lambda: grid, set()) is None


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("cli") / "wf")


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["results/eval/mobilenett/seed0/s50_int8.json"],
            "nearest in this grid: results/eval/mobilenet_tiny/seed0/s50_int8.json",
        ),
        (["results/figures/pareto_gz.png"], "nearest in this grid: results/figures/pareto_gzip.png"),
        (["results/eval/mobilenet_tiny/seed0/s60_int8.json"], "no rule makes this file in this grid"),
        (["results/eval/mobilenet_tiny/seed7/s50_int8.json"], "no rule makes this file in this grid"),
        (["all", "--config", "training={epochs:2}"], "YAML needs a space after the colon"),
        (
            ["all", "--configfile", "presets/seeds-0-1.yaml"],
            "--configfile is given 2 times and Snakemake keeps only the last (presets/seeds-0-1.yaml); name every "
            "file after one flag, later ones laid over earlier: --configfile presets/smoke.yaml presets/seeds-0-1.yaml",
        ),
    ],
    ids=["arch", "figure", "sparsity", "seed", "config-yaml", "two-configfile-flags"],
)
def test_command_line_mistakes_are_one_line(wf, args, expected):
    proc = snakemake(wf, "-n", *args[:1], *SMOKE, *args[1:], check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("pqgrid")]
    assert len(lines) == 1 and expected in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_config_values_typed_as_yaml_reach_the_grid(wf):
    proc = snakemake(wf, "-n", "all", *SMOKE, "--config", "seeds=[0,1]")
    assert "results/models/mobilenet_tiny/seed1/trained.h5" in proc.stdout


# every benchmark and every test helper a person runs by hand (tests/test_helpers.py: the servers)
BY_HAND = sorted(f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py")) + [
    "tests/loopback_device.py", "tests/compare_runs.py", "tests/arm_board.py"]  # fmt: skip


@pytest.mark.parametrize("script", BY_HAND)
def test_helper_scripts_have_help_and_touch_nothing(script, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / script), "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and "usage" in (proc.stdout + proc.stderr).lower()
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_creates_no_folder_and_names_where_results_go(tmp_path):
    """`snakemake -n` of a preset not run yet plans every job and leaves nothing behind (no
    runs/<preset>/, no .snakemake/); its first line names the absolute run folder, also when
    started from another folder with `-s` (the run folder is relative to where you stand)."""
    from conftest import SMOKE_RUN

    wf = copy_workflow(tmp_path / "wf")
    proc = snakemake(wf, "-n", "all", *SMOKE)
    first = next(line for line in proc.stdout.splitlines() if line.startswith("pqgrid:"))
    assert f"would run in {wf / SMOKE_RUN} (" in first, first
    assert not (wf / SMOKE_RUN).exists() and not (wf / "runs").exists() and not (wf / ".snakemake").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = snakemake(elsewhere, "-s", str(wf / "Snakefile"), "-n", "all", "--configfile", str(wf / SMOKE[1]))
    assert f"would run in {elsewhere / SMOKE_RUN} (" in proc.stdout, proc.stdout[:500]
    assert list(elsewhere.iterdir()) == []
    # `--directory DIR` names the run folder itself: the plan is for it, not for a stand-in
    moved = tmp_path / "moved"
    moved.mkdir()
    proc = snakemake(wf, "-n", "all", *SMOKE, "--directory", str(moved))
    assert f"would run in {moved} (" in proc.stdout, proc.stdout[:500]
