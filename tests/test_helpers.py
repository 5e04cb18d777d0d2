"""The test helpers are safe to run by hand: `--help` prints usage and touches nothing (no
file, no folder, no daemon, no system config), and a helper that leaves a server running
(tests/loopback_device.py) hands its caller's stdout back, so `$(...)` and pipes return."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from conftest import ROOT

HELPERS = [
    "slurm_cluster.py",
    "loopback_device.py",
    "arm_board.py",
    "compare_runs.py",
    "simulated_runs.py",
    "dry_run_server.py",
]
SLURM_CONFIG = Path("/etc/slurm")


def _tree(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _marked_processes(marker: str) -> list:
    """Processes whose environment carries `marker` (what a helper started inherits it)."""
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.environ().get("PQGRID_HELPER_TEST") == marker:
                found.append(f"{proc.info['name']} ({proc.info['pid']})")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _system_config() -> dict:
    if not SLURM_CONFIG.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in SLURM_CONFIG.iterdir() if p.is_file()}


@pytest.mark.shares("slurm-config")  # never beside the SLURM tests, which write /etc/slurm
@pytest.mark.parametrize("helper", HELPERS)
def test_help_prints_usage_and_touches_nothing(helper, tmp_path):
    """A copy of the checkout's code (no __pycache__), the helper run from another folder
    with its own HOME and TMPDIR: afterwards not one new file or folder in any of them, no
    process left that it started, the system's SLURM config as before."""
    for name in ("tests", "workflow"):
        shutil.copytree(ROOT / name, tmp_path / "repo" / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("cwd", "home", "tmp"):
        (tmp_path / name).mkdir()
    marker = uuid.uuid4().hex
    env = dict(os.environ, HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"), PQGRID_HELPER_TEST=marker)
    before, config = _tree(tmp_path), _system_config()
    defaults = [Path(d) for d in ("/tmp/loopback", "/tmp/armboard", "/tmp/slurm") if not Path(d).exists()]
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "repo" / "tests" / helper), "--help"],
        cwd=tmp_path / "cwd",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and len(proc.stdout.splitlines()) > 3, proc.stdout
    assert _tree(tmp_path) == before, sorted(_tree(tmp_path) - before)
    assert not _marked_processes(marker)
    assert _system_config() == config, "the SLURM config changed"
    assert not [d for d in defaults if d.exists()], "a default folder was made"


def test_help_is_broken_by_a_helper_that_writes_before_parsing(tmp_path):
    """The check above catches what it is for: a helper that writes a file before parsing
    its arguments (as a SLURM helper that writes its config first would) leaves that file behind."""
    helper = tmp_path / "writes_first.py"
    helper.write_text(
        "import argparse, pathlib\npathlib.Path('state').mkdir()\nargparse.ArgumentParser().parse_args()\n"
    )
    (tmp_path / "cwd").mkdir()
    before = _tree(tmp_path)
    subprocess.run([sys.executable, str(helper), "--help"], cwd=tmp_path / "cwd", capture_output=True, check=True)
    assert _tree(tmp_path) - before == {"cwd/state"}


def test_loopback_device_returns_its_callers_stdout(tmp_path):
    """`OVERLAY=$(tests/loopback_device.py DIR)`: the command substitution returns once the
    overlay is written, with sshd still serving in the background, which a kill stops."""
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server; .ci/run does)")
    folder = tmp_path / "lb"
    script = f'OVERLAY=$({sys.executable} {ROOT / "tests" / "loopback_device.py"} {folder}) && echo "$OVERLAY"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    pid = int((folder / "sshd.pid").read_text())
    try:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == str(folder / "loopback.yaml") and (folder / "loopback.yaml").is_file()
        assert psutil.pid_exists(pid) and psutil.Process(pid).name() == "sshd"
    finally:
        os.kill(pid, 15)


def test_tests_sharing_a_fixture_stay_on_one_xdist_worker(tmp_path):
    """tests/conftest.py's grouping under `-n 2 --dist loadgroup`: two modules whose tests
    share a session fixture (as test_workflow and test_staleness share the smoke run) build it
    once, on one worker; tests that share nothing still spread over both."""
    tests = tmp_path / "tests"
    tests.mkdir()
    log = tmp_path / "log"
    (tests / "conftest.py").write_text(
        (ROOT / "tests" / "conftest.py").read_text()
        + f"\n\n@pytest.fixture(scope='session')\ndef built():\n    open({str(log)!r}, 'a').write(f'BUILT {{os.getpid()}}\\n')\n"
    )
    for name in ("a", "b"):
        (tests / f"test_{name}.py").write_text(
            "import os, time\nimport pytest\n\n"
            f"def test_{name}1(built):\n    open({str(log)!r}, 'a').write(f'{name}1 {{os.getpid()}}\\n')\n\n"
            f"def test_{name}2(built):\n    open({str(log)!r}, 'a').write(f'{name}2 {{os.getpid()}}\\n')\n\n"
            "@pytest.mark.parametrize('i', range(6))\ndef test_free(i):\n"
            f"    time.sleep(0.3)\n    open({str(log)!r}, 'a').write(f'free {{os.getpid()}}\\n')\n"
        )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup", "tests"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    lines = [line.split() for line in log.read_text().splitlines()]
    built = [pid for what, pid in lines if what == "BUILT"]
    users = {pid for what, pid in lines if what[:1] in "ab" and what != "BUILT"}
    free = {pid for what, pid in lines if what == "free"}
    assert len(built) == 1 and users == set(built), lines
    assert len(free) == 2, "ungrouped tests use both workers"


RULE_SCRIPTS = sorted((ROOT / "workflow/scripts").glob("*.py"))


def test_every_rule_script_says_what_it_is_when_run_by_hand():
    """A rule script by hand (`--help` or no arguments): one line naming its rule(s) and the
    command that runs them, rc 0 / 2, no NameError. Each script calls `by_hand(globals())`
    before it reads `snakemake` (checked in every one, run in two)."""
    for script in RULE_SCRIPTS:
        text = script.read_text()
        assert "by_hand(globals())" in text, script.name
        assert text.index("by_hand(globals())") < text.index("snakemake."), script.name
    for script, args, rc in ((ROOT / "workflow/scripts/plan_repair.py", ["--help"], 0),
                             (ROOT / "workflow/scripts/evaluate_tflite.py", [], 2)):  # fmt: skip
        proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode == rc and "Traceback" not in out, out
        assert len(out.strip().splitlines()) == 1 and f"rule {script.stem}" in out and ".venv/bin/snakemake" in out, out
