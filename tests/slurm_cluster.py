"""A real one-node SLURM cluster on loopback (Debian's slurm-wlm + munge), for the cluster
profile test. Every wait is bounded.

The config must live at SLURM's default path (/etc/slurm/slurm.conf): the executor plugin's
job step drops every inherited SLURM_* variable, SLURM_CONF included, before its nested
`srun`, which then finds no configuration. An existing file there is kept aside and put
back on stop."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
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
            subprocess.run(["munged", "--force"], check=True, capture_output=True)
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


if __name__ == "__main__":
    import sys

    c = SlurmCluster(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/slurm")).start()
    print(f"export SLURM_CONF={c.conf}")
