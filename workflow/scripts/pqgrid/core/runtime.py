"""What the host and the board both run, so an answer on the board is the host's answer:
input scaling, the LiteRT interpreter (whichever runtime is installed), batched class scores,
CPU and emulation facts, percentiles. Standard library + numpy + LiteRT only: uploaded to a
board with device/harness.py (device/sessions.py `BOARD_FILES`)."""

import json
import os
import platform
import resource
import subprocess

# A number as the timing tools and power meters print it.
NUM = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


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
