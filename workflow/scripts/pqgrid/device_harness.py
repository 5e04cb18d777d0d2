#!/usr/bin/env python3
"""Self-contained latency and memory benchmark of one .tflite, run ON the device.

Copied to the device as one file: needs only the standard library, numpy and one of
ai_edge_litert / tflite_runtime / tensorflow. Does what LiteRT's benchmark_model does
(random inputs of the model's dtype, warm-up runs, timed runs) and prints one JSON line.
Holds an exclusive lock on `--lock` while measuring, so two workflow instances or cluster
jobs never time on the same board at once.

    python3 device_harness.py model.tflite --threads 4 --warmup 1 --runs 50 --lock /tmp/pqgrid/.lock
    python3 device_harness.py --benchmark-model /path/benchmark_model model.tflite ...
"""

import argparse
import fcntl
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import time


def rss_mb(field="VmRSS"):
    """Current (VmRSS) or peak (VmHWM) resident memory of this process in MB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def cpu_model(cpuinfo, lscpu=None):
    """The CPU's name from /proc/cpuinfo: "model name" on x86 (whose "model" is a number),
    "Model" (the board, e.g. Raspberry Pi 4 Model B) or "Hardware" on ARM; else lscpu's
    "Model name"."""
    fields = {}
    for line in (cpuinfo or "").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "model", "hardware"):
        value = fields.get(key)
        if value and not value.isdigit():
            return value
    for line in (lscpu or "").splitlines():
        if line.lower().startswith("model name:"):
            return line.split(":", 1)[1].strip()
    return None


def _lscpu():
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def device_facts():
    cpuinfo = read("/proc/cpuinfo")
    cpu = cpu_model(cpuinfo) or cpu_model(None, _lscpu())
    mem = None
    for line in (read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) / 1024.0
    temp = read("/sys/class/thermal/thermal_zone0/temp")
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_mb": mem,
        "cpu_governor": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_max_khz": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq"),
        "temperature_c": int(temp) / 1000.0 if temp and temp.lstrip("-").isdigit() else None,
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
    }


def load_interpreter():
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert", getattr(ai_edge_litert, "__version__", None)
    except ImportError:
        pass
    try:
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime", getattr(tflite_runtime, "__version__", None)
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow", tf.__version__
    except ImportError:
        raise SystemExit("no TFLite runtime on this device: pip install ai-edge-litert numpy") from None


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def harness(model, threads, warmup, runs):
    import numpy as np

    Interpreter, runtime, version = load_interpreter()
    rss_start = rss_mb()
    t0 = time.perf_counter()
    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    init_us = (time.perf_counter() - t0) * 1e6
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        dt = np.dtype(d["dtype"])
        if dt.kind == "f":
            x = rng.random(d["shape"], dtype=np.float32).astype(dt)
        else:
            info = np.iinfo(dt)
            x = rng.integers(info.min, info.max, size=d["shape"], endpoint=True).astype(dt)
        it.set_tensor(d["index"], x)
    t = time.perf_counter()
    it.invoke()
    first_us = (time.perf_counter() - t) * 1e6
    for _ in range(max(0, warmup - 1)):
        it.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t) * 1e6)
    s = sorted(times)
    peak = rss_mb("VmHWM")
    return {
        "tool": "pqgrid-harness",
        "runtime": runtime,
        "runtime_version": version,
        "numpy_version": np.__version__,
        "init_us": init_us,
        "first_inference_us": first_us,
        "avg_us": statistics.fmean(times),
        "std_us": statistics.pstdev(times),
        "min_us": s[0],
        "max_us": s[-1],
        "p50_us": percentile(s, 50),
        "p90_us": percentile(s, 90),
        "p99_us": percentile(s, 99),
        "count": runs,
        # One meaning per name: the growth of the peak over the start (what benchmark_model
        # and the thesis call the memory footprint), and the whole process' peak.
        "ram_delta_mb": peak - rss_start,
        "process_peak_rss_mb": peak,
    }


NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def parse_benchmark_model(text):
    """Parse LiteRT/TFLite benchmark_model output, old (TF 2.x: no prefix, no percentiles,
    'Peak memory footprint') and current (LiteRT: 'INFO: ' prefixes, p5/median/p95,
    'Memory footprint delta'). The last `count=` line is the timed run."""
    lines = [re.sub(r"^(INFO|I\d*|WARNING):\s*", "", line.strip()) for line in text.splitlines()]
    counts = [line for line in lines if line.startswith("count=")]
    if not counts:
        raise ValueError("benchmark_model printed no 'count=' line; is the model valid?")
    stats = dict(re.findall(r"(\w+)=" + NUM, counts[-1]))
    out = {"tool": "benchmark_model", "count": int(float(stats["count"]))}
    for key, name in (
        ("avg", "avg_us"),
        ("std", "std_us"),
        ("min", "min_us"),
        ("max", "max_us"),
        ("first", "first_run_us"),
        ("median", "p50_us"),
        ("p5", "p5_us"),
        ("p95", "p95_us"),
    ):
        if key in stats:
            out[name] = float(stats[key])
    for line in lines:
        m = re.search(r"Init: " + NUM + r".*First inference: " + NUM, line)
        if m:
            out["init_us"], out["first_inference_us"] = float(m.group(1)), float(m.group(2))
        m = re.search(r"Initialized session in " + NUM + "ms", line)
        if m and "init_us" not in out:
            out["init_us"] = float(m.group(1)) * 1000
        m = re.search(
            r"(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): init="
            + NUM
            + " overall="
            + NUM,
            line,
        )
        if m:
            # Both wordings (TF 2.x "Peak memory footprint", LiteRT "... delta from the start
            # of the tool") print the same quantity: peak RSS minus the tool's RSS at start.
            out["ram_delta_init_mb"], out["ram_delta_mb"] = float(m.group(2)), float(m.group(3))
        m = re.search(r"Overall peak memory footprint \(MB\) via periodic monitoring: " + NUM, line)
        if m:
            out["process_peak_rss_mb"] = float(m.group(1))
    return out


def run_benchmark_model(binary, model, threads, warmup, runs, timeout):
    cmd = [binary, f"--graph={model}", f"--num_threads={threads}", f"--warmup_runs={warmup}", f"--num_runs={runs}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    text = proc.stdout + proc.stderr
    if proc.returncode:
        raise SystemExit(f"benchmark_model exited {proc.returncode}: {text.strip().splitlines()[-1:]}")
    out = parse_benchmark_model(text)
    out["raw_output_tail"] = text[-2000:]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--lock", default=None)
    ap.add_argument("--benchmark-model", default=None)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args(argv)
    lock = None
    t_wait = time.time()
    if a.lock:
        os.makedirs(os.path.dirname(a.lock) or ".", exist_ok=True)
        lock = open(a.lock, "a")  # noqa: SIM115 - held (and locked) until the process exits
        fcntl.flock(lock, fcntl.LOCK_EX)  # one measurement per device at a time
    start = time.time()
    if a.benchmark_model:
        result = run_benchmark_model(a.benchmark_model, a.model, a.threads, a.warmup, a.runs, a.timeout)
    else:
        result = harness(a.model, a.threads, a.warmup, a.runs)
    end = time.time()
    if lock:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    result.update(
        {
            "threads": a.threads,
            "warmup_runs": a.warmup,
            "num_runs": a.runs,
            "device": device_facts(),
            "lock_wait_s": start - t_wait,
            "measured_from": start,
            "measured_to": end,
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
