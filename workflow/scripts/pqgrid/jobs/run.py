"""How a rule's script runs its one function: in a child of the run's warm server when there is
one (warm.py: TensorFlow already imported), else in the job's own process - the same result,
logged the same way (logs.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pqgrid.jobs.logs import run_logged
from pqgrid.jobs.warm import run_warm

RULES = Path(__file__).resolve().parents[3] / "rules"  # workflow/rules/


def by_hand(script_globals: dict) -> None:
    """A rule script run by hand (`python workflow/scripts/x.py --help`) has no `snakemake`
    object - Snakemake gives it one, with the rule's files: say which rules run it and how to
    run them, then exit (0 for --help, 2 otherwise) rather than end in a NameError."""
    if "snakemake" in script_globals:
        return
    script = Path(script_globals.get("__file__", "script.py")).name
    rules = []
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"\n(?=(?:rule|checkpoint) )", smk.read_text()):
            if f'"../scripts/{script}"' in block:
                rules.append(f"{block.split()[1].rstrip(':')} ({smk.relative_to(RULES.parent.parent)})")
    line = (
        f"{script}: the script of rule {', '.join(rules) or '(none)'}; Snakemake runs it with the rule's files. "
        "Run the workflow for its target instead: .venv/bin/snakemake --cores 1 <target> "
        "(docs/targets.md lists them)"
    )
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(line)
        raise SystemExit(0)
    print(f"pqgrid: {line}", file=sys.stderr)
    raise SystemExit(2)


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
