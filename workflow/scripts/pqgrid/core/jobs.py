"""How a rule's script runs its one function: in a child of the run's warm server when there is
one (warm.py: TensorFlow already imported), else in the job's own process - the same result,
logged the same way (logs.py)."""

from __future__ import annotations

from pqgrid.core.logs import run_logged
from pqgrid.core.warm import run_warm


def run_script(log_path, fn, *args, warm=False, **kwargs):
    """`fn(*args, **kwargs)` as the job's work, logged to `log_path` (logs.run_logged).
    `warm`: a job that needs TensorFlow runs in a child of the warm server when one is up."""
    if warm and not args:
        status = run_warm(log_path, fn, kwargs)
        if status is not None:
            if status:
                raise SystemExit(status)
            return None
    return run_logged(log_path, fn, *args, **kwargs)
