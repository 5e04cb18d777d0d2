"""An ARM board in the test run (tests/arm_board.py): Debian arm64's Python and the aarch64
wheels of numpy and LiteRT under qemu as a Cortex-A72, reached over a real sshd. The smoke
grid runs on it beside `local`: the upload, the harness and on-device accuracy run ARM code,
and the board says it is emulated - so its timing is marked and no finding uses it."""

import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import SMOKE_RUN, SSHServer, ran_rules, snakemake

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def arm_python():
    if not (
        shutil.which("qemu-aarch64-static") and (shutil.which("debootstrap") or Path("/usr/sbin/debootstrap").exists())
    ):
        pytest.skip(
            "qemu-user-static and debootstrap not installed (apt-get install qemu-user-static debootstrap; .ci/run does)"
        )
    from arm_board import build

    return build()


def test_the_emulated_board_knows_it_is_one(arm_python):
    """The harness' device facts on the board: aarch64, the Pi's CPU, emulated (its own code
    aarch64, the process that started it x86_64); on this machine: not emulated."""
    import subprocess

    from pqgrid.core.runtime import emulation

    harness = Path(__file__).resolve().parents[1] / "workflow/scripts/pqgrid/device/harness.py"
    code = f"import runpy; h = runpy.run_path({str(harness)!r}); import json; print(json.dumps(h['device_facts']()))"
    facts = json.loads(subprocess.run([str(arm_python), "-c", code], check=True, capture_output=True, text=True).stdout)
    assert facts["machine"] == "aarch64" and "Raspberry Pi 4" in facts["cpu_model"]
    assert facts["emulation"] == {"emulated": True, "code": "aarch64", "host_code": "x86_64"}
    here = emulation()
    assert here is not None and here["emulated"] is False, "this machine runs its own code"


def test_the_smoke_grid_on_an_emulated_raspberry_pi_pqgrid_set_up(arm_python, smoke_run, tmp_path):
    """A bare emulated board (its Python has neither numpy nor LiteRT) with `setup: packages`:
    the setup job checks it (aarch64, Python 3.11, glibc, space) and sends up the pinned
    packages built here for aarch64; then the smoke grid's unpruned v3small_tiny on `local` and on
    the board with on-device accuracy: every mode (fp32, int8, int16x8, QAT) gives the host's answers
    on ARM kernels (0 differing images), the board's timing is marked emulated in the JSON, bench.csv and
    table_devices, and the timing findings leave it out while finding 19 compares ARM with
    x86. A second setup finds the packages in place. The finished smoke run is copied (with
    its files' dates), so only the board's jobs and what reads them run: the models and the
    host's evaluation are the smoke run's."""
    import subprocess

    from pqgrid.core.devices import board_pins

    bare = arm_python.with_name("python-arm64-bare")
    assert subprocess.run([str(bare), "-c", "import numpy"], capture_output=True).returncode != 0, "a bare board"
    wf = tmp_path / "wf"
    shutil.copytree(smoke_run, wf, symlinks=True)  # copies keep their mtimes: nothing upstream is stale
    (tmp_path / "sshd").mkdir()
    server = SSHServer(tmp_path / "sshd")
    try:
        # one timing session: an emulator's timing feeds no finding (and each costs ~10 s here)
        board = server.device(python=str(bare), num_runs=5, timeout=900, accuracy=True, setup="packages", repeats=1)
        # v3small_tiny's 4 unpruned cells (every mode: fp32, int8, int16x8, QAT) on both
        # devices; its pruned cells and mobilenet_tiny's would add only more of the same ops
        # (zeros are ordinary weights to these kernels), ~10 s a cell under emulation
        overlay = {
            "grid_architectures": ["v3small_tiny"],
            "pruning": {"sparsities": [0]},
            "devices": {"local": {"type": "local", "threads": 1}, "armboard": board},
        }
        (wf / "arm.yaml").write_text(yaml.safe_dump(overlay))
        args = ("--configfile", "presets/smoke.yaml", "arm.yaml")
        # the tables and findings asserted below, not `all`: the figures are the smoke run's
        # tests' (tests/test_report.py), and rebuilding them here costs ~25 jobs
        targets = [f"results/{f}" for f in ("tables/bench.csv", "tables/table_devices.csv", "findings.csv")]
        proc = snakemake(wf, "--cores", "2", *targets, *args, timeout=1800)
        ran = ran_rules(proc.stdout + proc.stderr)
        assert "train_model" not in ran and ran.count("accuracy_on_device") == 4, "the board's jobs only"
        results = wf / SMOKE_RUN / "results"
        setup = json.loads((results / "devices/armboard.setup.json").read_text())
        assert setup["board"]["machine"] == "aarch64" and setup["versions"] == dict(p.split("==") for p in board_pins())
        (results / "devices/armboard.setup.json").unlink()
        snakemake(wf, "--cores", "1", "results/devices/armboard.setup.json", *args)
        assert "already set up" in (wf / SMOKE_RUN / "logs/devices/armboard.setup.log").read_text()
    finally:
        server.stop()
    cells = sorted((results / "device_eval/armboard").rglob("*.json"))
    assert len(cells) == 4, "every cell evaluated on the board"
    for path in cells:
        cell = path.relative_to(results / "device_eval/armboard")
        session = cell.with_name(cell.name.replace(".json", ".r0.json"))  # timing session 0
        bench = json.loads((results / "bench/armboard" / session).read_text())
        assert bench["emulated"] is True and bench["device"]["machine"] == "aarch64"
        assert json.loads((results / "bench/local" / session).read_text())["emulated"] is False
        on_board = json.loads(path.read_text())
        assert on_board["answers_differing_from_host"] == 0, (str(cell), on_board["top1"], on_board["host_top1"])
        assert on_board["confidence_max_abs_diff"] < 0.02, "the winning scores agree too (int8: within an output step)"
    b = pd.read_csv(results / "tables/bench.csv")
    assert set(b[b.device == "armboard"].emulated) == {True} and set(b[b.device == "local"].emulated) == {False}
    devices = pd.read_csv(results / "tables/table_devices.csv")
    arm = devices[devices.device == "armboard"]
    assert set(arm.emulated) == {True} and set(arm.machine) == {"aarch64"}
    assert (arm.answers_differing_from_host == 0).all() and arm.confidence_max_abs_diff.notna().all()
    findings = pd.read_csv(results / "findings.csv").set_index("no")
    assert "armboard (aarch64, emulated)" in findings.loc[19, "measured"]
    assert "armboard" not in " ".join(findings.measured.drop(19).astype(str)), "no timing finding uses the emulator"


def test_boards_that_cannot_work_are_one_line_each():
    from pqgrid.device.setup import board_problem

    facts = {"python": "3.11.2", "machine": "aarch64", "libc": ("glibc", "2.36"), "free_mb": 5000}
    assert board_problem("pi", facts) is None
    for change, message in (
        ({"machine": "armv7l"}, r"a 32-bit OS \(armv7l\); .* 64-bit Raspberry Pi OS"),
        ({"python": "3.7.3"}, "Python 3.7.3 is older than 3.10"),
        ({"free_mb": 50}, "50 MB free under remote_dir; the packages need 300 MB"),
        ({"libc": ("", "")}, "C library unknown; the wheels need glibc"),
    ):
        assert re.search(message, board_problem("pi", {**facts, **change})), change
