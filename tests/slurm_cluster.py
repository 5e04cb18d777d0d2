"""A real one-node SLURM cluster on loopback (Debian's slurm-wlm + munge), for the cluster
profile test and for trying the cluster profile by hand:

    .venv/bin/python tests/slurm_cluster.py /tmp/slurm      # runs until Ctrl-C

It changes a system file: SLURM's config must live at its default path
(/etc/slurm/slurm.conf), because the executor plugin's job step drops every inherited
SLURM_* variable, SLURM_CONF included, before its nested `srun`, which then finds no
configuration. An existing file there is kept aside (slurm.conf.pqgrid-backup) and put back
on stop. Everything else (state, spool, logs, pid files) goes into the folder it is given.
It starts munged (when no munge daemon answers), slurmctld and slurmd, and stops every one
of them on exit, Ctrl-C or SIGTERM. Every wait is bounded."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


def available() -> str | None:
    """None if SLURM can run here, else the reason it cannot."""
    for exe in ("slurmctld", "slurmd", "sbatch", "squeue", "munged"):
        if not shutil.which(exe):
            return f"{exe} not installed (apt-get install slurm-wlm munge; .ci/run does)"
    if os.geteuid() != 0:
        return "starting slurmd needs root"
    return None


def free_port():
    """A TCP port nobody listens on now (for test daemons on loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    def __init__(self, root: Path, cpus=2, memory_mb=8000):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        for d in ("spool", "state", "log"):
            (root / d).mkdir(parents=True, exist_ok=True)
        ctl_port, d_port = free_port(), free_port()
        self.conf = Path("/etc/slurm/slurm.conf")
        self.backup = self.conf.with_name("slurm.conf.pqgrid-backup")
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        if self.conf.exists() and not self.backup.exists():
            self.conf.rename(self.backup)
        self.conf.write_text(f"""ClusterName=pqgrid
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={ctl_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.procs = []

    def start(self, timeout=60):
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
            # in the foreground, so it is ours to stop like the other two daemons
            munged = subprocess.Popen(
                ["munged", "--force", "--foreground", f"--pid-file={self.root / 'munged.pid'}",
                 f"--log-file={self.root / 'log' / 'munged.log'}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            self.procs.append(munged)
            deadline = time.time() + 20
            while subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
                if munged.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"munged did not start (log: {self.root / 'log' / 'munged.log'})")
                time.sleep(0.2)
        self.procs.append(
            subprocess.Popen(
                ["slurmctld", "-D", "-c", "-f", str(self.conf)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        time.sleep(1)
        self.procs.append(
            subprocess.Popen(
                ["slurmd", "-D", "-c", "-f", str(self.conf)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc"):
                return self
            time.sleep(0.5)
        log = (
            (self.root / "log" / "slurmctld.log").read_text()[-2000:]
            if (self.root / "log" / "slurmctld.log").exists()
            else ""
        )
        self.stop()
        raise RuntimeError(f"SLURM did not come up within {timeout}s: {log}")

    def stop(self):
        subprocess.run(["scancel", "--user", "root"], env=self.env, capture_output=True)
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs = []
        self.conf.unlink(missing_ok=True)
        if self.backup.exists():
            self.backup.rename(self.conf)


def main():
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="where SLURM's state, spool, logs and pid files go (created)")
    args = parser.parse_args()  # --help ends here, before anything is written or started
    why = available()
    if why:
        raise SystemExit(f"slurm_cluster: {why}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # SIGTERM stops the daemons like Ctrl-C
    cluster = None
    try:
        cluster = SlurmCluster(Path(args.folder).resolve())
        cluster.start()
        print(f"SLURM is up ({cluster.conf}); Ctrl-C stops it and puts the old config back", flush=True)
        while all(p.poll() is None for p in cluster.procs):
            time.sleep(1)
        print("slurm_cluster: a daemon exited; stopping the others", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
