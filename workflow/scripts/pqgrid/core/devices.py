"""The device types: one record per type with what the config checks and the rules need to
know about it - read at parse time (no paramiko import). The session class that reaches a
type is `device.sessions.SESSIONS[type]`; tests/test_device.py checks that both and the
schema's enum name the same types. Adding a type = a record here and a session class there
(CONTRIBUTING.md, "Add a device type")."""

from __future__ import annotations

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
