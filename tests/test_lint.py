"""Style gates: ruff (lint + format), snakefmt, snakemake --lint, and CONTRIBUTING.md kept true."""

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, snakemake


def test_snakefmt_check():
    exe = Path(sys.executable).with_name("snakefmt")
    proc = subprocess.run([str(exe), "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_lint(workflow_dir):
    proc = snakemake(workflow_dir, "--lint", check=False)
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_ruff_check_and_format():
    exe = Path(sys.executable).with_name("ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_contributing_names_only_files_and_tests_that_exist():
    """CONTRIBUTING.md stays true: every path and test it names exists."""
    import re

    text = (ROOT / "CONTRIBUTING.md").read_text()
    paths = set(re.findall(r"`((?:workflow|tests)/[\w/.]+\.(?:py|smk|yaml))`", text))
    assert len(paths) >= 10
    for p in paths:
        assert (ROOT / p).is_file(), p
    rules = set(re.findall(r"`(\w+\.smk)`", text))
    scripts = set(re.findall(r"`(\w+\.py)`", text))
    assert rules <= {p.name for p in (ROOT / "workflow/rules").glob("*.smk")}
    known = {p.name for p in (ROOT / "workflow/scripts").rglob("*.py")}
    assert scripts - {"conftest.py"} <= known, scripts - known
    tests_text = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for name in re.findall(r"`(test_\w+)`", text):
        assert f"def {name}(" in tests_text, name
