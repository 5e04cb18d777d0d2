"""Device benchmarks through a real sshd on loopback and the local harness; no mocks."""

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pqgrid.device.harness import parse_benchmark_model
from pqgrid.device.measure import benchmark
from pqgrid.device.sessions import DeviceError

FIXTURES = Path(__file__).parent / "fixtures"
CELL = {"arch": "tiny", "seed": 0, "sparsity": 0, "quant": "fp32"}


def test_parse_tf2_format():
    r = parse_benchmark_model((FIXTURES / "benchmark_model_tf2.txt").read_text())
    assert r["count"] == 267 and r["avg_us"] == 3750 and r["std_us"] == 41 and r["min_us"] == 3698
    assert r["init_us"] == 4108 and r["first_inference_us"] == 5012
    assert r["ram_delta_mb"] == 6.0156 and "p50_us" not in r


def test_parse_litert_format_with_prefix_and_exponents():
    r = parse_benchmark_model((FIXTURES / "benchmark_model_litert.txt").read_text())
    assert r["count"] == 85 and r["avg_us"] == 26331.5 and r["max_us"] == 1.23457e06
    assert r["p50_us"] == 11803 and r["p95_us"] == 12101 and r["p5_us"] == 11710
    assert r["init_us"] == 123457 and r["ram_delta_mb"] == 16.1016
    assert r["process_peak_rss_mb"] == 18.875


def test_parse_no_count_line_is_an_error():
    with pytest.raises(ValueError, match="no 'count=' line"):
        parse_benchmark_model("INFO: Loaded model x\nERROR: failed to allocate\n")


def _check_result(r, runs):
    assert r["tool"] == "pqgrid-harness" and r["runtime"] == "ai_edge_litert" and r["count"] == runs
    assert 0 < r["min_us"] <= r["p50_us"] <= r["p90_us"] <= r["p99_us"] <= r["max_us"]
    assert r["min_us"] <= r["avg_us"] <= r["max_us"] and r["process_peak_rss_mb"] > r["ram_delta_mb"] > 0
    assert r["device"]["cores"] >= 1 and r["device"]["kernel"] and r["model_bytes"] > 0
    assert len(r["model_sha256"]) == 64 and r["cell"] == CELL


def test_local_device(tiny_tflite, tmp_path):
    out = tmp_path / "local.json"
    r = benchmark(
        tflite=tiny_tflite,
        out_json=out,
        name="local",
        cfg={"type": "local", "num_runs": 7, "remote_dir": str(tmp_path / "lock")},
        cell=CELL,
    )
    _check_result(r, 7)
    assert json.loads(out.read_text()) == json.loads(json.dumps(r))


def test_ssh_device(sshd, tiny_tflite, tmp_path):
    out = tmp_path / "ssh.json"
    # a remote_dir of its own: the shared sshd's default one holds what other tests left there
    # (the test set of on-device accuracy), in whatever order the workers ran them
    remote = tmp_path / "remote"
    r = benchmark(tflite=tiny_tflite, out_json=out, name="loopback", cfg=sshd.device(remote_dir=str(remote)), cell=CELL)
    _check_result(r, 5)
    assert "identity_file" not in r["device_config"]
    assert [p.name for p in remote.iterdir()] == [".pqgrid.lock"], "job files removed"


def test_ssh_with_benchmark_model_binary(sshd, tiny_tflite, tmp_path):
    """A stand-in `benchmark_model` (prints the recorded LiteRT output) proves the remote
    binary path is run with the model and its output parsed."""
    fake = tmp_path / "benchmark_model"
    fake.write_text('#!/bin/sh\necho "args: $*" >&2\ncat %s\n' % (FIXTURES / "benchmark_model_litert.txt"))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    r = benchmark(
        tflite=tiny_tflite,
        out_json=tmp_path / "b.json",
        name="loopback",
        cfg=sshd.device(benchmark_model=str(fake)),
        cell=CELL,
    )
    assert r["tool"] == "benchmark_model" and r["avg_us"] == 26331.5
    assert "--graph=" in r["raw_output_tail"] and "--num_runs=5" in r["raw_output_tail"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"port": 1}, "connection refused at 127.0.0.1:1"),
        ({"identity_file": "OTHER"}, "authentication failed for"),
        ({"known_hosts": "WRONG"}, "does not match known_hosts"),
        ({"known_hosts": "/nonexistent"}, "is not in known_hosts"),
        ({"python": "/no/such/python"}, "command not found"),
        ({"host": "no-such-host.invalid"}, "unknown host 'no-such-host.invalid'"),
    ],
)
def test_ssh_faults_give_one_line_and_no_output(sshd, tiny_tflite, tmp_path, overrides, message):
    overrides = {
        k: str(sshd.other_key) if v == "OTHER" else str(sshd.wrong_known_hosts) if v == "WRONG" else v
        for k, v in overrides.items()
    }
    out = tmp_path / "x.json"
    with pytest.raises(DeviceError, match=message) as e:
        benchmark(tflite=tiny_tflite, out_json=out, name="loopback", cfg=sshd.device(**overrides), cell=CELL)
    assert "device loopback:" in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()


def test_harness_crash_and_timeout(sshd, tiny_tflite, tmp_path):
    from pqgrid.core.io import DamagedFile

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(DamagedFile, match="bad.tflite: not a valid .tflite"):  # refused before connecting
        benchmark(tflite=bad, out_json=tmp_path / "c.json", name="loopback", cfg=sshd.device(), cell=CELL)
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x07" * 64)  # the right signature, a broken body
    with pytest.raises(DeviceError, match="the benchmark failed"):
        benchmark(tflite=bad, out_json=tmp_path / "c.json", name="loopback", cfg=sshd.device(), cell=CELL)
    assert not (tmp_path / "c.json").exists()
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(DeviceError, match="timed out after 3s"):
        benchmark(
            tflite=tiny_tflite,
            out_json=tmp_path / "t.json",
            name="loopback",
            cfg=sshd.device(benchmark_model=str(slow), timeout=3),
            cell=CELL,
        )
    assert not (tmp_path / "t.json").exists()
    remote = Path(sshd.device()["remote_dir"])
    assert not [p for p in remote.iterdir() if p.name.startswith("job-")], "remote files removed after failures"


def test_retries_are_honoured(sshd, tiny_tflite, tmp_path):
    import logging

    logs = []
    handler = logging.Handler()
    handler.emit = lambda rec: logs.append(rec.getMessage())
    logging.getLogger("pqgrid").addHandler(handler)
    logging.getLogger("pqgrid").setLevel(logging.INFO)
    try:
        with pytest.raises(DeviceError, match="connection refused"):
            benchmark(
                tflite=tiny_tflite,
                out_json=tmp_path / "r.json",
                name="loopback",
                cfg=sshd.device(port=1, retries=2),
                cell=CELL,
            )
    finally:
        logging.getLogger("pqgrid").removeHandler(handler)
    assert sum("retrying" in m for m in logs) == 2


def test_device_lock_serialises_concurrent_jobs(sshd, tiny_tflite, tmp_path):
    results = {}

    def job(i):
        results[i] = benchmark(
            tflite=tiny_tflite,
            out_json=tmp_path / f"{i}.json",
            name="loopback",
            cfg=sshd.device(num_runs=200),
            cell=CELL,
        )

    threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = sorted(results.values(), key=lambda r: r["measured_from"])
    assert a["measured_to"] <= b["measured_from"], "timed windows overlap"
    assert b["lock_wait_s"] > 0


def test_remote_without_numpy_or_runtime(sshd, tiny_tflite, tmp_path):
    """A device Python lacking numpy / LiteRT: the job fails naming what is missing."""
    bare = "/usr/bin/python3"
    if not Path(bare).exists() or subprocess.run([bare, "-c", "import numpy"], capture_output=True).returncode == 0:
        pytest.skip("no system Python without numpy to play a bare device")
    with pytest.raises(DeviceError, match="numpy"):
        benchmark(
            tflite=tiny_tflite, out_json=tmp_path / "n.json", name="loopback", cfg=sshd.device(python=bare), cell=CELL
        )
    assert not (tmp_path / "n.json").exists()


def test_ssh_config_port_user_and_key_apply_unless_the_device_sets_them(sshd, tiny_tflite, tmp_path):
    """A host alias whose Port is not 22, as `ssh` would read it from ~/.ssh/config."""
    import getpass

    cfg_file = tmp_path / "ssh_config"
    cfg_file.write_text(
        f"Host myboard\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {getpass.getuser()}\n"
        f"  IdentityFile {sshd.client_key}\n"
    )
    device = sshd.device(host="myboard", ssh_config=str(cfg_file))
    for key in ("port", "user", "identity_file"):
        device.pop(key)
    r = benchmark(tflite=tiny_tflite, out_json=tmp_path / "a.json", name="loopback", cfg=device, cell=CELL)
    assert r["count"] == 5
    with pytest.raises(DeviceError, match="connection refused at 127.0.0.1:1"):  # the device's own port wins
        benchmark(
            tflite=tiny_tflite, out_json=tmp_path / "b.json", name="loopback", cfg={**device, "port": 1}, cell=CELL
        )


def test_trust_new_host_remembers_the_key_in_the_users_known_hosts(sshd, tiny_tflite, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    device = sshd.device(trust_new_host=True)
    device.pop("known_hosts")
    benchmark(tflite=tiny_tflite, out_json=tmp_path / "a.json", name="loopback", cfg=device, cell=CELL)
    known = tmp_path / "home" / ".ssh" / "known_hosts"
    host_key = (sshd.root / "host_ed25519.pub").read_text().split()[1]
    assert f"[127.0.0.1]:{sshd.port}" in known.read_text() and host_key in known.read_text()
    # remembered: the next connection checks it without trusting anything new
    benchmark(
        tflite=tiny_tflite,
        out_json=tmp_path / "b.json",
        name="loopback",
        cfg={**device, "trust_new_host": False},
        cell=CELL,
    )


CPUINFO_X86 = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n"
CPUINFO_PI4 = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\nHardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
CPUINFO_ARM64_BARE = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"


def test_cpu_model_on_x86_and_arm():
    from pqgrid.core.runtime import cpu_model

    assert cpu_model(CPUINFO_X86) == "Intel(R) Xeon(R) CPU @ 2.20GHz"  # not the numeric "model"
    assert cpu_model(CPUINFO_PI4) == "Raspberry Pi 4 Model B Rev 1.4"
    assert cpu_model(CPUINFO_ARM64_BARE) is None
    assert cpu_model(CPUINFO_ARM64_BARE, "Architecture: aarch64\nModel name:  Neoverse-N1\n") == "Neoverse-N1"


# ---------------------------------------------------------------- parsers, with provenance
def _fixture(name):
    """A parser fixture (tests/fixtures/README.md quotes the source format it follows)."""
    return (FIXTURES / name).read_text()


def test_parse_all_same_count_line():
    """Stat::OutputToStream prints `count=N curr=C(all same)` when every run took the same time."""
    r = parse_benchmark_model(_fixture("benchmark_model_all_same.txt"))
    assert r["count"] == 50 and r["avg_us"] == r["min_us"] == r["max_us"] == 57 and r["std_us"] == 0
    assert r["p50_us"] == 57 and r["ram_delta_mb"] == 0.375 and r["init_us"] == 412


def test_parse_op_profile_csv():
    from pqgrid.device.harness import parse_op_profile

    rows = parse_op_profile(_fixture("benchmark_model_op_profile.csv"))
    assert [r["node_type"] for r in rows] == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"]
    assert rows[0]["avg_ms"] == 0.398 and rows[0]["percent"] == 41.2 and rows[-1]["cdf_percent"] == 100
    assert rows[1]["name"] == "[conv_dw_1/depthwise\tbn]" and rows[0]["times_called"] == 1
    # the newer layout with a `start` column maps by its header
    newer = "============================== Run Order ==============================\n"
    newer += "node type, start, first, avg_ms, %, cdf%, mem KB, times called, name\nADD, 0.01, 0.02, 0.03, 5%, 5%, 0, 1, [a]\n"
    assert parse_op_profile(newer) == [
        {
            "node_type": "ADD",
            "start_ms": 0.01,
            "first_ms": 0.02,
            "avg_ms": 0.03,
            "percent": 5.0,
            "cdf_percent": 5.0,
            "mem_kb": 0.0,
            "times_called": 1.0,
            "name": "[a]",
        }
    ]


def test_parse_litert_tool_format_and_its_errors():
    from pqgrid.device.harness import parse_litert_tool

    r = parse_litert_tool(_fixture("benchmark_litert_model.txt"))
    assert r["count"] == 50 and r["avg_us"] == pytest.approx(1570) and r["p50_us"] == pytest.approx(1550)
    assert r["init_us"] == pytest.approx(12340) and r["p95_us"] == pytest.approx(1710) and r["fully_accelerated"]
    with pytest.raises(ValueError, match="no 'Inference \\(avg\\)' line"):
        parse_litert_tool("Model initialization:  1.00 ms\n")


def test_op_profile_is_stored_with_a_benchmark_model_stand_in(sshd, tiny_tflite, tmp_path):
    """A stand-in `benchmark_model` writes the profile where --op_profiling_output_file says,
    as the real one does; the JSON carries it per op."""
    fake = tmp_path / "benchmark_model_profiling"
    fake.write_text(
        '#!/bin/sh\nfor a in "$@"; do case $a in --op_profiling_output_file=*) cp %s "${a#*=}";; esac; done\ncat %s\n'
        % (FIXTURES / "benchmark_model_op_profile.csv", FIXTURES / "benchmark_model_litert.txt")
    )
    fake.chmod(0o755)
    r = benchmark(
        tflite=tiny_tflite,
        out_json=tmp_path / "p.json",
        name="loopback",
        cfg=sshd.device(benchmark_model=str(fake), op_profiling=True),
        cell=CELL,
    )
    assert (
        r["tool"] == "benchmark_model"
        and len(r["op_profile"]) == 5
        and r["op_profile"][3]["node_type"] == "FULLY_CONNECTED"
    )


def test_google_benchmark_tool_real_run_on_local(tiny_tflite, tmp_path):
    """Google's benchmark_litert_model (shipped in the LiteRT wheel), run for real and parsed."""
    r = benchmark(
        tflite=tiny_tflite,
        out_json=tmp_path / "g.json",
        name="local",
        cfg={"type": "local", "tool": "benchmark_litert_model", "num_runs": 20, "remote_dir": str(tmp_path / "lock")},
        cell=CELL,
    )
    assert r["tool"] == "benchmark_litert_model" and r["count"] == 20 and "BENCHMARK RESULTS" in r["raw_output_tail"]
    assert 0 < r["min_us"] <= r["p50_us"] <= r["max_us"] and r["process_peak_rss_mb"] > 10


# ---------------------------------------------------------------- energy
def _energy(tflite, tmp_path, power, name="local", cfg=None):
    from pqgrid.device.measure import measure_energy

    cfg = cfg or {"type": "local", "remote_dir": str(tmp_path / "lock")}
    return measure_energy(
        tflite=tflite, out_json=tmp_path / "e.json", name=name, cfg={**cfg, "power": power}, cell=CELL
    )


def test_energy_arithmetic():
    from pqgrid.device.measure import energy_fields

    e = energy_fields("rapl", load_w=6.0, inferences=1000, load_s=2.0, idle_w=2.0)
    assert e["energy_mj_per_inference"] == pytest.approx(12.0) and e["energy_net_mj_per_inference"] == pytest.approx(
        8.0
    )
    fixed = energy_fields("fixed (stated, not measured)", load_w=3.5, inferences=100, load_s=1.0)
    assert fixed["energy_mj_per_inference"] == pytest.approx(35.0) and "power_idle_w" not in fixed
    assert "energy_net_mj_per_inference" not in fixed


@pytest.mark.parametrize("where", ["host", "device"])
def test_energy_from_a_fixture_power_meter_printing_known_samples(tiny_tflite, tmp_path, where):
    """FIXTURE power meter (`printf` of known readings, standing in for a USB meter): no figure
    from it is ever reported. Idle and load are the mean of the samples in their windows."""
    meter = "printf 'bus 5.1 V, 0.5 A, 2.5 W\\n'; printf 'power: 3.5W\\n'"  # one-shot, re-run
    r = _energy(
        tiny_tflite,
        tmp_path,
        {"command": meter, "where": where, "interval_seconds": 0.05, "idle_seconds": 0.6, "load_seconds": 0.6},
    )
    assert r["power_idle_w"] == pytest.approx(3.0, abs=0.51) and r["power_load_w"] == pytest.approx(3.0, abs=0.51)
    assert r["idle_samples"] >= 2 and r["load_samples"] >= 2 and r["energy_method"] == f"command on the {where}"
    assert r["energy_mj_per_inference"] == pytest.approx(r["power_load_w"] * r["load_s"] / r["inferences"] * 1e3)
    net = (r["power_load_w"] - r["power_idle_w"]) * r["load_s"] / r["inferences"] * 1e3
    assert r["energy_net_mj_per_inference"] == pytest.approx(net)
    assert json.loads((tmp_path / "e.json").read_text())["inferences"] == r["inferences"] > 0


def test_energy_with_a_pattern_and_a_stated_wattage(tiny_tflite, tmp_path):
    r = _energy(tiny_tflite, tmp_path, {"command": "echo '4000 mW (12 C)'", "pattern": "([0-9.]+) mW", "scale": 0.001,
                                        "interval_seconds": 0.05, "idle_seconds": 0.3, "load_seconds": 0.3})  # fmt: skip
    assert r["power_idle_w"] == pytest.approx(4.0) and r["power_load_w"] == pytest.approx(4.0)
    r = _energy(tiny_tflite, tmp_path, {"watts": 3.5, "load_seconds": 0.3})
    assert r["energy_method"] == "fixed (stated, not measured)" and r["power_load_w"] == 3.5
    assert "power_idle_w" not in r and "energy_net_mj_per_inference" not in r


def test_rapl_counter_wraps_and_an_unreadable_zone_is_one_line(tiny_tflite, tmp_path):
    from pqgrid.device.sensors import PowerError, Rapl
    from pqgrid.device.sessions import DeviceError

    zone = tmp_path / "fixture-rapl-zone"  # FIXTURE files standing in for /sys/class/powercap
    zone.mkdir()
    (zone / "max_energy_range_uj").write_text("10000000\n")
    (zone / "energy_uj").write_text("9000000\n")
    rapl = Rapl(str(zone))
    assert rapl.watts((0.0, 9_000_000), (1.0, 1_000_000)) == pytest.approx(2.0)  # wrapped past 10 J
    assert rapl.watts((0.0, 1_000_000), (2.0, 5_000_000)) == pytest.approx(2.0)
    (zone / "energy_uj").write_text("not a number\n")
    with pytest.raises(PowerError, match="cannot read RAPL file .*energy_uj"):
        Rapl(str(zone))
    with pytest.raises(
        DeviceError, match=r"device local: power: cannot read RAPL file .*/nope/max_energy_range_uj"
    ) as e:
        _energy(tiny_tflite, tmp_path, {"rapl": str(tmp_path / "nope"), "idle_seconds": 0.1, "load_seconds": 0.1})
    assert "\n" not in str(e.value) and not (tmp_path / "e.json").exists()


@pytest.mark.parametrize(
    "command, where, message",
    [
        ("exit 3", "host", "the power command failed \\(exit 3\\)"),
        ("echo no reading here", "host", "printed no number"),
        ("echo no reading here", "device", "printed no number"),
        ("echo broken >&2; exit 1", "device", "failed \\(exit 1\\): broken"),
    ],
)
def test_a_failing_power_command_is_one_line_and_writes_nothing(tiny_tflite, tmp_path, command, where, message):
    from pqgrid.device.sessions import DeviceError

    with pytest.raises(DeviceError, match=message) as e:
        _energy(
            tiny_tflite,
            tmp_path,
            {"command": command, "where": where, "interval_seconds": 0.05, "idle_seconds": 0.3, "load_seconds": 0.3},
        )
    assert str(e.value).startswith("device local: power: ") and "\n" not in str(e.value)
    assert not (tmp_path / "e.json").exists()


def test_energy_over_ssh_with_the_meter_on_the_host(sshd, tiny_tflite, tmp_path):
    """FIXTURE meter on the host, harness on the (loopback) board: the phase markers stream
    back over SSH and cut the host's samples."""
    r = _energy(tiny_tflite, tmp_path, {"command": "echo 2.0", "interval_seconds": 0.05, "idle_seconds": 0.5, "load_seconds": 0.5},
                name="loopback", cfg=sshd.device())  # fmt: skip
    assert r["power_idle_w"] == r["power_load_w"] == 2.0 and r["energy_net_mj_per_inference"] == 0


# ---------------------------------------------------------------- fair timings
def test_cool_down_and_throttling_flags_with_a_fake_vcgencmd(tiny_tflite, tmp_path, monkeypatch):
    """FIXTURE `vcgencmd` (standing in for a Raspberry Pi's firmware tool) and a FIXTURE
    temperature file: a hot board is waited for, then measured and flagged; a throttled
    bit set during the run flags the timing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = tmp_path / "throttled"
    (bin_dir / "vcgencmd").write_text(f"#!/bin/sh\necho throttled=$(cat {state})\n")
    (bin_dir / "vcgencmd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    sensor = tmp_path / "fixture-temp"

    def run(temp_mc, bits, timeout=0.5):
        sensor.write_text(f"{temp_mc}\n")
        state.write_text(bits)
        cooldown = {"max_temp_c": 60, "timeout_seconds": timeout, "sensor": str(sensor)}
        cfg = {"type": "local", "num_runs": 5, "remote_dir": str(tmp_path / "lock"), "cooldown": cooldown}
        return benchmark(tflite=tiny_tflite, out_json=tmp_path / "c.json", name="local", cfg=cfg, cell=CELL)

    cool = run(45000, "0x0")
    assert cool["cooldown_timed_out"] is False and cool["cooldown_wait_s"] < 1 and cool["throttled"] is False
    assert cool["state_before"]["temperature_c"] == 45.0 and cool["state_before"]["throttled_bits"] == 0
    hot = run(85000, "0x20002", timeout=0.1)  # throttled now and since boot
    assert hot["cooldown_timed_out"] is True and hot["cooldown_start_c"] == 85.0 and hot["throttled"] is True
    past = run(45000, "0x20000")  # throttled before this run only (sticky bit, unchanged)
    assert past["throttled"] is False


def test_throttled_bits():
    from pqgrid.device.sensors import throttled

    def s(bits):
        return {"throttled_bits": bits}

    assert throttled(s(0), s(0)) is False and throttled(s(0), s(0x4)) is True
    assert throttled(s(0x40000), s(0x40000)) is False and throttled(s(0), s(0x40000)) is True
    assert throttled(s(None), s(0)) is None


# ---------------------------------------------------------------- accuracy on the device
def _host_eval(tflite, tmp_path, n=40):
    """A small test set and the host's evaluation of it (as evaluate_tflite writes them)."""
    import numpy as np
    from pqgrid.evaluate.accuracy import predict_tflite, topk_accuracy, write_predictions

    rng = np.random.default_rng(1)
    test = tmp_path / "test.npz"
    x, y = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)
    np.savez(test, x=x, y=y)
    scores = predict_tflite(tflite, x, 16, 1, "tf")
    (tmp_path / "host.json").write_text(json.dumps({"top1": topk_accuracy(scores, y, 1)}))
    write_predictions(tmp_path / "host.npz", scores, y, test)
    return test, scores


def _device_accuracy(tflite, tmp_path, name, cfg, test):
    from pqgrid.device.measure import device_accuracy

    out = tmp_path / name
    out.mkdir(exist_ok=True)
    return device_accuracy(
        tflite=tflite, test_npz=test, host_json=tmp_path / "host.json", host_predictions=tmp_path / "host.npz",
        out_json=out / "d.json", out_predictions=out / "d.npz", out_per_class=out / "d.csv", name=name, cfg=cfg,
        cell=CELL, scaling="tf", batch_size=16, classes=[f"c{i}" for i in range(10)],
    )  # fmt: skip


def test_accuracy_on_the_device_equals_the_host_and_ships_the_test_set_once(sshd, tiny_tflite, tmp_path):
    import numpy as np
    from pqgrid.core.io import read_predictions

    test, host_scores = _host_eval(tiny_tflite, tmp_path)
    # its own remote_dir: the shared sshd's default one caches other tests' test sets
    board = sshd.device(remote_dir=str(tmp_path / "remote"))
    for name, cfg in (("local", {"type": "local", "remote_dir": str(tmp_path / "lock")}), ("loopback", board)):
        r = _device_accuracy(tiny_tflite, tmp_path, name, cfg, test)
        assert r["top1_host_diff_pp"] == 0 and r["answers_differing_from_host"] == 0 and r["test_images"] == 40
        p = read_predictions(tmp_path / name / "d.npz")
        assert (p["label"] == np.argmax(host_scores, 1)).all()
        assert (p["confidence"] == np.max(host_scores, 1).astype(np.float32)).all()
    cached = list((tmp_path / "remote" / "data").iterdir())
    assert len(cached) == 1 and cached[0].stat().st_size == test.stat().st_size
    mtime = cached[0].stat().st_mtime_ns
    _device_accuracy(tiny_tflite, tmp_path, "loopback", board, test)
    assert cached[0].stat().st_mtime_ns == mtime, "the cached test set is not uploaded again"


def test_a_device_without_room_for_the_test_set_is_one_line(sshd, tiny_tflite, tmp_path):
    from pqgrid.device.sessions import DeviceError

    test, _ = _host_eval(tiny_tflite, tmp_path)
    remote = tmp_path / "full-remote"
    remote.mkdir()
    (remote / "data").write_text("a file where the cache folder should be: every write below it fails")
    with pytest.raises(
        DeviceError, match=r"device loopback: cannot write the test set \(0\.\d MB\) to .*check free disk space"
    ) as e:
        _device_accuracy(tiny_tflite, tmp_path, "loopback", sshd.device(remote_dir=str(remote)), test)
    assert "\n" not in str(e.value) and not (tmp_path / "loopback" / "d.json").exists()


def test_local_timeout_kills_a_silent_harness(tiny_tflite, tmp_path):
    """The local watchdog fires also while nothing is printed (a hung benchmark_model)."""
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    cfg = {"type": "local", "benchmark_model": str(slow), "timeout": 2, "remote_dir": str(tmp_path / "lock")}
    with pytest.raises(DeviceError, match="device local: timed out after 2s"):
        benchmark(tflite=tiny_tflite, out_json=tmp_path / "t.json", name="local", cfg=cfg, cell=CELL)
    assert not (tmp_path / "t.json").exists() and not list((tmp_path / "lock").glob("job-*"))


def test_device_types_agree():
    """One record per device type (core/devices.py), one session class per type
    (device/sessions.py SESSIONS), and the schema's enum name the same types."""
    from pqgrid.core.devices import DEVICE_TYPES
    from pqgrid.core.schema import load_schema
    from pqgrid.device.sessions import SESSIONS

    enum = load_schema()["properties"]["devices"]["additionalProperties"]["properties"]["type"]["enum"]
    assert set(DEVICE_TYPES) == set(SESSIONS) == set(enum)


def test_the_board_program_and_what_it_imports_are_uploaded():
    """device/sessions.py uploads the board program with every pqgrid module it imports (in
    the package's layout) and nothing more; outside pqgrid they import only the standard
    library, numpy and a LiteRT runtime, which a board has (`setup: packages`)."""
    import ast

    from pqgrid.device.sessions import BOARD_FILES, PACKAGE_ROOT

    allowed = set(sys.stdlib_module_names) | {"numpy", "ai_edge_litert", "tflite_runtime", "tensorflow"}
    seen, todo, outside = set(), ["pqgrid/device/harness.py"], set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        parts = Path(rel).parts
        todo += ["/".join(parts[: i + 1]) + "/__init__.py" for i in range(len(parts) - 1)]
        for node in ast.walk(ast.parse((PACKAGE_ROOT / rel).read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                if name.startswith("pqgrid."):
                    todo.append(name.replace(".", "/") + ".py")
                else:
                    outside.add(name.split(".")[0])
    assert seen == set(BOARD_FILES), sorted(seen ^ set(BOARD_FILES))
    assert outside <= allowed, sorted(outside - allowed)
