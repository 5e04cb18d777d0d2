"""Power and temperature on the board: a power meter's command (its samples read in a
thread), Linux RAPL, the thermal sensor, cool-down and throttling. Standard library only
(+ core/runtime.py): uploaded with device/harness.py."""

import re
import shutil
import statistics
import subprocess
import threading
import time

from pqgrid.core.runtime import NUM, read


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
