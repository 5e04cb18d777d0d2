"""The device types: one record per type with what the config checks and the rules need to
know about it - read at parse time (no paramiko import). The session class that reaches a
type is `device.sessions.SESSIONS[type]`; tests/test_device.py checks that both and the
schema's enum name the same types. Adding a type = a record here and a session class there
(CONTRIBUTING.md, "Add a device type")."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceType:
    name: str
    description: str  # for people (docs, schema text)
    on_host: bool  # runs on the machine running the workflow: its jobs may use --cores threads
    needs: tuple = ()  # config keys a device of this type must set, with what each is for


DEVICE_TYPES = {
    t.name: t
    for t in (
        DeviceType("local", "the machine running the workflow", on_host=True),
        DeviceType(
            "ssh",
            "a board reached over SSH (paramiko)",
            on_host=False,
            needs=(("host", "an ssh device needs a host (name, address or ~/.ssh/config alias)"),),
        ),
    )
}


# ---------------------------------------------------------------- a board set up by pqgrid
# `setup: packages`: the packages the harness needs, at the versions this machine runs
# (requirements.txt pins them), installed for the board's platform into a folder of their
# own under remote_dir (named by the versions, so a new pin is a new folder) and put first
# on the board Python's path.
BOARD_PACKAGES = ("numpy", "ai-edge-litert")


def board_pins() -> list:
    """["numpy==2.4.6", "ai-edge-litert==2.3.0"]: the host's versions of the board's packages."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in BOARD_PACKAGES]


def packages_dir(cfg: dict) -> str | None:
    """The folder of a set-up board's packages (None: the board's Python has its own)."""
    if cfg.get("setup") != "packages":
        return None
    digest = hashlib.sha256(" ".join(board_pins()).encode()).hexdigest()[:12]
    return f"{cfg['remote_dir'].rstrip('/')}/packages-{digest}"
