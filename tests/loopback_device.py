"""Start a real sshd on 127.0.0.1 (the tests' SSHServer) and write a config overlay that
adds it as device `loopback`, for trying the SSH path end to end without a board:

    .venv/bin/python tests/loopback_device.py /tmp/loopback     # prints the overlay path
    .venv/bin/snakemake --cores 2 all --configfile presets/laptop.yaml /tmp/loopback/loopback.yaml

`--accuracy` also turns on on-device accuracy for `loopback` (docs/devices.md).

sshd keeps running in the background after this script returns (its output goes to
FOLDER/sshd.log, so `OVERLAY=$(...)` and pipes return at once); stop it with
`kill $(cat /tmp/loopback/sshd.pid)`. Everything it writes goes into FOLDER."""

import argparse
import sys
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("folder", nargs="?", default="/tmp/loopback", help="where sshd's keys, config and the overlay go")
parser.add_argument("--accuracy", action="store_true", help="turn on on-device accuracy for `loopback`")
args = parser.parse_args()  # --help ends here, before anything is started or written

import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from conftest import SSHServer  # noqa: E402

root = Path(args.folder).resolve()
root.mkdir(parents=True, exist_ok=True)
server = SSHServer(root)
device = server.device(num_runs=50, retries=1, timeout=600)
if args.accuracy:
    device["accuracy"] = True
overlay = root / "loopback.yaml"
overlay.write_text(yaml.safe_dump({"devices": {"loopback": device}}))
print(overlay)
