"""How a job's process logs: pqgrid's logger and stderr into the rule's log file, warnings
and the one-line failure on the terminal. Imports no other pqgrid module: the warm server's
children (warm.py) and every job (jobs.py) use it."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

# Set by pqgrid's Snakemake logger (workflow/logger, its own package: the name is written in
# both): it shows a failed job's one line, read from the log, on the job's FAILED line.
FAILURE_IN_LOG = "PQGRID_FAILURE_IN_LOG"


def setup_logging(log_path=None) -> logging.Logger:
    """Log to the rule's log file (and stderr when run by hand)."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers = [logging.FileHandler(log_path, mode="a")]
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    return logging.getLogger("pqgrid")


def run_logged(log_path, fn, *args, **kwargs):
    """Run a rule's one function with stderr and logging sent to its log; a failure ends
    the job with the one-line message on the terminal, where Snakemake shows it.

    stderr is redirected at the file-descriptor level, not only `sys.stderr`: TensorFlow's
    C++ start-up noise (CUDA probing, oneDNN and absl notices) writes to fd 2 directly and
    belongs in the job's log, not between Snakemake's progress lines."""
    log = setup_logging(log_path)
    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    # pqgrid's own warnings (a model collapsed to chance, ...) also reach the terminal, one
    # line each: a person watching the run must not have to open every log to see them.
    console = logging.StreamHandler(terminal)
    console.addFilter(lambda record: record.levelno == logging.WARNING)  # errors: one line below
    console.setFormatter(logging.Formatter("pqgrid warning: %(message)s"))
    log.addHandler(console)
    real_stderr = sys.stderr
    with open(log_path, "a") as fh:
        sys.stderr.flush()
        os.dup2(fh.fileno(), 2)
        sys.stderr = fh
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - reported, then re-raised as exit status
            log.exception("failed")
            line = f"pqgrid: {type(e).__name__}: {e}"
            print(line, file=fh, flush=True)  # the log's last line: pqgrid's logger shows it
            if not os.environ.get(FAILURE_IN_LOG):  # no pqgrid logger (a job run by hand): here
                print(line, file=terminal)
            raise SystemExit(1) from None
        finally:
            sys.stderr = real_stderr
            os.dup2(terminal.fileno(), 2)
            log.removeHandler(console)
            terminal.close()
