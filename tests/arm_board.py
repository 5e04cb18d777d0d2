"""An emulated Raspberry Pi 4 for the tests: Debian 12 arm64's own Python 3.11 with the
aarch64 wheels of numpy and ai-edge-litert, run by qemu user-mode emulation as a Cortex-A72,
reached over a real sshd like a board (the SSH path, the upload, the harness, on-device
accuracy: all against ARM code). It stands in for hardware: latency and memory measured on
it are emulated and marked so (the harness reports it), never a figure of a real board.

    .venv/bin/python tests/arm_board.py /tmp/armboard      # prints the overlay path
    .venv/bin/snakemake --cores 2 all --configfile presets/smoke.yaml /tmp/armboard/armboard.yaml

The userland is built once and cached (~/.cache/pqgrid/arm64-bookworm, ~250 MB):
`debootstrap --foreign` fetches Debian's arm64 packages and `dpkg -x` unpacks them (no
chroot, no binfmt_misc: a container may not register it); the wheels are installed by this
machine's pip for the aarch64 platform (`--platform manylinux_2_27_aarch64 --target`), so
nothing runs under emulation while building. Needs the Debian packages qemu-user-static and
debootstrap (.ci/run installs them) and access to a Debian mirror and PyPI.

Facts behind the choices: LiteRT segfaults in allocate_tensors while
/proc/cpuinfo is the x86 host's (qemu passes it through; with -L it reads ROOT/proc/cpuinfo
first, so an ARM one is written there); with qemu's default CPU (-cpu max) int8 models come
out wrong, with -cpu cortex-a72 (the Pi 4's) they agree with x86."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pqgrid" / "arm64-bookworm"
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
# A Raspberry Pi 4's /proc/cpuinfo (4 x Cortex-A72, r0p3), what LiteRT's CPU detection reads.
CPUINFO = (
    "".join(
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n"
        "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n"
        for i in range(4)
    )
    + "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4 (emulated)\n"
)
PYTHON = "3.11"


def build(root: Path = CACHE) -> Path:
    """The arm64 userland with numpy and ai-edge-litert; returns the board's python command
    (a script running ROOT's python3.11 under qemu as a Cortex-A72)."""
    sys.path.insert(0, str(SCRIPTS))
    from pqgrid.core.devices import board_pins  # the board gets the host's versions
    from pqgrid.device.setup import PLATFORMS  # the wheels `setup: packages` would send

    python = root / "python-arm64"
    if python.is_file():
        _bare(root)
        return python
    for tool in ("qemu-aarch64-static", "debootstrap", "dpkg"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} not found: apt-get install qemu-user-static debootstrap")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    sysroot = tmp / "root"
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    subprocess.run(
        [debootstrap, "--foreign", "--arch=arm64", "--variant=minbase", "--include=python3", SUITE, str(sysroot),
         MIRROR],
        check=True, capture_output=True,
    )  # fmt: skip
    for deb in sorted((sysroot / "var/cache/apt/archives").glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(sysroot)], check=True, capture_output=True)
    (sysroot / "proc").mkdir(exist_ok=True)
    (sysroot / "proc/cpuinfo").write_text(CPUINFO)
    site = tmp / "site-packages"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(site), "--only-binary=:all:",
         "--python-version", PYTHON, "--implementation", "cp", *(f"--platform={p}" for p in PLATFORMS["aarch64"]),
         *board_pins()],
        check=True, capture_output=True,
    )  # fmt: skip
    script = tmp / "python-arm64"
    script.write_text(
        "#!/bin/sh\n# The emulated board's Python: Debian arm64 python3.11 under qemu as a Cortex-A72 (tests/arm_board.py)\n"
        f'PYTHONPATH="{root / "site-packages"}" exec qemu-aarch64-static -cpu cortex-a72 -L "{root / "root"}" '
        f'"{root / "root/usr/bin/python3.11"}" "$@"\n'
    )
    script.chmod(0o755)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)  # whole or not at all: a killed build leaves only the .tmp folder
    _bare(root)
    return python


def _bare(root: Path) -> Path:
    """The board's Python without the packages: a fresh Pi, for `setup: packages` to set up."""
    bare = root / "python-arm64-bare"
    bare.write_text(
        "#!/bin/sh\n# The emulated board's Python without numpy or LiteRT (tests/arm_board.py)\n"
        f'exec qemu-aarch64-static -cpu cortex-a72 -L "{root / "root"}" "{root / "root/usr/bin/python3.11"}" "$@"\n'
    )
    bare.chmod(0o755)
    return bare


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "folder", nargs="?", default="/tmp/armboard", help="where sshd's keys, config and the overlay go"
    )
    parser.add_argument("--accuracy", action="store_true", help="turn on on-device accuracy for `armboard`")
    args = parser.parse_args()  # --help ends here, before anything is built, written or started
    import yaml

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import SSHServer

    python = build()
    folder = Path(args.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    server = SSHServer(folder)
    device = server.device(python=str(python), num_runs=10, retries=1, timeout=900)
    if args.accuracy:
        device["accuracy"] = True
    overlay = folder / "armboard.yaml"
    overlay.write_text(yaml.safe_dump({"devices": {"armboard": device}}))
    print(overlay)


if __name__ == "__main__":
    main()
