"""Measure one .tflite on a device: the machine running the workflow (`local`) or a board
reached over SSH (`ssh`, paramiko). Every measurement runs the same one-file harness
(harness.py) on the device, under an exclusive lock file there, and writes one JSON
per cell atomically. Three measurements, three outputs, so that one failing (a power meter
that prints nothing, a board without room for the test set) never costs another's result:

  benchmark        latency and peak memory (harness, benchmark_model or Google's
                   benchmark_litert_model), with cool-down and throttling flags
  measure_energy   power idle and under load, energy per inference (command, RAPL or a
                   stated wattage)
  device_accuracy  the cell's test set through the device's interpreter: top-1/top-3,
                   per class and per image, against the host's evaluation"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from pqgrid.core.io import atomic_path, check_file, read_json, read_predictions, sha256_file, write_json
from pqgrid.core.schema import device_with_defaults
from pqgrid.data.arrays import load_npz
from pqgrid.device import sensors
from pqgrid.device.sessions import DeviceError, _parse, session
from pqgrid.evaluate.accuracy import in_data_order, per_class_table, topk_accuracy, write_predictions

log = logging.getLogger("pqgrid")


# The one place device defaults live (the schema states types only). No port: the host's
# ~/.ssh/config Port applies unless the device config sets one, else 22.
def device_config(cfg: dict) -> dict:
    """A device's config with the schema's defaults filled in (a job's params already have
    them: the Snakefile's validate filled them; a direct call may not)."""
    return device_with_defaults(cfg)


def tool(cfg) -> str:
    # no schema default: it follows from benchmark_model (the schema's description says how)
    return cfg.get("tool") or ("benchmark_model" if cfg["benchmark_model"] else "harness")


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


# ---------------------------------------------------------------- the rules
def _record(name, cfg, tflite, cell, started, result) -> dict:
    public_cfg = {k: v for k, v in cfg.items() if k not in ("identity_file",)}
    emulation = (result.get("device") or {}).get("emulation") or {}
    if emulation.get("emulated"):
        log.warning(
            "device %s runs %s code under an emulator on a %s machine: its latency and memory are marked emulated "
            "and no finding uses them",
            name,
            emulation.get("code"),
            emulation.get("host_code"),
        )
    return {
        "cell": cell,
        "device_name": name,
        # measured on an emulator (the harness' device facts): never a hardware figure
        "emulated": bool(emulation.get("emulated")),
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
    """Stage `benchmark_on_device`: latency and peak memory of one .tflite, one timing session."""
    check_file(tflite)
    cfg = device_config(cfg)
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
    cfg = device_config(cfg)
    power = cfg["power"]
    method = power_method(power)
    host_meter = method == "command" and power["where"] == "host"
    marks = {}

    def on_line(line):  # phase markers, timed on the host's clock (the meter's clock)
        if line.startswith("PQGRID-PHASE "):
            marks[line.split()[1]] = time.time()

    started = dt.datetime.now(dt.UTC).isoformat()
    sampler = (
        sensors.PowerSampler(power["command"], power["interval_seconds"], power.get("pattern"), power["scale"])
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
            except sensors.PowerError as e:
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
    scaling, batch_size, classes, arch_cfg=None,
):  # fmt: skip
    """Stage `accuracy_on_device`: the cell's test set through the device's interpreter (the
    set shipped once per device and cached there by content), scored on the host with the
    evaluation's own functions: top-1/top-3, per class, per image, and the difference from
    the host's numbers."""

    check_file(tflite)
    cfg = device_config(cfg)
    _, y = load_npz(test_npz)
    host = read_json(host_json)
    host_predictions = read_predictions(host_predictions)
    host_labels = host_predictions["label"]
    started = dt.datetime.now(dt.UTC).isoformat()
    with session(name, cfg) as s, tempfile.TemporaryDirectory() as tmp:
        model = s.put(tflite, "model.tflite")
        images = s.put_cached(test_npz)
        args = [model, *_common_args(cfg, s.lock), "--mode", "accuracy", "--images", images]
        args += [
            "--scaling",
            scaling if isinstance(scaling, str) else json.dumps(scaling),
            "--batch-size",
            str(batch_size),
            "--scores-out",
            f"{s.job}/scores.npy",
        ]
        result = _parse(name, *s.run(args))
        s.get(f"{s.job}/scores.npy", Path(tmp) / "scores.npy")
        scores = in_data_order(np.load(Path(tmp) / "scores.npy"), arch_cfg or {}, classes)
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
        # how far the device's kernels (ARM's, another library's) move the winning score
        confidence_max_abs_diff=float(np.max(np.abs(np.max(scores, axis=1) - host_predictions["confidence"]))),
        test_images=int(len(y)),
        test_sha256=sha256_file(test_npz),
    )
    with atomic_path(out_per_class) as tmp:
        per_class_table(y, labels, classes).to_csv(tmp, index=False)
    write_predictions(out_predictions, scores, y, test_npz)
    record = _record(name, cfg, tflite, cell, started, result)
    write_json(out_json, record)
    return record
