"""Measure one .tflite on a device: the machine running the workflow (`local`) or a board
reached over SSH (`ssh`, paramiko). Every measurement runs the same one-file harness
(device_harness.py) on the device, under an exclusive lock file there, and writes one JSON
per cell atomically. Three measurements, three outputs, so that one failing (a power meter
that prints nothing, a board without room for the test set) never costs another's result:

  benchmark        latency and peak memory (harness, benchmark_model or Google's
                   benchmark_litert_model), with cool-down and throttling flags
  measure_energy   power idle and under load, energy per inference (command, RAPL or a
                   stated wattage)
  device_accuracy  the cell's test set through the device's interpreter: top-1/top-3,
                   per class and per image, against the host's evaluation
"""

from __future__ import annotations

import contextlib
import datetime as dt
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

import numpy as np

from . import device_harness
from .data import load_npz
from .evaluate import per_class_table, topk_accuracy, write_predictions
from .io import atomic_path, check_file, read_json, read_predictions, sha256_file, write_json

log = logging.getLogger("pqgrid")
HARNESS = Path(device_harness.__file__)
# The one place device defaults live (the schema states types only). No port: the host's
# ~/.ssh/config Port applies unless the device config sets one, else 22.
DEFAULTS = {
    "python": "python3",
    "tool": None,  # harness | benchmark_model | benchmark_litert_model; None: benchmark_model if its path is set
    "benchmark_model": None,
    "op_profiling": False,
    "threads": 1,  # LiteRT's default; the thesis used benchmark_model's defaults
    "warmup_runs": 1,
    "num_runs": 50,
    "remote_dir": "/tmp/pqgrid",
    "timeout": 600,
    "retries": 1,
    "trust_new_host": False,
    "accuracy": False,
    "power": None,
    "cooldown": None,
}
POWER_DEFAULTS = {"where": "host", "interval_seconds": 1.0, "idle_seconds": 10.0, "load_seconds": 20.0, "scale": 1.0}
COOLDOWN_DEFAULTS = {"sensor": "/sys/class/thermal/thermal_zone0/temp", "timeout_seconds": 300.0}


class DeviceError(RuntimeError):
    """One line: which device, what went wrong, what to check."""


class _Retryable(DeviceError):
    pass


def settings(cfg: dict) -> dict:
    out = {**DEFAULTS, **cfg}
    if out["power"]:
        out["power"] = {**POWER_DEFAULTS, **out["power"]}
    if out["cooldown"]:
        out["cooldown"] = {**COOLDOWN_DEFAULTS, **out["cooldown"]}
    return out


def tool(cfg) -> str:
    return cfg["tool"] or ("benchmark_model" if cfg["benchmark_model"] else "harness")


def power_method(power) -> str:
    """How a device's power is known: command, rapl or fixed (one of them is set)."""
    return "command" if power.get("command") else "rapl" if power.get("rapl") else "fixed"


def _common_args(cfg, lock_path):
    args = ["--threads", str(cfg["threads"]), "--lock", lock_path, "--timeout", str(cfg["timeout"])]
    cool = cfg["cooldown"]
    if cool:
        args += ["--max-temp-c", str(cool["max_temp_c"]), "--cooldown-timeout", str(cool["timeout_seconds"])]
        args += ["--temp-sensor", cool["sensor"]]
    return args


def latency_args(cfg, job):
    args = ["--warmup", str(cfg["warmup_runs"]), "--runs", str(cfg["num_runs"]), "--tool", tool(cfg)]
    if cfg.get("benchmark_model"):
        args += ["--benchmark-model", cfg["benchmark_model"]]
    if cfg["op_profiling"] and tool(cfg) == "benchmark_model":
        args += ["--op-profile", f"{job}/ops.csv"]
    return args


def energy_args(cfg):
    p = cfg["power"]
    args = ["--mode", "energy", "--warmup", str(cfg["warmup_runs"]), "--load-s", str(p["load_seconds"])]
    method = power_method(p)
    # A stated wattage needs no idle baseline: it is the same number idle or not.
    args += ["--idle-s", "0" if method == "fixed" else str(p["idle_seconds"])]
    if method == "rapl":
        args += ["--rapl", p["rapl"]]
    if method == "command" and p["where"] == "device":
        args += ["--power-command", p["command"], "--power-interval", str(p["interval_seconds"])]
        args += ["--power-scale", str(p["scale"])]
        if p.get("pattern"):
            args += ["--power-pattern", p["pattern"]]
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


# ---------------------------------------------------------------- sessions
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
        _exec(self.client, name, f"mkdir -p {shlex.quote(self.job)}", 30)
        self.put(HARNESS, "harness.py")

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
        cmd = " ".join(shlex.quote(a) for a in [self.cfg["python"], f"{self.job}/harness.py", *args])
        return _exec(self.client, self.name, cmd, self.cfg["timeout"], on_line)

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


@contextlib.contextmanager
def session(name, cfg):
    """An open session on the device, connection failures retried `retries` times."""
    attempts = 1 + int(cfg["retries"])
    for attempt in range(1, attempts + 1):
        try:
            s = LocalSession(name, cfg) if cfg["type"] == "local" else SSHSession(name, cfg)
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


# ---------------------------------------------------------------- the rules
def _record(name, cfg, tflite, cell, started, result) -> dict:
    public_cfg = {k: v for k, v in cfg.items() if k not in ("identity_file",)}
    return {
        "cell": cell,
        "device_name": name,
        "device_config": public_cfg,
        "model_sha256": sha256_file(tflite),
        "model_bytes": os.path.getsize(tflite),
        "started": started,
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        **result,
    }


def _warn_throttled(name, result):
    if result.get("throttled"):
        log.warning("device %s throttled during the measurement (vcgencmd get_throttled); its timing is flagged", name)
    if result.get("cooldown_timed_out"):
        log.warning(
            "device %s: still above %s °C after the cool-down timeout; measured anyway and flagged",
            name,
            result["cooldown_c"],
        )


def benchmark(*, tflite, out_json, name, cfg, cell):
    """Stage `benchmark_on_device`: latency and peak memory of one .tflite."""
    check_file(tflite)
    cfg = settings(cfg)
    started = dt.datetime.now(dt.UTC).isoformat()
    with session(name, cfg) as s:
        model = s.put(tflite, "model.tflite")
        out, err, code = s.run([model, *_common_args(cfg, s.lock), *latency_args(cfg, s.job)])
        result = _parse(name, out, err, code)
    _warn_throttled(name, result)
    record = _record(name, cfg, tflite, cell, started, result)
    write_json(out_json, record)
    return record


def energy_fields(method, load_w, inferences, load_s, idle_w=None) -> dict:
    """Energy per inference from mean power under load over a window of `inferences`
    back-to-back inferences lasting `load_s` seconds: total (what the battery pays) and, with
    an idle baseline, net of idle (what the model adds). mJ per inference."""
    out = {
        "energy_method": method,
        "power_load_w": load_w,
        "inferences": inferences,
        "load_s": load_s,
        "energy_mj_per_inference": load_w * load_s / inferences * 1e3,
    }
    if idle_w is not None:
        out["power_idle_w"] = idle_w
        out["energy_net_mj_per_inference"] = (load_w - idle_w) * load_s / inferences * 1e3
    return out


def measure_energy(*, tflite, out_json, name, cfg, cell):
    """Stage `energy_on_device`: power idle (the baseline just before) and under load, and
    energy per inference, from the device's `power` source."""
    check_file(tflite)
    cfg = settings(cfg)
    power = cfg["power"]
    method = power_method(power)
    host_meter = method == "command" and power["where"] == "host"
    marks = {}

    def on_line(line):  # phase markers, timed on the host's clock (the meter's clock)
        if line.startswith("PQGRID-PHASE "):
            marks[line.split()[1]] = time.time()

    started = dt.datetime.now(dt.UTC).isoformat()
    sampler = (
        device_harness.PowerSampler(power["command"], power["interval_seconds"], power.get("pattern"), power["scale"])
        if host_meter
        else contextlib.nullcontext()
    )
    with session(name, cfg) as s, sampler as meter:
        model = s.put(tflite, "model.tflite")
        out, err, code = s.run([model, *_common_args(cfg, s.lock), *energy_args(cfg)], on_line=on_line)
        if code and "power: " in (err.strip().splitlines() or [""])[-1]:
            raise DeviceError(f"device {name}: {err.strip().splitlines()[-1]}")
        result = _parse(name, out, err, code)
        if host_meter:
            try:
                idle_w, result["idle_samples"] = meter.mean(marks["idle-start"], marks["idle-end"], "idle")
                load_w, result["load_samples"] = meter.mean(marks["load-start"], marks["load-end"], "load")
            except device_harness.PowerError as e:
                raise DeviceError(f"device {name}: power: {e}") from None
            except KeyError:
                raise DeviceError(f"device {name}: the harness printed no phase markers; is it current?") from None
            result.update(power_idle_w=idle_w, power_load_w=load_w)
    if method == "fixed":
        result["power_load_w"] = float(power["watts"])  # no idle baseline: the same number idle or not
    fields = energy_fields(
        {"command": f"command on the {power['where']}", "rapl": "rapl", "fixed": "fixed (stated, not measured)"}[
            method
        ],
        result["power_load_w"],
        result["inferences"],
        result["load_s"],
        result.get("power_idle_w"),
    )
    _warn_throttled(name, result)
    record = _record(name, cfg, tflite, cell, started, {**result, **fields})
    write_json(out_json, record)
    return record


def device_accuracy(
    *, tflite, test_npz, host_json, host_predictions, out_json, out_predictions, out_per_class, name, cfg, cell,
    scaling, batch_size, classes,
):  # fmt: skip
    """Stage `accuracy_on_device`: the cell's test set through the device's interpreter (the
    set shipped once per device and cached there by content), scored on the host with the
    evaluation's own functions: top-1/top-3, per class, per image, and the difference from
    the host's numbers."""

    check_file(tflite)
    cfg = settings(cfg)
    _, y = load_npz(test_npz)
    host = read_json(host_json)
    host_labels = read_predictions(host_predictions)["label"]
    started = dt.datetime.now(dt.UTC).isoformat()
    with session(name, cfg) as s, tempfile.TemporaryDirectory() as tmp:
        model = s.put(tflite, "model.tflite")
        images = s.put_cached(test_npz)
        args = [model, *_common_args(cfg, s.lock), "--mode", "accuracy", "--images", images]
        args += ["--scaling", scaling, "--batch-size", str(batch_size), "--scores-out", f"{s.job}/scores.npy"]
        result = _parse(name, *s.run(args))
        s.get(f"{s.job}/scores.npy", Path(tmp) / "scores.npy")
        scores = np.load(Path(tmp) / "scores.npy")
    if scores.shape[0] != len(y):
        raise DeviceError(f"device {name}: {scores.shape[0]} scores for {len(y)} test images")
    top1 = topk_accuracy(scores, y, 1)
    labels = np.argmax(scores, axis=1)
    result.update(
        top1=top1,
        top3=topk_accuracy(scores, y, 3),
        host_top1=host["top1"],
        top1_host_diff_pp=(top1 - host["top1"]) * 100,
        answers_differing_from_host=int((labels != host_labels).sum()),
        test_images=int(len(y)),
        test_sha256=sha256_file(test_npz),
    )
    with atomic_path(out_per_class) as tmp:
        per_class_table(y, labels, classes).to_csv(tmp, index=False)
    write_predictions(out_predictions, scores, y, test_npz)
    record = _record(name, cfg, tflite, cell, started, result)
    write_json(out_json, record)
    return record
