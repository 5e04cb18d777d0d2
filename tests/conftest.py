"""Shared fixtures: small generated data in every supported format, and a copy of the
workflow in a temporary folder so workflow tests never touch the checkout's results/."""

import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CLASSES = ["cat", "dog", "frog"]


def write_image_tree(root: Path, per_class=(4, 2), classes=CLASSES, size=(32, 32)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class, strict=True):
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = np.full((*size, 3), 40 * ci, np.uint8) + rng.integers(0, 30, (*size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i:04d}.png")
    return root


def write_cifar_batches(root: Path, per_batch=6):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch * 10)]
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": names}, fh)
    return root


def synthetic_npz(d: Path, train_per_class: int, test_per_class: int) -> Path:
    """The data stage's train.npz / test.npz / manifest.json of the synthetic source in `d`."""
    from pqgrid.data import prepare as data_prepare

    data_prepare.prepare(
        source="synthetic",
        train_npz=d / "train.npz",
        test_npz=d / "test.npz",
        manifest_path=d / "manifest.json",
        train_per_class=train_per_class,
        test_per_class=test_per_class,
        seed=0,
    )
    return d


def make_tar(src: Path, dst: Path, arcname: str):
    with tarfile.open(dst, "w:gz") as tar:
        tar.add(src, arcname=arcname)
    return dst


@pytest.fixture
def image_tree(tmp_path):
    return write_image_tree(tmp_path / "imgs")


WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "presets", "profiles", "envs")


def copy_workflow(dst: Path) -> Path:
    """The workflow's code (no results) in a fresh folder, as a user's checkout."""
    dst.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst / name)
    return dst


@pytest.fixture
def workflow_dir(tmp_path):
    """A copy of the workflow (code only) to run Snakemake in."""
    return copy_workflow(tmp_path / "wf")


def snakemake(workdir, *args, check=True, timeout=1200):
    """Run the Snakemake CLI of this environment in `workdir`."""
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


SMOKE = ("--configfile", "presets/smoke.yaml")
SMOKE_RUN = "runs/smoke"  # presets/smoke.yaml's run_dir: results/, logs/, .snakemake/


def resumes_identically(cmd, folder: Path, load, epochs: int) -> Path:
    """A fine-tuning job (`cmd(out)`: its command writing `out`) killed with SIGKILL after 2
    of its `epochs` epochs and started again gives the weights of an uninterrupted run, bit
    for bit (`load(path)` reads a model). Returns the resumed model's path."""
    import numpy as np

    ref, killed = folder / "ref.h5", folder / "killed.h5"
    subprocess.run(cmd(ref), check=True, capture_output=True)
    hist = folder / "killed.h5.resume" / "history.csv"
    kill_after_epochs(cmd(killed), hist, 2)
    assert not killed.exists() and 2 <= len(hist.read_text().splitlines()) - 1 < epochs
    subprocess.run(cmd(killed), check=True, capture_output=True)
    a, b = load(ref).get_weights(), load(killed).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    return killed


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """A finished smoke run, shared by the workflow and staleness tests: the workflow copied
    to a fresh folder, `snakemake --cores 2 all --configfile presets/smoke.yaml` run in it
    (console output kept in console.txt)."""
    wf = copy_workflow(tmp_path_factory.mktemp("smoke") / "wf")
    proc = snakemake(wf, "--cores", "2", "all", *SMOKE)
    (wf / "console.txt").write_text(proc.stdout + proc.stderr)
    return wf


def ran_rules(console: str) -> list:
    """Rules of the jobs a real run finished, from the pqgrid logger's progress lines
    (`[ 3/85   3%] prune_model mobilenet seed0 s50 (...)`)."""
    import re

    return re.findall(r"^\[ *\d+/\d+ +\d+%\] (\w+)", console, re.M)


def stage_command(module: str, function: str, **kwargs) -> list:
    """A fresh Python that calls one pqgrid stage function with keyword arguments (kill -9
    tests, process-global TensorFlow settings)."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'workflow' / 'scripts')!r}); "
        f"from pqgrid.{module} import {function}; "
        f"{function}(**{kwargs!r})"
    )
    return [sys.executable, "-c", code]


def kill_after_epochs(cmd: list, history_csv: Path, epochs: int, timeout=300):
    """Start `cmd`, SIGKILL it once its resume history holds `epochs` rows, wait for it."""
    import signal

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not (history_csv.exists() and len(history_csv.read_text().splitlines()) > epochs):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory):
    """A real, small .tflite (MobileNet alpha 0.25, 32x32, untrained): what is measured
    does not depend on the weights."""
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    from pqgrid.jobs.tfsetup import tensorflow
    from pqgrid.models.builders import build
    from pqgrid.quant.convert import converter_for

    tensorflow(2, 0)
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    path.write_bytes(
        converter_for(build({"builder": "MobileNet", "alpha": 0.25}, 10, (32, 32, 3), None), "fp32").convert()
    )
    return path


class SSHServer:
    """A real OpenSSH sshd on 127.0.0.1 at a free port with generated keys."""

    def __init__(self, root: Path):
        self.root = root
        from slurm_cluster import free_port

        self.port = free_port()
        self.host_key = root / "host_ed25519"
        self.client_key = root / "client_ed25519"
        self.other_key = root / "other_ed25519"
        for key in (self.host_key, self.client_key, self.other_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (root / "authorized_keys").write_text((root / "client_ed25519.pub").read_text())
        host_pub = (root / "host_ed25519.pub").read_text().split()
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        other_pub = (root / "other_ed25519.pub").read_text().split()
        self.wrong_known_hosts = root / "wrong_known_hosts"
        self.wrong_known_hosts.write_text(f"[127.0.0.1]:{self.port} {other_pub[0]} {other_pub[1]}\n")
        config = root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nMaxStartups 50\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        # sshd's output goes to a file, never to the caller's stdout/stderr: a helper that
        # leaves sshd running (tests/loopback_device.py) then works inside $(...) and a pipe,
        # and an unread pipe cannot fill up and stall sshd.
        self.log = root / "sshd.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        import socket
        import time

        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("sshd did not start")

    def device(self, **overrides):
        import getpass

        cfg = {
            "type": "ssh",
            "host": "127.0.0.1",
            "port": self.port,
            "user": getpass.getuser(),
            "identity_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "python": sys.executable,
            "remote_dir": str(self.root / "remote"),
            "timeout": 60,
            "retries": 0,
            "num_runs": 5,
        }
        cfg.update(overrides)
        return cfg

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server; .ci/run does)")
    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


# ------------------------------------------------------------------ parallel runs (pytest-xdist)
# CI runs the suite on every core (`pytest -n auto --dist loadgroup`, .ci/run). A fixture of
# module or session scope (a finished smoke run, a trained model, a SLURM cluster) is made
# once per worker that asks for it, so the tests sharing one must stay on one worker: each
# test gets one `xdist_group`, the connected set of the shared fixtures it uses (tests that
# use two such fixtures join their groups). Tests with none spread over the workers alone.
# `@pytest.mark.shares("name")` joins tests that share something no fixture holds (the
# system's SLURM config). Left out, and made once per worker instead: fixtures that cost a
# second or two (an sshd on loopback, one untrained .tflite), whose grouping would put most
# of the device tests on one worker.
CHEAP_SHARED_FIXTURES = {"sshd", "tiny_tflite"}


def pytest_configure(config):
    config.addinivalue_line("markers", "shares(name): keep this test on one xdist worker with others sharing `name`")
    config.addinivalue_line("markers", SLOW_MARK)
    # xdist would sort the groups by their number of tests; the order set below (longest
    # first, by tests/durations.txt) balances the workers better: a 5-minute test started
    # last keeps one worker busy while the others idle.
    if getattr(config.option, "dist", None) == "loadgroup":
        config.option.loadscopereorder = False


def _known_seconds() -> dict:
    """nodeid -> seconds of the slowest tests of one measured run (tests/durations.txt)."""
    path = ROOT / "tests" / "durations.txt"
    if not path.is_file():
        return {}
    rows = (line.split(maxsplit=1) for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return {nodeid.strip(): float(sec) for sec, nodeid in rows}


def _shared_fixtures(item) -> set:
    info = getattr(item, "_fixtureinfo", None)
    keys = {f"shares:{m.args[0]}" for m in item.iter_markers("shares")}
    for name, defs in info.name2fixturedefs.items() if info else ():
        fixture = defs[-1]
        if fixture.scope != "function" and name not in CHEAP_SHARED_FIXTURES and _is_ours(fixture.func):
            keys.add(f"{fixture.baseid or 'session'}::{name}")
    return keys


def _is_ours(func) -> bool:
    code = getattr(func, "__code__", None)
    return code is not None and Path(code.co_filename).resolve().is_relative_to(ROOT / "tests")


SLOW_MARK = (
    "slow: a second case of a behaviour another test in CI checks (a further architecture, a further "
    "stage's kill -9); left out of a run without -m, so CI fits in 30 minutes; `pytest -m slow tests` runs them"
)


def _leave_out_slow(config, items):
    """Without -m, the `slow` tests are deselected (and counted in pytest's summary)."""
    if config.option.markexpr:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.hookimpl(wrapper=True)  # before every other implementation: xdist reads the marks into node ids
def pytest_collection_modifyitems(config, items):
    _leave_out_slow(config, items)
    _group_and_order(items)
    if getattr(config.option, "loadgroup", False):  # set on xdist workers under --dist loadgroup
        _name_groups_in_node_ids(items)
    return (yield)


def _name_groups_in_node_ids(items):
    """What xdist's loadgroup scheduler reads: `nodeid@group`. pytest-xdist 3.8 writes it to
    `item._nodeid`, which pytest 9 no longer reads (a node's id lives in `_id`), so its groups
    are silently ignored and a shared fixture is built on every worker; written here the
    way pytest 9 keeps it (tests/test_helpers.py checks a group stays on one worker)."""
    from _pytest.nodeid import coerce_node_id

    for item in items:
        group = next((m.args[0] for m in item.iter_markers("xdist_group")), None)
        if group is not None and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{group}")


def _group_and_order(items):
    parent = {}

    def find(k):
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    keys = {item: sorted(_shared_fixtures(item)) for item in items}
    for ks in keys.values():
        for k in ks[1:]:
            parent[find(k)] = find(ks[0])
    unit = {}
    for item, ks in keys.items():
        unit[item] = find(ks[0]).replace("/", ".") if ks else item.nodeid
        if ks:
            item.add_marker(pytest.mark.xdist_group(unit[item]))
    # Longest work first (each group as a whole; a test not listed counts one second):
    # the workers then finish close together.
    seconds = _known_seconds()
    weight = {}
    for item in items:
        weight[unit[item]] = weight.get(unit[item], 0.0) + seconds.get(item.nodeid.split("@")[0], 1.0)
    position = {item: i for i, item in enumerate(items)}
    items.sort(key=lambda item: (-weight[unit[item]], unit[item], position[item]))
