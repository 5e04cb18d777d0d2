"""Warm starts: jobs that need TensorFlow fork from one process that imported it once.

`import tensorflow` (+ tf_keras, tfmot) costs ~5 s of a core in every job that needs it:
on the laptop preset 152 of 391 jobs (fitting, conversion, Keras evaluation, per-layer
error), ≥ 800 core-seconds of imports (benchmarks/README). With
`warm_start: true` (config.yaml) the Snakefile starts one server per local run
(`start_server`) that imports them once and waits on a Unix socket in a private (0700)
directory. A job's script then calls `run_script(..., warm=True)`: its process connects,
hands over its stdin/stdout/stderr (SCM_RIGHTS), working directory, sys.path, environment,
log path, and the function with its keyword arguments; the server forks, and the child
runs exactly what the job would have run (`pqgrid.jobs.logs.run_logged`) and sends back the exit
status. Snakemake still sees one process per job, with its exit status, output and log.

What makes it safe:
- Results are the same bytes: the child seeds, pins threads and sets determinism itself
  (pqgrid.jobs.tfsetup), as a fresh process does; the server never creates a TensorFlow
  context (no op, no device), so the child's settings apply. Tested (tests/test_warm.py:
  a trained model and its .tflite files warm and cold, compared byte for byte).
- Anything TensorFlow reads when it is imported (TF_*, CUDA*, XLA*, the BLAS/OpenMP thread
  variables Snakemake sets per job) must equal the server's; otherwise the child declines
  and the job runs cold, in its own process, as without warm starts. So does every job when
  there is no server or its start failed; a job that starts while the server still imports
  waits for it (`wait_for_server`: the server listens only after its imports).
- A job killed by Snakemake (Ctrl-C, --keep-going cancellations) closes its socket; the
  child notices and exits at once. The server exits when the Snakemake process that started
  it is gone, and at the end of a run (onsuccess/onerror).
- Local runs only, and never on a host with an NVIDIA GPU: a CUDA context does not survive
  a fork, and cluster jobs run on other hosts (both: every job cold).

Snakemake's per-job benchmark file then measures the job's own process: `s` (wall time) is
right, `max_rss` and `cpu_time` leave out the forked child; the job's log has the child's
CPU time and peak memory. For memory measurements set `warm_start: false`.

Written by hand: neither Snakemake nor multiprocessing shares one warmed-up interpreter
between separate processes (multiprocessing's forkserver serves only the process that
started it)."""

from __future__ import annotations

import array
import contextlib
import importlib
import os
import pickle
import resource
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
from pathlib import Path

from pqgrid.jobs.logs import run_logged
from pqgrid.jobs.tfsetup import environment

SOCKET_ENV = "PQGRID_WARM_SOCKET"
# What TensorFlow and the BLAS libraries read when they are imported: a job whose values
# differ from the server's runs cold. Snakemake sets the thread variables to the job's
# `threads`; the server is started with 1 (every TensorFlow job's default).
IMPORT_ENV_PREFIXES = ("TF_", "CUDA", "XLA_", "NVIDIA_", "LD_", "PYTHONHASHSEED")
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
SERVER_THREADS = "1"
# Imported once by the server: what the TensorFlow jobs import (tfsetup sets the variables
# TensorFlow needs before, exactly as in a job).
PRELOAD = (
    "numpy",
    "pandas",
    "h5py",
    "tensorflow",
    "tf_keras",
    "tensorflow_model_optimization",
    "tensorflow.lite.python.lite",
)
DECLINED = -1  # the child's answer when the job must run cold
_HEADER = struct.Struct("!Q")
_REPLY = struct.Struct("!i d d")  # exit status, child CPU seconds, child peak RSS (MB)


def import_env(env) -> dict:
    """The part of an environment that changes what an import of TensorFlow sets up."""
    return {k: v for k, v in env.items() if k.startswith(IMPORT_ENV_PREFIXES) or k in THREAD_ENV}


def gpu_host() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


# ---------------------------------------------------------------- the Snakefile's side


def start_server(log_path) -> Path | None:
    """Start a server for this Snakemake process; set SOCKET_ENV so its jobs find it.
    Returns the private directory holding the socket (None: not started)."""
    import subprocess

    if gpu_host():
        return None
    directory = Path(tempfile.mkdtemp(prefix="pqgrid-warm-"))  # 0700: only this user
    sock = directory / "s"
    env = dict(os.environ, **dict.fromkeys(THREAD_ENV, SERVER_THREADS))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "pqgrid.jobs.warm", str(sock), str(os.getpid())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C reaches the jobs, which end their children
        )
    # while the server imports, jobs wait for it (wait_for_server) rather than start cold
    (directory / "pid").write_text(str(server.pid))
    os.environ[SOCKET_ENV] = str(sock)
    return directory


def stop_server(directory) -> None:
    """End the server (it also ends by itself when Snakemake exits) and remove its socket."""
    os.environ.pop(SOCKET_ENV, None)
    if directory is None:
        return
    pid_file = Path(directory) / "pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
    shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------- the server


def serve(sock_path, watch_pid: int) -> None:
    """Import TensorFlow once, then fork a child per connection until `watch_pid` exits."""
    environment()
    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{sock_path}.tmp"
    server.bind(tmp)
    server.listen(64)
    os.replace(tmp, sock_path)  # appears only once it listens
    server.settimeout(1.0)
    print(f"pqgrid warm server {os.getpid()}: listening on {sock_path}", flush=True)
    try:
        while _alive(watch_pid):
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            if os.fork() == 0:
                server.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os._exit(_child(conn))
            conn.close()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(sock_path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):  # an exited child nobody reaped yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def wait_for_server(sock_path, timeout: float = 60.0) -> bool:
    """True once the server listens. A job that starts while the server still imports
    (the run's first jobs) waits for it: importing TensorFlow itself would take as long,
    on a core the server's import needs. False, at once, when no server is starting (no
    pid file, or its process has ended: a failed start) and after `timeout`."""
    import time

    sock = Path(sock_path)
    deadline = time.monotonic() + timeout
    while not sock.exists():
        try:
            pid = int(sock.with_name("pid").read_text())
        except (OSError, ValueError):
            return False
        if not _alive(pid) or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _child(conn: socket.socket) -> int:
    """Run one job in this forked process; the exit status goes back to the job."""
    try:
        request, fds = _receive(conn)
    except (OSError, EOFError, pickle.UnpicklingError):
        return 1
    if import_env(request["env"]) != import_env(os.environ):
        conn.sendall(_REPLY.pack(DECLINED, 0.0, 0.0))
        return 0
    for target, fd in enumerate(fds):  # the job's stdin, stdout, stderr
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    os.chdir(request["cwd"])
    sys.path[:] = request["sys_path"]
    os.environ.clear()
    os.environ.update(request["env"])
    # A private temp directory under the job's TMPDIR, removed when the child ends: a child
    # ends with os._exit, which skips atexit handlers, and TensorFlow's autograph removes its
    # generated /tmp/__autograph_generated_file*.py files only there (1,659 were left in
    # /tmp after two laptop-preset runs).
    tempfile.tempdir = None  # cached by the server's imports; the job's TMPDIR applies
    tempfile.tempdir = job_tmp = tempfile.mkdtemp(prefix="pqgrid-job-")
    # The job was killed (its socket closed): end this child at once, as a kill ends a job.
    threading.Thread(target=_exit_when_closed, args=(conn, job_tmp), daemon=True).start()
    status = 1
    try:
        fn = getattr(importlib.import_module(request["module"]), request["function"])
        run_logged(request["log"], fn, **request["kwargs"])
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - reported like run_script reports
        print(f"pqgrid: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        shutil.rmtree(job_tmp, ignore_errors=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with contextlib.suppress(OSError):
        conn.sendall(_REPLY.pack(status, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024))
    return status


def _exit_when_closed(conn: socket.socket, job_tmp: str) -> None:
    with contextlib.suppress(OSError):
        while conn.recv(1):
            pass
    shutil.rmtree(job_tmp, ignore_errors=True)
    os._exit(143)


def _receive(conn: socket.socket):
    msg, ancdata, _, _ = conn.recvmsg(_HEADER.size, socket.CMSG_LEN(3 * array.array("i").itemsize))
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    (size,) = _HEADER.unpack(msg)
    payload = b""
    while len(payload) < size:
        chunk = conn.recv(size - len(payload))
        if not chunk:
            raise EOFError("job closed the connection")
        payload += chunk
    return pickle.loads(payload), list(fds)


# ---------------------------------------------------------------- the job's side


def run_warm(log_path, fn, kwargs: dict) -> int | None:
    """Run `fn(**kwargs)` as `run_script` would, in a child of the warm server. Returns its
    exit status, or None when the job must run cold (no server, or another environment)."""
    path = os.environ.get(SOCKET_ENV)
    if not path or not wait_for_server(path):
        return None
    environment()  # as the job would set it before importing TensorFlow (and the server did)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        return None
    request = {
        "module": fn.__module__,
        "function": fn.__name__,
        "kwargs": _plain(kwargs),
        "log": str(log_path),
        "cwd": os.getcwd(),
        "sys_path": list(sys.path),
        "env": dict(os.environ),
    }
    payload = pickle.dumps(request)
    sys.stdout.flush()
    sys.stderr.flush()
    with conn:
        try:
            conn.sendmsg(
                [_HEADER.pack(len(payload))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))]
            )
            conn.sendall(payload)
            reply = b""
            while len(reply) < _REPLY.size:
                chunk = conn.recv(_REPLY.size - len(reply))
                if not chunk:
                    break
                reply += chunk
        except OSError:
            reply = b""
    if len(reply) < _REPLY.size:
        # the child died without an answer (killed, crashed): as a job that died would
        print(f"pqgrid: the warm-started job ended without a status; see {log_path} (warm_start: false runs it cold)",
              file=sys.stderr)  # fmt: skip
        return 1
    status, cpu, rss = _REPLY.unpack(reply)
    if status == DECLINED:
        return None
    with open(log_path, "a") as log:
        log.write(f"warm start: forked from the TensorFlow server; child CPU {cpu:.1f} s, peak RSS {rss:.0f} MB\n")
    return status


def _plain(obj):
    """Snakemake's path objects (str subclasses) and named lists as plain Python values, so
    the child unpickles them without Snakemake's classes."""
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, dict):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
