"""mutmut over the statistics and claim code, against the claims' fast tests: every mutant
mutmut makes (an operator flipped, a constant changed, an argument dropped) and whether a test
fails with it in place. A surviving mutant is a change of the code no test notices; the file
lists each with its diff, and docs/results/README.md ("Mutants that survive") says why the
ones left are harmless.

    .venv/bin/python benchmarks/mutants.py docs/results                         # stats.py and report/claims*.py
    .venv/bin/python benchmarks/mutants.py docs/results --only evaluate/stats.py    # one module

mutmut works on a copy (a temporary folder with the library, the tests and its own
setup.cfg), never on the checkout. The tests it runs are the fast ones of the claims and
statistics (the simulated null suites' 200- and 400-run rates are benchmarks/claim_rates.py's
job: tens of minutes per mutant). Writes mutants.csv: mutant, status, diff. With `--minutes`,
mutmut is stopped after that long and the mutants it had not reached are written as "not
checked" (2 cores test 10-40 mutants a minute: evaluate/stats.py alone has ~700)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "workflow/scripts/pqgrid"
MODULES = ["evaluate/stats.py", *(f"report/{p.name}" for p in sorted((ROOT / PACKAGE / "report").glob("claims*.py")))]
TESTS = ["tests/test_pie.py", "tests/test_findings_boundary.py", "tests/test_findings_null.py", "tests/test_ship.py"]
# the simulated rates (minutes per mutant) and the smoke run stay out
DESELECT = "not at_the_boundary and not rejects_its_null and not smoke and not benchmark_writes"


# what the tests read beside the library (the schema, the defaults, the committed rates)
ALSO = ["config.yaml", "workflow/schemas", "workflow/rules", "presets", "resources", "docs/results"]


def setup_cfg(modules) -> str:
    """mutmut names a mutant by its file's path: the library sits at the copy's top level
    (pqgrid/), as the tests import it."""
    only = "\n    ".join(f"pqgrid/{m}" for m in modules)
    tests = "\n    ".join([*TESTS, "-k", DESELECT])
    also = "\n    ".join(ALSO)
    return (
        "[mutmut]\n"
        "source_paths = pqgrid\n"
        f"also_copy =\n    {also}\n"
        f"only_mutate =\n    {only}\n"
        f"pytest_add_cli_args_test_selection =\n    {tests}\n"
        "pytest_add_cli_args =\n    -p\n    no:xdist\n    -p\n    no:cacheprovider\n"
    )


def run(modules, work: Path, children: int, minutes: float | None = None) -> pd.DataFrame:
    """mutmut run in a copy under `work`, stopped after `minutes`; one row per mutant."""
    shutil.copytree(ROOT / PACKAGE, work / "pqgrid", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for part in ALSO:
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, work / part)
    (work / "setup.cfg").write_text(setup_cfg(modules))
    mutmut = Path(sys.executable).with_name("mutmut")
    job = subprocess.Popen([str(mutmut), "run", "--max-children", str(children)], cwd=work, start_new_session=True)
    try:
        job.wait(timeout=None if minutes is None else 60 * minutes)
    except subprocess.TimeoutExpired:
        # its own session: the pytest children it forked go too; each finished mutant's
        # status is already on disk (mutants/*.meta), so `mutmut results` still lists it
        os.killpg(job.pid, signal.SIGTERM)
        job.wait()
        print(f"mutmut stopped after {minutes:g} min; the mutants it had not tested are 'not checked'")
    listing = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=work, capture_output=True, text=True)
    rows = []
    for line in listing.stdout.splitlines():
        if ":" not in line:
            continue
        name, status = (part.strip() for part in line.rsplit(":", 1))
        diff = ""
        if status == "survived":
            shown = subprocess.run([str(mutmut), "show", name], cwd=work, capture_output=True, text=True)
            diff = "\n".join(
                x for x in shown.stdout.splitlines() if x.startswith(("+", "-")) and not x.startswith(("+++", "---"))
            )
        rows.append({"mutant": name, "status": status, "diff": diff})
    return pd.DataFrame(rows, columns=["mutant", "status", "diff"])


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="folder for mutants.csv (docs/results)")
    parser.add_argument(
        "--only", nargs="+", default=MODULES, help=f"modules under {PACKAGE} (default: {' '.join(MODULES)})"
    )
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--minutes", type=float, default=None, help="stop mutmut after this long (default: no limit)")
    args = parser.parse_args(argv)
    unknown = [m for m in args.only if not (ROOT / PACKAGE / m).is_file()]
    if unknown:
        parser.error(f"no module {unknown[0]} under {PACKAGE}; choose from {' '.join(MODULES)}")
    if not args.out.is_dir():
        parser.error(f"{args.out}: no such folder; create it or name another")
    with tempfile.TemporaryDirectory(prefix="pqgrid-mutants-") as tmp:
        table = run(args.only, Path(tmp), args.children, args.minutes)
    if table.empty or (table.status == "not checked").all():
        raise SystemExit("mutmut checked no mutant (its test run failed: see its output above)")
    table.to_csv(args.out / "mutants.csv", index=False)
    counts = table.status.value_counts()
    print(
        f"{len(table)} mutants: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + f"; written to {args.out / 'mutants.csv'}"
    )


if __name__ == "__main__":
    main()
