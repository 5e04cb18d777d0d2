"""The claim code's named mutations, each applied alone and the claims' tests run against it:
a mutation the tests do not fail ("SURVIVED") is a hole in the null suite.

    .venv/bin/python benchmarks/claim_mutations.py            # all: the whole null suite per mutant (tens of minutes)
    .venv/bin/python benchmarks/claim_mutations.py point-t    # one

The list holds the one-line mistakes a refactor of report/claims*.py most easily makes (a
t-interval replaced by its point value, the wrong end of an interval, the near-chance exclusion
or Benjamini-Hochberg dropped, point values in claims 15-17, the seed-to-seed baseline dropped),
written by hand, each a one-line change that leaves every verdict plausible and only the error
rates wrong. The general mutation run (mutmut over report/claims*.py and evaluate/stats.py) is
benchmarks/mutants.py (docs/report.md)."""

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ROOT / "workflow" / "scripts" / "pqgrid"
TESTS = ["tests/test_findings_boundary.py", "tests/test_findings_null.py"]
# name -> (file, the line as it is, the line mutated)
MUTATIONS = {
    "point-t": ("report/claims.py", "        lo, hi = t_interval(v.values)\n",
                "        lo, hi = float(v.mean()), float(v.mean())\n"),
    "wrong-end-12": ("report/claims_accuracy.py", "all(lower_end(r) >= -1 for _, r in d.iterrows())",
                     "all(upper_end(r) >= -1 for _, r in d.iterrows())"),
    "wrong-end-14": ("report/claims_accuracy.py", "all(lower_end(d.loc[a]) >= -1 for a in lost)",
                     "all(upper_end(d.loc[a]) >= -1 for a in lost)"),
    "no-near-chance": ("report/claims.py", "        s = self.summary[~self.summary.arch.isin(self.near_chance)]\n",
                       "        s = self.summary\n"),
    "no-bh": ("report/claims_accuracy.py", "uneven = list(bh_adjust([p for _, p, _ in tests]) < 0.05)",
              "uneven = [p < 0.05 for _, p, _ in tests]"),
    "point-16": ("report/claims_populations.py", "(forgets.excess_pies_minus_all_ci_high_pp < 0).all()",
                 "(forgets.excess_pies_minus_all_pp < 0).all()"),
    "point-15": ("report/claims_populations.py", "(p.excess_pie_ci_high < 0.10).all()", "(p.excess_pie_rate < 0.10).all()"),
    "no-seed-baseline-15": ("report/claims_populations.py", "(p.excess_pie_ci_high < 0.10).all()",
                            "(p.pie_rate < 0.10).all()"),
    "point-17": ("report/claims_populations.py", "ok = ok and r.excess_pie_ci_high < floor", "ok = ok and r.excess_pie_rate < at"),
    "all-forgetting-16": ("report/claims_populations.py", "forgets = p[p.excess_pie_ci_low > 0]", "forgets = p"),
}  # fmt: skip


def run(name: str) -> bool:
    """True when the tests fail with the mutation in place (the mutant is killed)."""
    file, before, after = MUTATIONS[name]
    path = CODE / file
    original = path.read_text()
    if original.count(before) != 1:
        raise SystemExit(f"{name}: the line to mutate is not once in {file} - update MUTATIONS")
    path.write_text(original.replace(before, after))
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *TESTS],
                              cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    finally:
        path.write_text(original)
    failed = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    print(f"{name:16s} {'killed by ' + failed[0] if proc.returncode else 'SURVIVED'}", flush=True)
    return proc.returncode != 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"mutations to run (default: all): {', '.join(MUTATIONS)}")
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in MUTATIONS]
    if unknown:
        parser.error(f"no mutation {', '.join(unknown)}: choose from {', '.join(MUTATIONS)}")
    killed = [run(n) for n in args.names or MUTATIONS]
    print(f"{sum(killed)} of {len(killed)} mutations killed")
    sys.exit(0 if all(killed) else 1)
