"""Warm starts (pqgrid/jobs/warm.py): a real server that imported TensorFlow, real jobs forked
from it, compared byte for byte with the same jobs in fresh processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import ROOT, synthetic_npz
from pqgrid.jobs.warm import SOCKET_ENV, THREAD_ENV
from test_models import TINY, TRAIN  # the tiny model and short schedule of the model tests

SCRIPTS = ROOT / "workflow" / "scripts"


def start(sock: Path, watch_pid: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS), **dict.fromkeys(THREAD_ENV, "1"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pqgrid.jobs.warm", str(sock), str(watch_pid)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not sock.exists():
        assert proc.poll() is None and time.time() < deadline, "the warm server did not start"
        time.sleep(0.2)
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sock = tmp_path_factory.mktemp("warm") / "s"
    proc = start(sock, os.getpid())
    yield sock, proc
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return synthetic_npz(tmp_path_factory.mktemp("data"), 20, 5)


def job(module, function, log, sock=None, extra_env=None, wait=True, **kwargs):
    """A job's process as Snakemake starts it: run_script(..., warm=True), 1 thread."""
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); "
        f"from pqgrid.jobs.run import run_script; from pqgrid.{module} import {function}; "
        f"run_script({str(log)!r}, {function}, warm=True, **{kwargs!r})"
    )
    env = {k: v for k, v in os.environ.items() if k != SOCKET_ENV}
    env.update(dict.fromkeys(THREAD_ENV, "1"), **(extra_env or {}))
    if sock is not None:
        env[SOCKET_ENV] = str(sock)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if wait:
        out, err = proc.communicate(timeout=600)
        return proc.returncode, err
    return proc


def train(small_data, out: Path, sock, epochs=2, wait=True, extra_env=None):
    d = small_data
    return job(
        "models.train",
        "train_model",
        out / "train.log",
        sock,
        extra_env,
        wait=wait,
        train_npz=str(d / "train.npz"),
        test_npz=str(d / "test.npz"),
        manifest=str(d / "manifest.json"),
        model_out=str(out / "trained.h5"),
        history_csv=str(out / "hist.csv"),
        arch_cfg=TINY,
        settings={**TRAIN, "epochs": epochs},
        seed=0,
        threads=1,
    )


def convert(small_data, out: Path, sock, mode, source, extra_env=None):
    return job(
        "quant.convert",
        "convert_cell",
        out / f"{mode}.log",
        sock,
        extra_env,
        source=str(source),
        train_npz=str(small_data / "train.npz"),
        out_tflite=str(out / f"{mode}.tflite"),
        out_gz=str(out / f"{mode}.tflite.gz"),
        arch_cfg=TINY,
        mode=mode,
        calibration_samples=20,
        seed=0,
        threads=1,
    )


def test_warm_jobs_write_the_bytes_of_cold_jobs(server, small_data, tmp_path):
    sock, _ = server
    runs = {}
    for kind in ("cold", "warm"):
        out = tmp_path / kind
        out.mkdir()
        # each kind's own TMPDIR: a job leaves nothing there (a forked child skips atexit,
        # where TensorFlow's autograph removes its generated files)
        job_tmp = tmp_path / f"{kind}-tmp"
        job_tmp.mkdir()
        env = {"TMPDIR": str(job_tmp)}
        assert train(small_data, out, sock if kind == "warm" else None, extra_env=env)[0] == 0
        for mode in ("fp32", "int8"):
            source = out / ("trained.h5" if mode == "fp32" else "fp32.tflite")
            assert convert(small_data, out, sock if kind == "warm" else None, mode, source, extra_env=env)[0] == 0
        assert evaluate(small_data, out, sock if kind == "warm" else None, extra_env=env) == (0, 0)
        assert sorted(p.name for p in job_tmp.iterdir()) == [], f"{kind} jobs left temporary files"
        runs[kind] = out
        logs = [(out / f"{name}.log").read_text() for name in ("train", "fp32", "int8", "keras")]
        assert all(("warm start: forked" in text) == (kind == "warm") for text in logs)
    for name in ("trained.h5", "hist.csv", "fp32.tflite", "fp32.tflite.gz", "int8.tflite", "int8.tflite.gz",
                 "keras.json", "eval.json", "eval.csv", "layers.csv"):  # fmt: skip
        cold, warm = (runs[k] / name for k in ("cold", "warm"))
        if name == "hist.csv":  # epoch seconds differ; losses and accuracies must not
            cold, warm = (pd.read_csv(p).drop(columns="seconds") for p in (cold, warm))
            pd.testing.assert_frame_equal(cold, warm, check_exact=True)
        else:
            assert cold.read_bytes() == warm.read_bytes(), name
    for name in ("keras.npz", "eval.npz"):  # a zip's bytes hold its write time; the arrays must be equal
        with np.load(runs["cold"] / name) as cold, np.load(runs["warm"] / name) as warm:
            assert all(np.array_equal(cold[k], warm[k]) for k in cold.files), name


def evaluate(small_data, out: Path, sock, extra_env=None):
    """The Keras evaluation of trained.h5 (warm when `sock`) and the LiteRT evaluation of
    int8.tflite (always cold, as its rule runs: it needs no TensorFlow): exit statuses."""
    d = small_data
    cell = {"arch": "tiny", "seed": 0, "sparsity": 0, "quant": "int8"}
    keras = job(
        "evaluate.accuracy",
        "evaluate_keras",
        out / "keras.log",
        sock,
        extra_env,
        model_h5=str(out / "trained.h5"),
        train_npz=str(d / "train.npz"),
        test_npz=str(d / "test.npz"),
        manifest=str(d / "manifest.json"),
        out_json=str(out / "keras.json"),
        out_predictions=str(out / "keras.npz"),
        arch_cfg=TINY,
        cell=cell,
        threads=1,
    )
    litert = job(
        "evaluate.accuracy",
        "evaluate_tflite",
        out / "eval.log",
        None,
        extra_env,
        tflite=str(out / "int8.tflite"),
        gz=str(out / "int8.tflite.gz"),
        test_npz=str(d / "test.npz"),
        manifest=str(d / "manifest.json"),
        keras_json=str(out / "keras.json"),
        out_json=str(out / "eval.json"),
        out_per_class=str(out / "eval.csv"),
        out_layers=str(out / "layers.csv"),
        out_predictions=str(out / "eval.npz"),
        arch_cfg=TINY,
        cell=cell,
        settings={},
        threads=1,
    )
    return keras[0], litert[0]


def test_a_failing_warm_job_fails_with_its_one_line(server, small_data, tmp_path):
    sock, _ = server
    (tmp_path / "fp32.tflite").write_bytes(b"")
    status, err = convert(small_data, tmp_path, sock, "int8", tmp_path / "fp32.tflite")
    assert status == 1
    assert err.strip().splitlines() == [f"pqgrid: DamagedFile: {tmp_path / 'fp32.tflite'}: empty file "
                                        "(0 bytes: a killed job or a full disk?); delete it and rerun"]  # fmt: skip
    assert "warm start: forked" in (tmp_path / "int8.log").read_text()
    assert not (tmp_path / "int8.tflite").exists()


def test_another_tensorflow_environment_runs_cold(server, small_data, tmp_path):
    sock, _ = server
    (tmp_path / "fp32.tflite").write_bytes(b"")
    status, err = job(
        "quant.convert",
        "convert_cell",
        tmp_path / "int8.log",
        sock,
        extra_env={"TF_ENABLE_ONEDNN_OPTS": "0"},  # read when TensorFlow is imported
        source=str(tmp_path / "fp32.tflite"),
        train_npz=str(small_data / "train.npz"),
        out_tflite=str(tmp_path / "int8.tflite"),
        arch_cfg=TINY,
        mode="int8",
        calibration_samples=20,
        seed=0,
    )
    assert status == 1 and "DamagedFile" in err
    assert "warm start" not in (tmp_path / "int8.log").read_text()


def test_a_killed_job_ends_its_forked_child(server, small_data, tmp_path):
    sock, proc = server
    before = {c.pid for c in psutil.Process(proc.pid).children()}
    client = train(small_data, tmp_path, sock, epochs=500, wait=False)
    deadline = time.time() + 60
    while not (children := [c for c in psutil.Process(proc.pid).children() if c.pid not in before]):
        assert time.time() < deadline and client.poll() is None, "the job never reached the server"
        time.sleep(0.1)
    time.sleep(1)
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, "the forked child outlived its killed job"


def test_no_server_runs_cold(small_data, tmp_path):
    status, err = convert(small_data, tmp_path, tmp_path / "no-such-socket", "fp32", tmp_path / "missing.h5")
    assert status == 1 and "missing.h5" in err
    assert "warm start" not in (tmp_path / "fp32.log").read_text()
    # a server that failed to start: its pid file names an ended process; no wait
    ended = subprocess.Popen(["true"])
    ended.wait()
    (tmp_path / "pid").write_text(str(ended.pid))
    t0 = time.time()
    status, err = convert(small_data, tmp_path, tmp_path / "s", "fp32", tmp_path / "missing.h5")
    assert status == 1 and "missing.h5" in err and time.time() - t0 < 50


def test_a_job_waits_for_a_starting_server(small_data, tmp_path):
    """The run's first jobs start while the server still imports TensorFlow: they wait
    for it and run warm (start_server writes the pid file before the server listens)."""
    sock = tmp_path / "s"
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS), **dict.fromkeys(THREAD_ENV, "1"))
    proc = subprocess.Popen([sys.executable, "-m", "pqgrid.jobs.warm", str(sock), str(os.getpid())], env=env)
    (tmp_path / "pid").write_text(str(proc.pid))
    try:
        assert not sock.exists()
        (tmp_path / "fp32.tflite").write_bytes(b"")
        status, err = convert(small_data, tmp_path, sock, "int8", tmp_path / "fp32.tflite")
        assert status == 1 and "DamagedFile" in err
        assert "warm start: forked" in (tmp_path / "int8.log").read_text()
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_server_ends_with_the_run_that_started_it(tmp_path):
    run = subprocess.Popen(["sleep", "600"])
    sock = tmp_path / "s"
    proc = start(sock, run.pid)
    run.kill()
    run.wait()
    assert proc.wait(timeout=15) == 0
    assert not sock.exists()
