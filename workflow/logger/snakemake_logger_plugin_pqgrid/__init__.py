"""pqgrid's terminal, as a Snakemake logger plugin (`--logger pqgrid`, on in profiles/default).

A run prints a header (how many jobs, in which folder), one line per finished job with the
progress count and an estimate of the time left, one line per failed job with its log, and
at the end where the findings, tables and figures are and the report command. A dry run
lists each planned job with its output, reason and wildcards as Snakemake does. Everything
else Snakemake says passes through, less its scheduling chatter. TensorFlow's notices never
reach it: the jobs send them to their logs (pqgrid/jobs.run_script)."""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

# Snakemake's scheduling chatter: true, and of no use to a person watching a run.
NOISE = re.compile(
    r"^(Select jobs to execute|Execute \d+ jobs|Building DAG of jobs|Using shell:|Provided cores:|"
    r"Rules claiming more threads|Assuming unrestricted shared filesystem|Using workflow specific profile|"
    r"Config file .* is extended by|host: |Job stats:|job +count|-+ +-+|\w+ +\d+$|total +\d+$|"
    r"Provided resources:|Singularity containers:|Conda environments:|Shell command: None|\[\w{3} \w{3} +\d+ )"
)


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    pass


def _label(rule: str, wildcards: dict | None) -> str:
    """'train_model mobilenet seed0' from a rule and its wildcards."""
    parts = []
    for key, value in (wildcards or {}).items():
        parts.append({"seed": f"seed{value}", "sparsity": f"s{value}"}.get(key, str(value)))
    return " ".join([rule, *parts])


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# Options of the user's command that decide what a report shows (its config, its folder, its
# workflow), with how many values each takes ("*": up to the next option, as Snakemake reads them).
REPORT_OPTIONS = {"--configfile": "*", "--configfiles": "*", "--config": "*", "-C": "*", "--directory": 1,
                  "-d": 1, "--snakefile": 1, "-s": 1, "--profile": 1, "--workflow-profile": 1}  # fmt: skip


def report_hint(argv: list, run_dir: str, exe: str = "snakemake") -> str:
    """The command that makes this run's HTML report, runnable as printed from the folder the
    run was started in: `exe` as the user typed it, the options of `argv` that decide what the
    report shows (REPORT_OPTIONS; targets, cores and the rest left out) and the report's
    absolute path in the run's folder."""
    kept, i = [], 0
    while i < len(argv):
        name = argv[i].partition("=")[0]
        takes = REPORT_OPTIONS.get(name)
        if takes is None or "=" in argv[i]:
            kept += [argv[i]] if takes else []
            i += 1
            continue
        j = i + 1
        while j < len(argv) and not argv[j].startswith("-") and (takes == "*" or j - i <= takes):
            j += 1
        kept += argv[i:j]
        i = j
    return " ".join(shlex.quote(w) for w in [exe, "--report", os.path.join(run_dir, "report.html"), *kept])


def _typed_exe(argv0: str) -> str:
    """Snakemake as the user started it: `python -m snakemake` for the module, else the path typed."""
    return f"{sys.executable} -m snakemake" if argv0.endswith("__main__.py") else argv0


# Set for the jobs (they inherit the environment): a failing job writes its one-line error
# as its log's last line instead of to the terminal, and this logger puts it on the FAILED line.
FAILURE_IN_LOG = "PQGRID_FAILURE_IN_LOG"
# Set by the Snakefile (pqgrid.jobs.cli.stand_in_folder, the same name there) when a dry run of a
# folder not made yet plans in a temporary stand-in: the folder the plan is for.
PLANNED_FOR = "PQGRID_PLANNED_FOR"
# Snakemake's own lines after a failed job (RuleException, CalledProcessError, WorkflowError,
# "Exiting because ..."): kept in its log file, left off the terminal.
AFTER_FAILURE = re.compile(r"^(Exiting because a job execution failed|Shutting down, this might take some time)")


def job_error_line(log_paths: list) -> str:
    """The last `pqgrid: ...` line of a failed job's first log (pqgrid.jobs.logs.run_logged
    writes it there), without the prefix; "" where there is none."""
    if not log_paths:
        return ""
    try:
        with open(log_paths[0], errors="replace") as fh:
            lines = [line.rstrip("\n") for line in fh if line.startswith("pqgrid: ")]
    except OSError:
        return ""
    return lines[-1].removeprefix("pqgrid: ") if lines else ""


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        os.environ[FAILURE_IN_LOG] = "1"
        self.stream = sys.stdout if self.common_settings.stdout else sys.stderr
        self.jobs: dict = {}
        self.total = 0
        self.finished: list = []
        self.failed = 0
        self.t0 = None

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        try:
            if event == LogEvent.RUN_INFO:
                self._run_info(record)
            elif event == LogEvent.JOB_INFO:
                self._job_info(record)
            elif event == LogEvent.JOB_FINISHED:
                self._job_finished(record)
            elif event == LogEvent.PROGRESS:
                self._progress(record)
            elif event == LogEvent.JOB_ERROR:
                self._job_error(record)
            elif event == LogEvent.ERROR:
                text = record.getMessage()
                # a job's exception (before its JOB_ERROR) and the closing WorkflowError after
                # one: the job's FAILED line says it
                if not (self.failed or text.startswith("RuleException")):
                    self._say(text)
            elif event is None:
                self._plain(record)
        except Exception:  # noqa: BLE001 - a display problem must never stop a run
            self.handleError(record)

    def _run_info(self, record) -> None:
        counts = dict(getattr(record, "stats", {}) or {})
        self.total = counts.pop("total", 0) or sum(counts.values())
        if self.total and not self.t0:
            rules = ", ".join(f"{n} {r}" for r, n in sorted(counts.items(), key=lambda kv: -kv[1]) if r != "all")
            verb = "would run" if self.common_settings.dryrun else "to run"
            folder = os.environ.get(PLANNED_FOR) or os.getcwd()
            self._say(f"pqgrid: {self.total} job{'s' * (self.total != 1)} {verb} in {folder} ({rules})")
            self.t0 = time.time()
        if self.common_settings.dryrun:
            self._say(record.getMessage())  # Snakemake's job table: what a dry run is for

    def _job_info(self, record) -> None:
        jobid = getattr(record, "jobid", None)
        rule = getattr(record, "rule_name", "?")
        wildcards = getattr(record, "wildcards", {}) or {}
        self.jobs[jobid] = {"label": _label(rule, wildcards), "log": list(getattr(record, "log", []) or []),
                            "start": time.time()}  # fmt: skip
        if self.common_settings.dryrun:
            # Snakemake's own layout, so a dry run reads as it always has
            lines = [f"rule {rule}:"]
            output = getattr(record, "output", None)
            if output:
                lines.append(f"    output: {', '.join(map(str, output))}")
            reason = getattr(record, "reason", None)
            if reason:
                lines.append(f"    reason: {reason}")
            threads = getattr(record, "threads", 1)
            if threads and threads > 1:
                lines.append(f"    threads: {threads}")
            if wildcards:
                lines.append(f"    wildcards: {', '.join(f'{k}={v}' for k, v in wildcards.items())}")
            self._say("\n".join(lines) + "\n")

    def _job_finished(self, record) -> None:
        job = self.jobs.get(getattr(record, "job_id", None), {"label": "job", "start": time.time()})
        self.finished.append((job["label"], time.time() - job["start"]))

    def _progress(self, record) -> None:
        """Snakemake's count after each finished job: one line for the jobs finished since."""
        done, total = getattr(record, "done", 0), getattr(record, "total", 0) or self.total
        elapsed = time.time() - (self.t0 or time.time())
        left = f", ~{_duration(elapsed / done * (total - done))} left" if done and done < total else ""
        width = len(str(total))
        for label, took in self.finished:
            if label != "all":
                self._say(
                    f"[{done:>{width}}/{total} {100 * done // max(total, 1):3d}%] {label} ({_duration(took)}{left})"
                )
        self.finished = []

    def _job_error(self, record) -> None:
        self.failed += 1
        job = self.jobs.get(getattr(record, "jobid", None), {"label": "a job", "log": []})
        logs = [os.path.abspath(path) for path in job.get("log") or []]
        error = job_error_line(logs)
        self._say(
            f"pqgrid: FAILED {job['label']}{': ' + error if error else ''}{'; log: ' + ', '.join(logs) if logs else ''}"
        )

    def _plain(self, record) -> None:
        text = record.getMessage()
        if not text.strip() or (record.levelno < logging.WARNING and NOISE.match(text.strip())):
            return
        if self.failed and AFTER_FAILURE.match(text.strip()):
            return
        if text.startswith("Complete log") and not self.common_settings.dryrun and not self.failed:
            self._closing()
        self._say(text)

    def _closing(self) -> None:
        """Where the results are, when this run made a report's worth of them."""
        if not os.path.exists("results/findings.md"):
            return
        here = os.getcwd()
        # the command runs from where the user started this run (its paths are relative to it)
        hint = report_hint(sys.argv[1:], here, _typed_exe(sys.argv[0]))
        self._say(
            f"pqgrid: findings {here}/results/findings.md; tables {here}/results/tables/; figures "
            f"{here}/results/figures/\npqgrid: one HTML report: {hint}"
        )

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
