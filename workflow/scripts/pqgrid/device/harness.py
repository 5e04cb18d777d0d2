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
import re
import resource
import statistics
import subprocess
import sys
import time

# Run as a file (on a board: the job folder holds pqgrid/ as device/sessions.py uploaded it;
# here: `python workflow/scripts/pqgrid/device/harness.py`), the package is two folders up.
if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pqgrid.core.runtime import NUM, device_facts, load_interpreter, percentile, predict_scores, rss_mb  # noqa: E402
from pqgrid.device.sensors import PowerError, PowerSampler, Rapl, cool_down, throttle_state, throttled  # noqa: E402


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


def _arguments(argv):
    ap = argparse.ArgumentParser(description="Measure one .tflite on this device (pqgrid's board program).")
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
    return ap.parse_args(argv)


def main(argv=None):
    a = _arguments(argv)
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
