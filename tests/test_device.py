"""Device benchmarks through a real sshd on loopback and the local harness; no mocks."""

import json
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from pqgrid.device import DeviceError, benchmark
from pqgrid.device_harness import parse_benchmark_model

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
    r = benchmark(tflite=tiny_tflite, out_json=out, name="loopback", cfg=sshd.device(), cell=CELL)
    _check_result(r, 5)
    assert "identity_file" not in r["device_config"]
    remote = Path(sshd.device()["remote_dir"])
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
    from pqgrid.io import DamagedFile

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
    from pqgrid.device_harness import cpu_model

    assert cpu_model(CPUINFO_X86) == "Intel(R) Xeon(R) CPU @ 2.20GHz"  # not the numeric "model"
    assert cpu_model(CPUINFO_PI4) == "Raspberry Pi 4 Model B Rev 1.4"
    assert cpu_model(CPUINFO_ARM64_BARE) is None
    assert cpu_model(CPUINFO_ARM64_BARE, "Architecture: aarch64\nModel name:  Neoverse-N1\n") == "Neoverse-N1"
