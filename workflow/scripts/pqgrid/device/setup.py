"""Stage `setup_device` (devices with `setup: packages`): pqgrid sets up a board's Python.

Over SSH it reads the board's Python version, machine, C library and free space, and says in
one line what cannot work (a 32-bit OS, a Python too old, too little space). This machine's
pip then installs the pinned numpy and ai-edge-litert (requirements.txt) for the board's
platform into a folder (`pip install --target --platform ... --only-binary=:all:`: the
board needs neither pip nor internet), which goes up as one archive and is unpacked under
remote_dir in a folder named by the pins (core/devices.py `packages_dir`); the harness
then runs with that folder first on its path. Last, the board imports both packages and
reports their versions, which must be the pins.

Why a folder and not `python -m venv`: a venv's interpreter is a link to the board's
python3, which bypasses a `python:` that is a wrapper (an emulator, a container) and needs
the board's `python3-venv` package; a folder on PYTHONPATH works with any interpreter and
shadows the system's packages alike."""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from pqgrid.core.devices import board_pins, packages_dir
from pqgrid.core.io import write_json
from pqgrid.device.measure import device_config
from pqgrid.device.sessions import DeviceError, session

log = logging.getLogger("pqgrid")

# What the board's Python prints about itself (runs on any Python 3).
PROBE = (
    "import json, os, platform, shutil, sys; d = sys.argv[1]; os.makedirs(d, exist_ok=True); "
    "print(json.dumps({'python': platform.python_version(), 'machine': platform.machine(), "
    "'libc': platform.libc_ver(), 'free_mb': shutil.disk_usage(d).free / 2**20}))"
)
# The oldest Python ai-edge-litert's wheels are built for, and the space the packages take.
MIN_PYTHON = (3, 10)
NEEDS_MB = 300
# pip platform tags per machine, newest glibc first (ai-edge-litert 2.3.0 is tagged manylinux_2_27)
PLATFORMS = {
    "aarch64": ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
}
CHECK = (
    "import json, numpy, ai_edge_litert, importlib.metadata as m; "
    "print(json.dumps({p: m.version(p) for p in ('numpy', 'ai-edge-litert')}))"
)


def board_problem(name: str, facts: dict) -> str | None:
    """One line for what cannot work on the board, or None."""
    machine = facts["machine"]
    if machine in ("armv7l", "armv6l", "armhf"):
        return (
            f"device {name}: a 32-bit OS ({machine}); ai-edge-litert has no wheels for it - install the 64-bit "
            "Raspberry Pi OS (aarch64)"
        )
    if machine not in PLATFORMS:
        return f"device {name}: machine {machine}; pqgrid sets up aarch64 and x86_64 boards - install numpy and ai-edge-litert yourself and remove setup"
    version = tuple(int(v) for v in facts["python"].split(".")[:2])
    if version < MIN_PYTHON:
        return (
            f"device {name}: Python {facts['python']} is older than {'.'.join(map(str, MIN_PYTHON))}, the oldest "
            "ai-edge-litert supports; set `python:` to a newer one on the board"
        )
    if facts["libc"][0] != "glibc":
        return f"device {name}: C library {facts['libc'][0] or 'unknown'}; the wheels need glibc (Debian, Raspberry Pi OS, Ubuntu)"
    if facts["free_mb"] < NEEDS_MB:
        return f"device {name}: {facts['free_mb']:.0f} MB free under remote_dir; the packages need {NEEDS_MB} MB - free space or move remote_dir"
    return None


def setup_device(*, name, cfg, out_json):
    cfg = device_config(cfg)
    if cfg["type"] != "ssh":
        raise DeviceError(f"device {name}: setup is for boards over SSH; remove it from a {cfg['type']} device")
    folder = packages_dir(cfg)
    pins = board_pins()
    with session(name, {**cfg, "setup": None}) as s:
        out, err, code = s.shell(" ".join(shlex.quote(a) for a in [cfg["python"], "-c", PROBE, cfg["remote_dir"]]))
        if code != 0:
            raise DeviceError(
                f"device {name}: its python ({cfg['python']}) did not run ({err.strip()[-200:]}); set `python:`"
            )
        facts = json.loads(out.strip().splitlines()[-1])
        problem = board_problem(name, facts)
        if problem:
            raise DeviceError(problem)
        have, _, code = s.shell(
            f"PYTHONPATH={shlex.quote(folder)} {shlex.quote(cfg['python'])} -c {shlex.quote(CHECK)}"
        )
        if code == 0 and _versions_match(have, pins):
            log.info("device %s: %s already set up in %s", name, ", ".join(pins), folder)
        else:
            _install(name, s, cfg, facts, folder, pins)
        have, err, code = s.shell(
            f"PYTHONPATH={shlex.quote(folder)} {shlex.quote(cfg['python'])} -c {shlex.quote(CHECK)}"
        )
        if code != 0 or not _versions_match(have, pins):
            raise DeviceError(
                f"device {name}: the installed packages do not import ({err.strip()[-300:] or have.strip()})"
            )
    record = {
        "device_name": name,
        "packages_dir": folder,
        "pins": pins,
        "board": facts,
        "versions": json.loads(have.strip().splitlines()[-1]),
    }
    write_json(out_json, record)
    log.info("device %s (%s, Python %s): %s in %s", name, facts["machine"], facts["python"], ", ".join(pins), folder)
    return record


def _versions_match(out: str, pins) -> bool:
    try:
        have = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False
    return all(have.get(p.split("==")[0]) == p.split("==")[1] for p in pins)


def _install(name, s, cfg, facts, folder, pins):
    """The pinned wheels for the board's platform, installed here into a folder, sent up
    as one archive and unpacked into `folder` (replacing a partial one)."""
    major, minor = facts["python"].split(".")[:2]
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "packages"
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "--only-binary=:all:",
               "--python-version", f"{major}.{minor}", "--implementation", "cp",
               *(f"--platform={p}" for p in PLATFORMS[facts["machine"]]), *pins]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1:] or ["pip failed"]
            raise DeviceError(
                f"device {name}: no wheels of {', '.join(pins)} for {facts['machine']} Python {major}.{minor} "
                f"({last[0][:200]}); use another Python on the board (`python:`)"
            )
        archive = Path(tmp) / "packages.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(target, arcname=".")
        remote = s.put(archive, "packages.tar.gz")
        q = shlex.quote(folder)
        out, err, code = s.shell(f"rm -rf {q}.part && mkdir -p {q}.part && tar -xzf {shlex.quote(remote)} -C {q}.part "
                                 f"&& rm -rf {q} && mv {q}.part {q}", timeout=900)  # fmt: skip
        if code != 0:
            raise DeviceError(
                f"device {name}: cannot unpack the packages under {cfg['remote_dir']} ({err.strip()[-200:]})"
            )
