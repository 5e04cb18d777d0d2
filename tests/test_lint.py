"""Style gates the model workflows use: snakefmt and snakemake --lint."""

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
