"""Snakemake dry runs forked from one warm interpreter, for tests that dry-run the workflow
over and over (tests/test_staleness.py: every setting of the schema, ~130 dry runs).

A fresh `snakemake -n` spends ~2 s of its ~2.5 s importing Snakemake and collecting its
plugins before it reads the Snakefile; this server does that once, then forks a child per
request that runs Snakemake's own command line (`snakemake.cli.main`) in the request's
folder with its arguments, output to a file: the same program as the CLI, started warm. The
server is a process of its own (not the pytest worker, which has threads a fork would copy
mid-lock). Written by hand: the warm server of the workflow (pqgrid/jobs/warm.py) serves
TensorFlow jobs, not Snakemake itself.

Protocol: one JSON line per request on stdin ({"cwd", "args", "out"}), one line back with
the exit status. Run by the tests only (`DryRuns`)."""

import json
import os
import subprocess
import sys


def serve() -> None:
    import snakemake.cli
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    ExecutorPluginRegistry()  # collected once here, inherited by every child
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            fd = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(req["cwd"])
            sys.argv = ["snakemake", *req["args"]]
            code = 1
            try:
                snakemake.cli.main(req["args"])
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


class DryRuns:
    """`workers` servers; `run(cwd, *args)` -> (exit status, output) on a free one, so as many
    dry runs run at once as there are servers."""

    def __init__(self, tmp, workers=2):
        import itertools
        import queue

        self.tmp, self.count = tmp, itertools.count()
        self.procs = [
            subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(workers)
        ]
        self.free = queue.Queue()
        for proc in self.procs:
            self.free.put(proc)

    def run(self, cwd, *args) -> tuple[int, str]:
        out = self.tmp / f"dry{next(self.count)}.txt"
        proc = self.free.get()
        try:
            proc.stdin.write(json.dumps({"cwd": str(cwd), "args": list(args), "out": str(out)}) + "\n")
            proc.stdin.flush()
            code = int(proc.stdout.readline())
        finally:
            self.free.put(proc)
        return code, out.read_text()

    def close(self):
        for proc in self.procs:
            proc.stdin.close()
            proc.wait(timeout=30)


if __name__ == "__main__":
    import argparse

    # no arguments: requests come on stdin; --help says so and touches nothing
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    serve()
