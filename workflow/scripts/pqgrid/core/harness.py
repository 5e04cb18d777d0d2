#!/usr/bin/env python3
"""Self-contained measurements of one .tflite, run ON the device.

Copied to the device as one file: needs only the standard library, numpy and one of
ai_edge_litert / tflite_runtime / tensorflow. Prints one JSON line (the last line of
stdout). Holds an exclusive lock on `--lock` while measuring, so two workflow instances
or cluster jobs never measure on the same board at once. Three modes:

  latency   what LiteRT's benchmark_model does: random inputs of the model's dtype,
            warm-up runs, timed runs - with pqgrid's loop (`--tool harness`), LiteRT's
            benchmark_model binary or Google's Python benchmark_litert_model tool
  energy    an idle window, then inferences back to back for a load window, with power
            read from a command's samples or Linux RAPL; prints PQGRID-PHASE marker lines
            so a power meter read on the host can cut its samples to the same windows
  accuracy  the test images (an .npz with x) through the interpreter, batched, in the
            same way the host evaluates them (`predict_scores` is that one definition);
            the class scores go to --scores-out (.npy)

    python3 harness.py model.tflite --threads 4 --warmup 1 --runs 50 --lock /tmp/pqgrid/.lock
    python3 harness.py model.tflite --tool benchmark_model --benchmark-model /path/benchmark_model
    python3 harness.py model.tflite --mode energy --idle-s 10 --load-s 20 --rapl /sys/class/powercap/intel-rapl:0
    python3 harness.py model.tflite --mode accuracy --images test.npz --scaling tf --scores-out scores.npy

Before a latency or energy measurement it may wait for the board to cool down
(`--max-temp-c`), and it records the CPU frequency and (Raspberry Pi) `vcgencmd
get_throttled` before and after, flagging a run during which the board throttled.
"""

import argparse
import fcntl
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
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


# ELF e_machine values of the instruction sets a board may run.
ELF_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv64"}


def elf_machine(path):
    """The instruction set an ELF file is built for (e_machine at byte 18), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little" if head[5] == 1 else "big"), "other")


def emulation():
    """Whether this process runs under an emulator (qemu user mode): its own code's
    instruction set (what qemu shows it: /proc/self/exe) against that of the process that
    started it, which the emulator does not rewrite. On a real board both are the board's;
    under qemu-aarch64 on an x86 machine the parent is x86_64. None when it cannot be read."""
    own = elf_machine("/proc/self/exe")
    parent = elf_machine(f"/proc/{os.getppid()}/exe")
    if own is None or parent is None:
        return None
    return {"emulated": own != parent, "code": own, "host_code": parent}


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
        # latency and memory of an emulated device say nothing about hardware: the report marks them
        "emulation": emulation(),
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


# ---------------------------------------------------------------- inputs and scores
# torchvision's ImageNet normalisation, for models trained the PyTorch way
TORCH_SCALING = {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def scale_inputs(x, scaling):
    """uint8 images -> what the model takes. 'tf': MobileNet/MobileNetV2 `preprocess_input`
    (x/127.5 - 1), done outside the model. 'raw': MobileNetV3/EfficientNet rescale inside
    the model and take 0..255 floats. 'torch': x/255 normalised with ImageNet's mean and
    std per channel. A mapping {scale, mean, std} (or its JSON text, as the command line
    passes it): (x * scale - mean) / std, each default neutral. The one definition: the
    device must feed its interpreter exactly what the host feeds."""
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    if isinstance(scaling, str) and scaling.startswith("{"):
        scaling = json.loads(scaling)
    if scaling == "tf":
        return x / 127.5 - 1.0
    if scaling == "raw":
        return x
    if scaling == "torch":
        scaling = TORCH_SCALING
    if isinstance(scaling, dict):
        mean = np.asarray(scaling.get("mean", 0.0), dtype=np.float32)
        std = np.asarray(scaling.get("std", 1.0), dtype=np.float32)
        return (x * np.float32(scaling.get("scale", 1.0)) - mean) / std
    raise ValueError(f"unknown input scaling {scaling!r}")


def predict_scores(it, x, batch_size=256, scaling=None):
    """Class scores of every image through interpreter `it` (not yet allocated),
    `batch_size` images per invoke. The last batch is padded so the interpreter is resized
    once, not per batch. int8 inputs/outputs are (de)quantized with the tensor's own scale
    and zero point. With `scaling` ("tf"/"raw"), `x` is the uint8 images and each batch is
    scaled on its own: a float copy of a 224 px test set would need 4x its uint8 size."""
    import numpy as np

    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    n = len(x)
    b = min(batch_size, n)
    it.resize_tensor_input(inp["index"], [b, *x.shape[1:]])
    it.allocate_tensors()
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    scores = []
    for start in range(0, n, b):
        chunk = x[start : start + b]
        if scaling is not None:
            chunk = scale_inputs(chunk, scaling)
        real = len(chunk)
        if real < b:
            chunk = np.concatenate([chunk, np.zeros((b - real, *chunk.shape[1:]), chunk.dtype)])
        if inp["dtype"] != np.float32:
            info = np.iinfo(inp["dtype"])
            chunk = np.clip(np.round(chunk / in_scale + in_zero), info.min, info.max)
        it.set_tensor(inp["index"], chunk.astype(inp["dtype"]))
        it.invoke()
        res = it.get_tensor(out["index"])[:real]
        if out["dtype"] != np.float32:
            res = (res.astype(np.float32) - out_zero) * out_scale
        scores.append(res)
    return np.concatenate(scores)


def accuracy(model, threads, images, scaling, batch_size, scores_out):
    """Mode `accuracy`: the class scores of the test images, saved to `scores_out`."""
    import numpy as np

    Interpreter, runtime, version = load_interpreter()
    try:
        with np.load(images) as f:
            x = f["x"]
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"cannot read the test images {images}: {e}") from None
    t0 = time.perf_counter()
    scores = predict_scores(Interpreter(model_path=model, num_threads=threads), x, batch_size, scaling)
    seconds = time.perf_counter() - t0
    tmp = scores_out + ".part.npy"
    np.save(tmp, scores.astype(np.float32))
    os.replace(tmp, scores_out)
    return {
        "tool": "pqgrid-harness",
        "runtime": runtime,
        "runtime_version": version,
        "images": int(len(x)),
        "eval_s": seconds,
    }


def _random_inputs(it):
    """Random inputs of each input's dtype (what benchmark_model feeds), seeded."""
    import numpy as np

    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        dt = np.dtype(d["dtype"])
        if dt.kind == "f":
            x = rng.random(d["shape"], dtype=np.float32).astype(dt)
        else:
            info = np.iinfo(dt)
            x = rng.integers(info.min, info.max, size=d["shape"], endpoint=True).astype(dt)
        it.set_tensor(d["index"], x)


# ---------------------------------------------------------------- latency
def harness(model, threads, warmup, runs):
    import numpy as np

    Interpreter, runtime, version = load_interpreter()
    rss_start = rss_mb()
    t0 = time.perf_counter()
    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    init_us = (time.perf_counter() - t0) * 1e6
    _random_inputs(it)
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
    'Memory footprint delta'). The last `count=` line is the timed run. Its forms
    (tsl::Stat::OutputToStream, quoted in tests/fixtures/README.md): "count=N first=F
    curr=C min=m max=M avg=A std=S", "count=N curr=C(all same)" when every run took the
    same time, each followed by " p5=.. median=.. p95=.." where percentiles are kept."""
    lines = [re.sub(r"^(INFO|I\d*|WARNING):\s*", "", line.strip()) for line in text.splitlines()]
    counts = [line for line in lines if line.startswith("count=")]
    if not counts:
        raise ValueError("benchmark_model printed no 'count=' line; is the model valid?")
    stats = dict(re.findall(r"(\w+)=" + NUM, counts[-1]))
    out = {"tool": "benchmark_model", "count": int(float(stats["count"]))}
    if "(all same)" in counts[-1] or ("avg" not in stats and "curr" in stats):
        value = float(stats["curr"])  # every run took `curr` us
        stats.update({"avg": value, "std": 0.0, "min": value, "max": value, "first": value})
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


OP_PROFILE_COLUMNS = {
    "node type": "node_type",
    "start": "start_ms",
    "first": "first_ms",
    "avg_ms": "avg_ms",
    "%": "percent",
    "cdf%": "cdf_percent",
    "mem KB": "mem_kb",
    "times called": "times_called",
    "name": "name",
}


def parse_op_profile(text):
    """benchmark_model's per-op profile in CSV mode (--enable_op_profiling
    --op_profiling_output_mode=csv): the "Run Order" section of StatsCalculator's output,
    one dict per op. The header names the columns (newer versions add `start`); the name
    comes last and had its commas replaced by tabs by the tool."""
    lines = text.splitlines()
    try:
        i = next(k for k, line in enumerate(lines) if "= Run Order =" in line)
    except StopIteration:
        return []
    header = [h.strip() for h in lines[i + 1].split(",")]
    keys = [OP_PROFILE_COLUMNS.get(h, h) for h in header]
    rows = []
    for line in lines[i + 2 :]:
        if not line.strip() or line.startswith("="):
            break
        cells = [c.strip() for c in line.split(",", len(keys) - 1)]
        row = dict(zip(keys, cells, strict=False))
        for k, v in row.items():
            if k not in ("node_type", "name"):
                row[k] = float(v.rstrip("%"))
        rows.append(row)
    return rows


def run_benchmark_model(binary, model, threads, warmup, runs, timeout, op_profile=None):
    cmd = [binary, f"--graph={model}", f"--num_threads={threads}", f"--warmup_runs={warmup}", f"--num_runs={runs}"]
    if op_profile:
        cmd += [
            "--enable_op_profiling=true",
            "--op_profiling_output_mode=csv",
            f"--op_profiling_output_file={op_profile}",
        ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    text = proc.stdout + proc.stderr
    if proc.returncode:
        raise SystemExit(f"benchmark_model exited {proc.returncode}: {text.strip().splitlines()[-1:]}")
    out = parse_benchmark_model(text)
    out["raw_output_tail"] = text[-2000:]
    if op_profile and os.path.exists(op_profile):
        with open(op_profile) as fh:
            out["op_profile"] = parse_op_profile(fh.read())
    return out


# Google's Python tool (ai_edge_litert/tools/benchmark_litert_model.py, CompiledModel API)
# prints these lines after "BENCHMARK RESULTS" (f-strings quoted in tests/fixtures/README.md).
LITERT_TOOL_FIELDS = {
    "Model initialization": "init_us",
    "Warmup (first)": "first_inference_us",
    "Inference (avg)": "avg_us",
    "Inference (min)": "min_us",
    "Inference (max)": "max_us",
    "Inference (median)": "p50_us",
    "Inference (std)": "std_us",
    "Inference (p5)": "p5_us",
    "Inference (p95)": "p95_us",
}


def parse_litert_tool(text):
    """The stdout of benchmark_litert_model: milliseconds with 2 decimals -> microseconds
    (so its resolution is 10 us: compare it on models slower than ~1 ms)."""
    out = {"tool": "benchmark_litert_model"}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z ()0-9]+?):\s+" + NUM + r" ms(?: \((\d+) runs\))?", line)
        if m and m.group(1) in LITERT_TOOL_FIELDS:
            out[LITERT_TOOL_FIELDS[m.group(1)]] = float(m.group(2)) * 1000
            if m.group(1) == "Inference (avg)" and m.group(3):
                out["count"] = int(m.group(3))
        m = re.match(r"\s*Fully accelerated:\s+(\w+)", line)
        if m:
            out["fully_accelerated"] = m.group(1) == "True"
    if "avg_us" not in out:
        raise ValueError("benchmark_litert_model printed no 'Inference (avg)' line; is the model valid?")
    return out


def run_litert_tool(model, threads, warmup, runs, timeout):
    cmd = [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={model}"]
    cmd += [f"--num_threads={threads}", f"--warmup_runs={warmup}", f"--num_runs={runs}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    text = proc.stdout + proc.stderr
    if proc.returncode:
        raise SystemExit(f"benchmark_litert_model exited {proc.returncode}: {text.strip().splitlines()[-1:]}")
    out = parse_litert_tool(proc.stdout)
    # The tool reports no memory; the child's peak resident memory is what the OS saw.
    out["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    out["raw_output_tail"] = proc.stdout[-2000:]  # the results; stderr holds LiteRT's registry noise
    return out


# ---------------------------------------------------------------- energy
class PowerError(RuntimeError):
    """The power source failed: what and why, in one line."""


def last_number(line, pattern=None):
    """The watt value in one line of a power command's output: `pattern`'s first group,
    else the line's last number ("2.04 W", "power: 2.1W", "5.1 V 0.4 A 2.04 W" -> 2.04)."""
    if pattern:
        m = re.search(pattern, line)
        return float(m.group(1)) if m else None
    found = re.findall(NUM, line)
    return float(found[-1]) if found else None


class PowerSampler:
    """Runs a user's power command in the background and keeps (time, watts) samples. A
    command that exits 0 (a one-shot reading) is started again every `interval` seconds;
    one that keeps running (a stream of readings) is read line by line. A command that
    exits non-zero stops the sampling with its last error line."""

    def __init__(self, command, interval=1.0, pattern=None, scale=1.0):
        self.command, self.interval, self.pattern, self.scale = command, interval, pattern, scale
        self.samples, self.error, self.lines = [], None, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._proc = None

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
        self._thread.join(timeout=10)

    def _run(self):
        while not self._stop.is_set():
            t_start = time.time()
            try:
                self._proc = subprocess.Popen(
                    self.command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            except OSError as e:
                self.error = f"cannot start the power command ({e})"
                return
            for line in self._proc.stdout:
                self.lines += 1
                value = last_number(line, self.pattern)
                if value is not None:
                    self.samples.append((time.time(), value * self.scale))
                if self._stop.is_set():
                    break
            code = self._proc.wait()
            if code and not self._stop.is_set():
                err = (self._proc.stderr.read().strip().splitlines() or [f"exit status {code}"])[-1]
                self.error = f"the power command failed (exit {code}): {err[:200]}"
                return
            self._stop.wait(max(0.0, self.interval - (time.time() - t_start)))

    def mean(self, t0, t1, what):
        """Mean watts of the samples taken in [t0, t1]."""
        if self.error:
            raise PowerError(self.error)
        inside = [w for t, w in self.samples if t0 <= t <= t1]
        if not inside:
            printed = "printed no number" if not self.samples else f"gave no sample in the {what} window"
            raise PowerError(
                f"the power command {printed} ({self.lines} lines read in {t1 - t0:.1f} s of {what}); "
                "check the command, its `pattern`, and lengthen idle_seconds/load_seconds"
            )
        return statistics.fmean(inside), len(inside)


class Rapl:
    """Linux RAPL (/sys/class/powercap/<zone>): an energy counter in uJ, read at the ends
    of a window; wraps at max_energy_range_uj. Since Linux 5.10 energy_uj is readable by
    root only (the PLATYPUS side channel)."""

    def __init__(self, zone):
        self.zone = zone.rstrip("/")
        self.max_uj = self._read("max_energy_range_uj")
        self._read("energy_uj")

    def _read(self, name):
        path = f"{self.zone}/{name}"
        try:
            with open(path) as fh:
                return int(fh.read().strip())
        except (OSError, ValueError) as e:
            raise PowerError(
                f"cannot read RAPL file {path} ({e}); run as root or `chmod o+r` it, or choose another power source"
            ) from None

    def read(self):
        return time.time(), self._read("energy_uj")

    def watts(self, a, b):
        (t0, e0), (t1, e1) = a, b
        delta = e1 - e0 if e1 >= e0 else e1 + self.max_uj - e0
        return delta / 1e6 / (t1 - t0)


def phase(name):
    """A marker line on stdout: the host cuts a host-side power meter's samples here."""
    print(f"PQGRID-PHASE {name} {time.time():.6f}", flush=True)


def energy(
    model, threads, warmup, idle_s, load_s, power_command=None, interval=1.0, pattern=None, scale=1.0, rapl=None
):
    """Mode `energy`: `idle_s` seconds idle (the baseline, just before), then inferences
    back to back for `load_s` seconds. Power from a command run here on the device, from
    RAPL, or (neither) read by the host between the phase markers."""
    Interpreter, runtime, version = load_interpreter()
    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    _random_inputs(it)
    for _ in range(max(1, warmup)):
        it.invoke()
    sampler = PowerSampler(power_command, interval, pattern, scale) if power_command else None
    if sampler:
        sampler.__enter__()
    try:
        meter = Rapl(rapl) if rapl else None
        phase("idle-start")
        idle = (meter.read() if meter else None, time.time())
        time.sleep(idle_s)
        idle_end = (meter.read() if meter else None, time.time())
        phase("idle-end")
        phase("load-start")
        load = (meter.read() if meter else None, time.time())
        n = 0
        t0 = time.perf_counter()
        while True:
            it.invoke()
            n += 1
            if time.perf_counter() - t0 >= load_s:
                break
        seconds = time.perf_counter() - t0
        load_end = (meter.read() if meter else None, time.time())
        phase("load-end")
        out = {"tool": "pqgrid-harness", "runtime": runtime, "runtime_version": version}
        out.update({"inferences": n, "load_s": seconds, "idle_s": idle_end[1] - idle[1]})
        out["avg_us"] = seconds / n * 1e6
        if meter:
            out["power_idle_w"] = meter.watts(idle[0], idle_end[0])
            out["power_load_w"] = meter.watts(load[0], load_end[0])
        elif sampler:
            out["power_idle_w"], out["idle_samples"] = sampler.mean(idle[1], idle_end[1], "idle")
            out["power_load_w"], out["load_samples"] = sampler.mean(load[1], load_end[1], "load")
    except PowerError as e:
        raise SystemExit(f"power: {e}") from None
    finally:
        if sampler:
            sampler.__exit__()
    return out


# ---------------------------------------------------------------- fair timings
def temperature_c(sensor):
    raw = read(sensor)
    return int(raw) / 1000.0 if raw and raw.lstrip("-").isdigit() else None


def cool_down(sensor, max_c, timeout):
    """Wait until the sensor reads at most `max_c` (checked every 2 s), at most `timeout` s."""
    t0 = time.time()
    temp = temperature_c(sensor)
    if temp is None:
        return {"cooldown_c": max_c, "cooldown_wait_s": 0.0, "cooldown_timed_out": None, "cooldown_start_c": None}
    start = temp
    while temp is not None and temp > max_c and time.time() - t0 < timeout:
        time.sleep(2)
        temp = temperature_c(sensor)
    return {
        "cooldown_c": max_c,
        "cooldown_start_c": start,
        "cooldown_wait_s": time.time() - t0,
        "cooldown_timed_out": bool(temp is not None and temp > max_c),
    }


def throttle_state(sensor):
    """What the board says about itself now: temperature, current CPU frequency, and the
    Raspberry Pi firmware's throttling bits (`vcgencmd get_throttled`, None elsewhere)."""
    state = {
        "temperature_c": temperature_c(sensor),
        "cpu_cur_khz": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"),
        "throttled_bits": None,
    }
    if shutil.which("vcgencmd"):
        try:
            text = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=10).stdout
            m = re.search(r"throttled=(0x[0-9a-fA-F]+)", text)
            state["throttled_bits"] = int(m.group(1), 16) if m else None
        except (OSError, subprocess.SubprocessError):
            pass
    return state


# vcgencmd get_throttled: bits 0-3 = now (under-voltage, ARM frequency capped, throttled,
# soft temperature limit), bits 16-19 = the same since boot.
THROTTLE_NOW, THROTTLE_SINCE_BOOT = 0xF, 0xF0000


def throttled(before, after):
    """True when the board throttled during the run: a "now" bit set before or after, or a
    "since boot" bit that appeared; None where the board cannot say (no vcgencmd)."""
    b, a = before["throttled_bits"], after["throttled_bits"]
    if b is None or a is None:
        return None
    return bool((a | b) & THROTTLE_NOW or (a & ~b) & THROTTLE_SINCE_BOOT)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--mode", choices=("latency", "energy", "accuracy"), default="latency")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--lock", default=None)
    ap.add_argument("--tool", choices=("harness", "benchmark_model", "benchmark_litert_model"), default=None)
    ap.add_argument("--benchmark-model", default=None)
    ap.add_argument("--op-profile", default=None, help="benchmark_model: write the per-op CSV here")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--max-temp-c", type=float, default=None)
    ap.add_argument("--cooldown-timeout", type=float, default=300)
    ap.add_argument("--temp-sensor", default="/sys/class/thermal/thermal_zone0/temp")
    ap.add_argument("--idle-s", type=float, default=10)
    ap.add_argument("--load-s", type=float, default=20)
    ap.add_argument("--power-command", default=None)
    ap.add_argument("--power-interval", type=float, default=1.0)
    ap.add_argument("--power-pattern", default=None)
    ap.add_argument("--power-scale", type=float, default=1.0)
    ap.add_argument("--rapl", default=None)
    ap.add_argument("--images", default=None)
    ap.add_argument("--scaling", default=None)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--scores-out", default=None)
    a = ap.parse_args(argv)
    tool = a.tool or ("benchmark_model" if a.benchmark_model else "harness")
    lock = None
    t_wait = time.time()
    if a.lock:
        os.makedirs(os.path.dirname(a.lock) or ".", exist_ok=True)
        lock = open(a.lock, "a")  # noqa: SIM115 - held (and locked) until the process exits
        fcntl.flock(lock, fcntl.LOCK_EX)  # one measurement per device at a time
    start = time.time()
    extra = {}
    if a.mode != "accuracy" and a.max_temp_c is not None:
        extra.update(cool_down(a.temp_sensor, a.max_temp_c, a.cooldown_timeout))
    before = throttle_state(a.temp_sensor)
    t_measure = time.time()
    if a.mode == "accuracy":
        result = accuracy(a.model, a.threads, a.images, a.scaling, a.batch_size, a.scores_out)
    elif a.mode == "energy":
        result = energy(
            a.model, a.threads, a.warmup, a.idle_s, a.load_s,
            a.power_command, a.power_interval, a.power_pattern, a.power_scale, a.rapl,
        )  # fmt: skip
    elif tool == "benchmark_model":
        if not a.benchmark_model:
            raise SystemExit("tool benchmark_model needs --benchmark-model PATH")
        result = run_benchmark_model(a.benchmark_model, a.model, a.threads, a.warmup, a.runs, a.timeout, a.op_profile)
    elif tool == "benchmark_litert_model":
        result = run_litert_tool(a.model, a.threads, a.warmup, a.runs, a.timeout)
    else:
        result = harness(a.model, a.threads, a.warmup, a.runs)
    after = throttle_state(a.temp_sensor)
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
            "measured_from": t_measure,
            "measured_to": end,
            **extra,
            "state_before": before,
            "state_after": after,
            "throttled": throttled(before, after),
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
