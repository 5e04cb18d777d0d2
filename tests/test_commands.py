"""Every snakemake command printed in the repository (README, CONTRIBUTING, presets, config,
profiles) runs as printed: each is dry-run (-n) in a fresh copy of the workflow."""

import re
import shlex

import pytest
from conftest import ROOT, copy_workflow, make_tar, snakemake, write_image_tree

DOCS = [
    "README.md",
    *(str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("docs/**/*.md"))),
    "CONTRIBUTING.md",
    "config.yaml",
    "profiles/slurm/README.md",
    *map(str, ROOT.glob("presets/*.yaml")),
]
LOOPBACK_OVERLAY = "/tmp/loopback/loopback.yaml"
PATTERN = re.compile(r"(?:\.venv/bin/)?snakemake [^`\n|#)]*")


def printed_commands():
    found = {}
    for doc in DOCS:
        path = ROOT / doc
        text = path.read_text().replace("\\\n", " ")
        for m in PATTERN.finditer(text):
            cmd = " ".join(re.split(r"\s{2,}", m.group(0).strip())[0].split())  # up to a trailing comment
            if any(skip in cmd for skip in ("<", "--report", "--sdm conda", "--cleanup-metadata")):
                continue  # placeholders; the report and conda runs are tested elsewhere / not here
            found.setdefault(cmd, path.name)
    return sorted(found.items())


def test_the_docs_print_commands():
    assert len(printed_commands()) >= 6, printed_commands()


def test_the_readme_is_a_front_door():
    """Short, the smoke preset first, no project history: the rest lives in docs/."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    commands = [m.group(0) for m in PATTERN.finditer(text)]
    assert "presets/smoke.yaml" in commands[0], commands[0]
    assert not re.search(r"\bround \d+", text, re.I)
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert (ROOT / link).exists() or link.startswith("http"), link


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wf = copy_workflow(tmp_path_factory.mktemp("cmds") / "wf")
    tree = write_image_tree(tmp_path_factory.mktemp("imgs") / "imgs", classes=["a", "b"])
    (wf / "data").mkdir()
    make_tar(tree, wf / "data" / "cifar10.tar.gz", "cifar10")  # what presets/cifar10-local.yaml names
    return wf


@pytest.mark.parametrize("cmd, doc", printed_commands())
def test_printed_command_runs(workdir, cmd, doc, request):
    args = shlex.split(cmd)[1:]
    if LOOPBACK_OVERLAY in args:  # what `tests/loopback_device.py /tmp/loopback --accuracy` writes
        import yaml

        overlay = workdir / "loopback.yaml"
        device = request.getfixturevalue("sshd").device(accuracy=True)
        overlay.write_text(yaml.safe_dump({"devices": {"loopback": device}}))
        args = [str(overlay) if a == LOOPBACK_OVERLAY else a for a in args]
    if "presets/your-model-cifar.yaml" in args and not (workdir / "runs/outside/outside.json").exists():
        # the command printed before it: the model trained outside pqgrid (here on the stand-in data)
        import shutil
        import subprocess
        import sys

        shutil.copy(ROOT / "benchmarks/train_outside.py", workdir / "train_outside.py")
        step = [
            sys.executable,
            "train_outside.py",
            "--data",
            "data/cifar10.tar.gz",
            "--out",
            "runs/outside",
            "--epochs",
            "1",
        ]
        subprocess.run(step, cwd=workdir, check=True, capture_output=True, timeout=600)
    if not {"--unlock", "--version"} & set(args):
        args.append("-n")
    proc = snakemake(workdir, *args, check=False, timeout=300)
    assert proc.returncode == 0, f"{doc}: {cmd}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
