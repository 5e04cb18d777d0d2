"""Reach a device and run the harness there. One session class per device type, found in
SESSIONS by the config's `type`; each follows the Session protocol (put, put_cached, get,
run, close), so the three measurements work unchanged on any of them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Protocol

from pqgrid.core.devices import packages_dir
from pqgrid.core.io import sha256_file
from pqgrid.device import harness

log = logging.getLogger("pqgrid")


class DeviceError(RuntimeError):
    """One line: which device, what went wrong, what to check."""


class _Retryable(DeviceError):
    pass


def _parse(name, stdout, stderr, code):
    if code != 0:
        last = (stderr.strip() or stdout.strip() or f"exit status {code}").splitlines()[-1]
        if code == 127:
            raise DeviceError(
                f"device {name}: command not found ({last}); check `python` (and `benchmark_model`) in its config"
            )
        raise DeviceError(f"device {name}: the benchmark failed (exit {code}): {last}")
    try:
        return json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DeviceError(f"device {name}: the benchmark printed no result; stderr: {stderr.strip()[-300:]}") from None


# ---------------------------------------------------------------- sessions
class Session(Protocol):
    """What the three measurements use of a device, whatever reaches it. `run` starts the
    harness with `args` (its command line after the script) and returns (stdout, stderr,
    exit status); `on_line(line)` sees each stdout line as it arrives."""

    name: str
    lock: str  # the device's exclusive lock file: one measurement at a time

    def put(self, local: str, remote_name: str) -> str: ...  # a job file; its path there

    def put_cached(self, local: str) -> str: ...  # a file kept between jobs (by content)

    def get(self, remote: str, local: str) -> None: ...

    def run(self, args: list, on_line=None) -> tuple: ...

    def close(self) -> None: ...


class LocalSession:
    """This machine: files are used where they are; a job folder under remote_dir."""

    def __init__(self, name, cfg):
        self.name, self.cfg = name, cfg
        self.python = sys.executable if cfg["python"] in (None, "python3") else cfg["python"]
        os.makedirs(cfg["remote_dir"], exist_ok=True)
        self.job = tempfile.mkdtemp(prefix="job-", dir=cfg["remote_dir"])
        self.lock = os.path.join(cfg["remote_dir"], ".pqgrid.lock")

    def put(self, local, remote_name):
        return str(local)

    def put_cached(self, local):
        return str(local)

    def get(self, remote, local):
        shutil.copyfile(remote, local)

    def run(self, args, on_line=None):
        """Run the harness; `on_line(line)` sees each stdout line as it arrives. A watchdog
        kills it after `timeout` seconds, also while it prints nothing."""
        cmd = [self.python, str(HARNESS), *args]
        with tempfile.TemporaryFile(mode="w+") as err:
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
            except FileNotFoundError:
                raise DeviceError(
                    f"device {self.name}: python {self.python!r} not found; check `python` in its config"
                ) from None
            fired = threading.Event()
            watchdog = threading.Timer(self.cfg["timeout"], lambda: (fired.set(), proc.kill()))
            watchdog.start()
            lines = []
            try:
                for line in proc.stdout:
                    lines.append(line)
                    if on_line:
                        on_line(line)
                proc.wait()
            finally:
                watchdog.cancel()
            if fired.is_set():
                raise DeviceError(
                    f"device {self.name}: timed out after {self.cfg['timeout']}s; raise `timeout` or check the load"
                )
            err.seek(0)
            return "".join(lines), err.read(), proc.returncode

    def close(self):
        shutil.rmtree(self.job, ignore_errors=True)


class SSHSession:
    """A board over SSH: files go up by SFTP into a job folder (the test set into a cache
    folder, once per content), the harness runs with the device's `python`."""

    def __init__(self, name, cfg):
        self.name, self.cfg = name, cfg
        self.client, self.where = connect(name, cfg)
        self.root = cfg["remote_dir"].rstrip("/")
        self.job = f"{self.root}/job-{uuid.uuid4().hex}"
        self.lock = f"{self.root}/.pqgrid.lock"
        self.sftp = self.client.open_sftp()
        folders = sorted({f"{self.job}/{Path(f).parent}" for f in BOARD_FILES})
        _exec(self.client, name, "mkdir -p " + " ".join(shlex.quote(f) for f in folders), 30)
        for f in BOARD_FILES:
            self.put(PACKAGE_ROOT / f, f)

    def _write_error(self, what, e):
        return DeviceError(
            f"device {self.name}: cannot write {what} to {self.cfg['remote_dir']} on {self.where} ({e}); "
            "check free disk space and permissions"
        )

    def put(self, local, remote_name):
        remote = f"{self.job}/{remote_name}"
        try:
            self.sftp.put(str(local), remote)
        except OSError as e:
            raise self._write_error(Path(local).name, e) from None
        return remote

    def put_cached(self, local):
        """The file stored once per content under remote_dir/data (name = its sha256), so a
        grid's cells share one upload of the test set; written to a temporary name and
        renamed, so a killed upload is never taken for the file."""
        size = os.path.getsize(local)
        remote = f"{self.root}/data/{sha256_file(local)[:32]}{Path(local).suffix}"
        with contextlib.suppress(OSError):
            if self.sftp.stat(remote).st_size == size:
                return remote
        part = f"{remote}.part-{uuid.uuid4().hex[:8]}"
        try:
            with contextlib.suppress(OSError):
                self.sftp.mkdir(f"{self.root}/data")
            self.sftp.put(str(local), part)
            self.sftp.posix_rename(part, remote)
        except OSError as e:
            with contextlib.suppress(OSError):
                self.sftp.remove(part)
            raise self._write_error(f"the test set ({size / 1e6:.1f} MB)", e) from None
        return remote

    def get(self, remote, local):
        self.sftp.get(remote, str(local))

    def run(self, args, on_line=None):
        cmd = " ".join(shlex.quote(a) for a in [self.cfg["python"], f"{self.job}/{BOARD_PROGRAM}", *args])
        packages = packages_dir(self.cfg)
        if packages:  # `setup: packages`: the pinned packages first on the path
            cmd = f"PYTHONPATH={shlex.quote(packages)} {cmd}"
        return _exec(self.client, self.name, cmd, self.cfg["timeout"], on_line)

    def shell(self, cmd: str, timeout=None):
        """A shell command on the board: (stdout, stderr, exit status)."""
        return _exec(self.client, self.name, cmd, timeout or self.cfg["timeout"])

    def close(self):
        # remove the job's files also when it failed; best effort: the error above matters
        with contextlib.suppress(Exception):
            _exec(self.client, self.name, f"rm -rf {shlex.quote(self.job)}", 30)
        with contextlib.suppress(Exception):
            self.sftp.close()
        self.client.close()


def _exec(client, name, cmd, timeout, on_line=None):
    stdin, stdout, stderr = client.exec_command(cmd, timeout=timeout)
    try:
        if on_line:
            lines = []
            for line in stdout:
                lines.append(line)
                on_line(line)
            out = "".join(lines)
        else:
            out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
    except TimeoutError:
        raise DeviceError(f"device {name}: timed out after {timeout}s; raise `timeout` or check the device") from None
    return out, err, stdout.channel.recv_exit_status()


# one per core.devices.DEVICE_TYPES entry (tests/test_device.py checks both name the same types)
SESSIONS: dict[str, type[Session]] = {"local": LocalSession, "ssh": SSHSession}


@contextlib.contextmanager
def session(name, cfg):
    """An open session on the device, connection failures retried `retries` times."""
    attempts = 1 + int(cfg["retries"])
    for attempt in range(1, attempts + 1):
        try:
            s = SESSIONS[cfg["type"]](name, cfg)
            break
        except _Retryable as e:
            if attempt == attempts:
                raise DeviceError(str(e)) from None
            log.info("%s (attempt %d/%d), retrying", e, attempt, attempts)
            time.sleep(min(10, 2**attempt))
    try:
        yield s
    finally:
        s.close()


# ---------------------------------------------------------------- ssh
def _resolve(cfg):
    """host/alias -> connection parameters, through ~/.ssh/config like `ssh` does."""
    import paramiko

    host, user, port, key = cfg["host"], cfg.get("user"), cfg.get("port"), cfg.get("identity_file")
    ssh_config = Path(os.path.expanduser(cfg.get("ssh_config") or "~/.ssh/config"))
    if ssh_config.exists():  # what the device config sets wins; ~/.ssh/config fills the rest
        sc = paramiko.SSHConfig.from_path(str(ssh_config)).lookup(host)
        host = sc.get("hostname", host)
        user = user or sc.get("user")
        port = port or sc.get("port")
        key = key or (sc.get("identityfile") or [None])[0]
    return host, int(port or 22), user or os.environ.get("USER", "root"), key


def _known_hosts_file(cfg) -> str:
    """Where keys are checked besides the system's, and where `trust_new_host` stores a new
    one: the configured file, else the user's ~/.ssh/known_hosts (as `ssh` does)."""
    return os.path.expanduser(cfg.get("known_hosts") or "~/.ssh/known_hosts")


def connect(name, cfg):
    import paramiko

    host, port, user, key = _resolve(cfg)
    client = paramiko.SSHClient()
    client.load_system_host_keys()
    kh = _known_hosts_file(cfg)
    if os.path.exists(kh):
        client.load_host_keys(kh)
    # Host keys are checked: an unknown host is refused unless the user opted in.
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy() if cfg["trust_new_host"] else paramiko.RejectPolicy())
    where = f"{user}@{host}:{port}"
    try:
        client.connect(
            host,
            port=port,
            username=user,
            key_filename=os.path.expanduser(key) if key else None,
            timeout=min(30, cfg["timeout"]),
            banner_timeout=30,
            auth_timeout=30,
            allow_agent=True,
            look_for_keys=key is None,
        )
    except paramiko.BadHostKeyException:
        raise DeviceError(
            f"device {name}: host key of {host}:{port} does not match known_hosts (reinstalled, or someone in between?); "
            f"if expected, remove the old entry: ssh-keygen -R '[{host}]:{port}'"
        ) from None
    except paramiko.AuthenticationException:
        raise DeviceError(
            f"device {name}: authentication failed for {where}; check identity_file, the ssh agent and the device's authorized_keys"
        ) from None
    except paramiko.SSHException as e:
        if "not found in known_hosts" in str(e):
            raise DeviceError(
                f"device {name}: {host}:{port} is not in known_hosts; add it (ssh-keyscan -p {port} {host} >> known_hosts) "
                f"or set trust_new_host: true once"
            ) from None
        raise DeviceError(f"device {name}: SSH error with {where}: {e}") from None
    except socket.gaierror:
        raise DeviceError(f"device {name}: unknown host {host!r}; check `host` or its alias in ~/.ssh/config") from None
    except (paramiko.ssh_exception.NoValidConnectionsError, ConnectionRefusedError):
        raise _Retryable(
            f"device {name}: connection refused at {host}:{port}; is sshd running, is the port right?"
        ) from None
    except (TimeoutError, OSError) as e:
        raise _Retryable(f"device {name}: cannot reach {host}:{port} ({e}); check the network and `timeout`") from None
    if cfg["trust_new_host"]:  # remember the accepted key: later connections check it
        os.makedirs(os.path.dirname(kh) or ".", mode=0o700, exist_ok=True)
        client.save_host_keys(kh)
    return client, where


HARNESS = Path(harness.__file__)  # the board program: run as a file, here and on a board
PACKAGE_ROOT = HARNESS.parents[2]  # the folder holding pqgrid/
BOARD_PROGRAM = str(HARNESS.relative_to(PACKAGE_ROOT))
# What the board program imports, uploaded with the package's layout so that its imports read
# as the host's (standard library + numpy + LiteRT; tests/test_device.py checks the list).
BOARD_FILES = (
    "pqgrid/__init__.py",
    "pqgrid/core/__init__.py",
    "pqgrid/core/runtime.py",
    "pqgrid/device/__init__.py",
    "pqgrid/device/sensors.py",
    BOARD_PROGRAM,
)
