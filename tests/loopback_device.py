"""Start a real sshd on 127.0.0.1 (the tests' SSHServer) and write a config overlay that
adds it as device `loopback`, for trying the SSH path end to end without a board:

    .venv/bin/python tests/loopback_device.py /tmp/loopback     # prints the overlay path
    .venv/bin/snakemake --cores 2 all --configfile presets/laptop.yaml /tmp/loopback/loopback.yaml

`--accuracy` also turns on on-device accuracy for `loopback` (README, "Devices, measured").

sshd keeps running in the background (its pid is in /tmp/loopback/sshd.pid)."""

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from conftest import SSHServer  # noqa: E402

args = [a for a in sys.argv[1:] if a != "--accuracy"]
root = Path(args[0] if args else "/tmp/loopback").resolve()
root.mkdir(parents=True, exist_ok=True)
server = SSHServer(root)
device = server.device(num_runs=50, retries=1, timeout=600)
if "--accuracy" in sys.argv[1:]:
    device["accuracy"] = True
overlay = root / "loopback.yaml"
overlay.write_text(yaml.safe_dump({"devices": {"loopback": device}}))
print(overlay)
