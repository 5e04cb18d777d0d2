"""Measure one .tflite on a device: the machine running the workflow (`local`) or a board
reached over SSH (`ssh`, paramiko). Both run the same harness (device_harness.py), under an
exclusive lock file on the device, and write one JSON per cell atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .io import check_file, sha256_file, write_json

log = logging.getLogger("pqgrid")
HARNESS = Path(__file__).with_name("device_harness.py")
# The one place device defaults live (the schema states types only). No port: the host's
# ~/.ssh/config Port applies unless the device config sets one, else 22.
DEFAULTS = {
    "python": "python3",
    "benchmark_model": None,
    "threads": 1,  # LiteRT's default; the thesis used benchmark_model's defaults
    "warmup_runs": 1,
    "num_runs": 50,
    "remote_dir": "/tmp/pqgrid",
    "timeout": 600,
    "retries": 1,
    "trust_new_host": False,
}


class DeviceError(RuntimeError):
    """One line: which device, what went wrong, what to check."""


def settings(cfg: dict) -> dict:
    return {**DEFAULTS, **cfg}


def harness_args(cfg, model_path, lock_path):
    args = [
        model_path,
        "--threads",
        str(cfg["threads"]),
        "--warmup",
        str(cfg["warmup_runs"]),
        "--runs",
        str(cfg["num_runs"]),
        "--lock",
        lock_path,
        "--timeout",
        str(cfg["timeout"]),
    ]
    if cfg.get("benchmark_model"):
        args += ["--benchmark-model", cfg["benchmark_model"]]
    return args


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


# ---------------------------------------------------------------- local
def run_local(name, cfg, model):
    lock = os.path.join(cfg["remote_dir"], ".pqgrid.lock")
    python = sys.executable if cfg["python"] in (None, "python3") else cfg["python"]
    try:
        proc = subprocess.run(
            [python, str(HARNESS), *harness_args(cfg, str(model), lock)],
            capture_output=True,
            text=True,
            timeout=cfg["timeout"],
        )
    except subprocess.TimeoutExpired:
        raise DeviceError(
            f"device {name}: timed out after {cfg['timeout']}s; raise `timeout` or check the load"
        ) from None
    except FileNotFoundError:
        raise DeviceError(f"device {name}: python {python!r} not found; check `python` in its config") from None
    return _parse(name, proc.stdout, proc.stderr, proc.returncode)


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


class _Retryable(DeviceError):
    pass


def run_ssh(name, cfg, model):
    client, where = connect(name, cfg)
    job = f"{cfg['remote_dir'].rstrip('/')}/job-{uuid.uuid4().hex}"
    try:
        sftp = client.open_sftp()
        try:
            _exec(client, name, f"mkdir -p {shlex.quote(job)}", 30)
            sftp.put(str(HARNESS), f"{job}/harness.py")
            sftp.put(str(model), f"{job}/model.tflite")
        except OSError as e:
            raise DeviceError(
                f"device {name}: cannot write to {cfg['remote_dir']} on {where} ({e}); check free disk space and permissions"
            ) from None
        finally:
            sftp.close()
        args = harness_args(cfg, f"{job}/model.tflite", f"{cfg['remote_dir'].rstrip('/')}/.pqgrid.lock")
        cmd = " ".join(shlex.quote(a) for a in [cfg["python"], f"{job}/harness.py", *args])
        out, err, code = _exec(client, name, cmd, cfg["timeout"])
        return _parse(name, out, err, code)
    finally:
        # remove the job's files also when it failed; best effort: the error above matters
        with contextlib.suppress(Exception):
            _exec(client, name, f"rm -rf {shlex.quote(job)}", 30)
        client.close()


def _exec(client, name, cmd, timeout):
    stdin, stdout, stderr = client.exec_command(cmd, timeout=timeout)
    try:
        out = stdout.read().decode(errors="replace")
        err = stderr.read().decode(errors="replace")
    except TimeoutError:
        raise DeviceError(f"device {name}: timed out after {timeout}s; raise `timeout` or check the device") from None
    return out, err, stdout.channel.recv_exit_status()


# ---------------------------------------------------------------- the rule
def benchmark(*, tflite, out_json, name, cfg, cell):
    check_file(tflite)
    cfg = settings(cfg)
    run = run_local if cfg["type"] == "local" else run_ssh
    attempts = 1 + int(cfg["retries"])
    started = dt.datetime.now(dt.UTC).isoformat()
    for attempt in range(1, attempts + 1):
        try:
            result = run(name, cfg, tflite)
            break
        except _Retryable as e:
            if attempt == attempts:
                raise DeviceError(str(e)) from None
            log.info("%s (attempt %d/%d), retrying", e, attempt, attempts)
            time.sleep(min(10, 2**attempt))
    public_cfg = {k: v for k, v in cfg.items() if k not in ("identity_file",)}
    out = {
        "cell": cell,
        "device_name": name,
        "device_config": public_cfg,
        "model_sha256": sha256_file(tflite),
        "model_bytes": os.path.getsize(tflite),
        "started": started,
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        **result,
    }
    write_json(out_json, out)
    return out
