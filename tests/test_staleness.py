"""Only what changed rebuilds. On a copy of a finished smoke run:
- every leaf of the config schema (and of an architecture's overrides) changed to another
  valid value plans exactly the stages workflow/schemas/stages.yaml declares for it, and
  nothing outside what reads their outputs;
- a code change reruns exactly the stages that run that code; a comment, a docstring or a
  moved function reruns nothing;
- the copied run folder itself needs no job."""

import atexit
import fnmatch
import functools
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, snakemake
from pqgrid.core.catalog import BUILDERS
from pqgrid.core.schema import load_schema

SCHEMA = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
STAGE_MAP = yaml.safe_load((ROOT / "workflow" / "schemas" / "stages.yaml").read_text())
SMOKE = ("--configfile", "presets/smoke.yaml")
RUN = "runs/smoke"
# The named entries of the smoke preset that stand for `*` (the architecture with every mode).
NAMES = {"architectures": "v3small_tiny", "devices": "local", "pruning.schedules": "50", "report.figures.per_figure": "pareto_gzip"}  # fmt: skip
# Objects changed as a whole: their parts only mean something together (a power source,
# a subset of the grid) or have no fixed keys (a figure's own settings).
WHOLE = {"quantization.subsets", "devices.*.power", "devices.*.cooldown", "report.figures.per_figure.*"}


class Siblings(dict):
    """Keys that only change together (an ssh device needs a host): set side by side."""


# Values no schema type implies (a valid path, a second valid source, a grid change).
EXAMPLES = {
    "dataset.source": "synthetic-photos",
    "dataset.image_size": 40,
    "architectures.*.builder": "MobileNetV3Large",
    "architectures.*.weights": "imagenet",
    "architectures.*.input_size": 40,
    "architectures.*.scaling": "tf",
    "architectures.*.training.transfer.fine_tune": False,
    "grid_architectures": ["v3small_tiny"],
    "seeds": [0, 1],
    "pruning.sparsities": [0, 50, 90],
    "pruning.methods": ["magnitude", "channels"],
    "pruning.exclude": "conv_pw_1",
    "architectures.*.pruning.exclude": "conv_pw_1",
    "quantization.modes": ["fp32", "int8", "int16x8", "qat", "fp16"],
    "quantization.subsets": {"qat": {"architectures": ["v3small_tiny"], "sparsities": [0]}},
    "devices.*.type": Siblings(type="ssh", host="127.0.0.1"),
    "devices.*.op_profiling": Siblings(op_profiling=True, benchmark_model="/opt/benchmark_model"),
    "devices.*.setup": Siblings(type="ssh", host="127.0.0.1", setup="packages"),
    "devices.*.power": {"command": "echo 5"},
    "devices.*.cooldown": {"max_temp_c": 70},
    "devices.*.tool": "benchmark_litert_model",
    "report.thesis_dir": None,
    "report.figures.style": "darkgrid",
    "report.figures.context": "paper",
    "report.figures.palette": "deep",
    "report.figures.per_figure.*": {"label_top": 3},
    "report.figures.format": ["png", "pdf"],
    "run_dir": "runs/elsewhere",
    "ship.devices": ["local"],
}


def _merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


CONFIG = _merge(yaml.safe_load((ROOT / "config.yaml").read_text()), yaml.safe_load((ROOT / "presets/smoke.yaml").read_text()))  # fmt: skip


def _resolve(node):
    """A schema node with its $ref's properties merged in."""
    ref = node.get("$ref", "")
    if not ref:
        return node
    target = SCHEMA["$defs"][ref.rsplit("/", 1)[1]]
    props = dict(target.get("properties", {}))
    for key, extra in node.get("properties", {}).items():  # keywords beside the $ref add defaults
        props[key] = {**props.get(key, {}), **extra, "properties": props.get(key, {}).get("properties", {})}
    return {**target, **node, "properties": props}


def _generic(path: str) -> str:
    """architectures.v3small_tiny.qat.epochs -> architectures.*.qat.epochs"""
    for prefix, name in NAMES.items():
        path = re.sub(rf"^({re.escape(prefix)})\.{re.escape(name)}(?=\.|$)", r"\1.*", path)
    return path


def leaves(node=SCHEMA, path=""):
    """Dotted paths of every leaf, `*` entries taken from the smoke preset."""
    node = _resolve(node)
    if path and _generic(path) in WHOLE:
        return [path]
    props = dict(node.get("properties", {}))
    extra = node.get("additionalProperties")
    if path in NAMES and isinstance(extra, dict):
        props[NAMES[path]] = extra
    if path == f"architectures.{NAMES['architectures']}":
        props.update(BUILDERS[CONFIG["architectures"][NAMES["architectures"]]["builder"]]["kwargs"])
    if not props:
        return [path]
    return [leaf for key, sub in props.items() for leaf in leaves(sub, f"{path}.{key}" if path else key)]


def _schema_at(path: str) -> dict:
    node = SCHEMA
    for part in path.split("."):
        node = _resolve(node)
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            arch = CONFIG["architectures"][NAMES["architectures"]]
            node = BUILDERS[arch["builder"]]["kwargs"][part]
    return _resolve(node)


# An architecture's override block falls back to the global one: its value in effect.
FALLBACK = {"training": "training", "pruning": "pruning", "qat": "quantization.qat"}


def _current(path: str):
    node = CONFIG
    for part in path.split("."):
        node = node.get(part, node.get(int(part)) if part.isdigit() else None) if isinstance(node, dict) else None
    parts = path.split(".")
    if node is None and parts[0] == "architectures" and len(parts) > 3 and parts[2] in FALLBACK:
        return _current(".".join([FALLBACK[parts[2]], *parts[3:]]))
    return node


def other_value(path: str):
    """A valid value different from the current one: from EXAMPLES, else from the schema."""
    if _generic(path) in EXAMPLES:
        return EXAMPLES[_generic(path)]
    s, now = _schema_at(path), _current(path)
    if now is None:  # not in the config: the schema's default is in effect
        now = s.get("default")
    if "enum" in s:
        return next(v for v in s["enum"] if v != now)
    types = s.get("type") if isinstance(s.get("type"), list) else [s.get("type")]
    if "boolean" in types:
        return not now
    if "integer" in types or "number" in types:
        low = s.get("minimum", s.get("exclusiveMinimum", 0))
        high = s.get("maximum", s.get("exclusiveMaximum"))
        base = now if isinstance(now, (int, float)) and not isinstance(now, bool) else low
        if "integer" in types:
            value = base + 1
            return value if high is None or value <= high else base - 1
        value = base * 1.5 if base else (high or 1) / 2
        return value if high is None or value < high else (base + low) / 2
    if "string" in types:
        return f"{now or 'x'}2"
    raise AssertionError(f"{path}: give an example value in EXAMPLES")


def _overlay(path: str, value) -> dict:
    out = {}
    node = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(int(part) if part.isdigit() else part, {})
    if isinstance(value, Siblings):
        node.update(value)
    else:
        node[int(parts[-1]) if parts[-1].isdigit() else parts[-1]] = value
    return out


def declared(path: str) -> list:
    """The stages stages.yaml gives the longest key matching `path`."""
    generic = _generic(path)
    keys = [k for k in STAGE_MAP["keys"] if generic == k or generic.startswith(k + ".") or fnmatch.fnmatch(generic, k)]
    assert keys, f"{generic}: not in workflow/schemas/stages.yaml"
    return STAGE_MAP["keys"][max(keys, key=len)]


@functools.cache
def _dry_runs():
    """Two warm Snakemake servers for this module's ~140 dry runs (tests/dry_run_server.py:
    the same CLI, without its ~1 s of imports per run), ended with the worker."""
    from dry_run_server import DryRuns

    pool = DryRuns(Path(tempfile.mkdtemp(prefix="pqgrid-dry-")))
    atexit.register(pool.close)
    return pool


def planned(wf, *extra) -> list:
    """(rule, reason) of every job a dry run plans."""
    code, out = _dry_runs().run(wf, "-n", "all", *SMOKE, *extra)
    assert code == 0, f"{extra}: {out[-3000:]}"
    jobs = re.findall(r"^(?:local)?rule (\w+):\n((?:[ \t]+.*\n)*)", out, re.M)
    return [(rule, (re.search(r"reason: (.*)", body) or [None, ""])[1]) for rule, body in jobs if rule != "all"]


CELL_RULES = {r for s in ("data", "train", "prune", "qat", "convert", "layer_error", "evaluate", "device") for r in STAGE_MAP["stages"][s]}  # fmt: skip


def violations(path: str, jobs: list) -> list:
    """What a dry run planned that the key's declared stages do not allow."""
    stages = declared(path)
    own = {r for s in stages for r in STAGE_MAP["stages"][s]}
    bad = []
    for rule, reason in jobs:
        if "grid" in stages:
            # new cells are built; a finished cell never reruns
            if rule in CELL_RULES and not reason.startswith("Missing output files"):
                bad.append(f"{rule} ({reason[:90]})")
        elif "location" in stages:
            # a new run folder: the run starts from nothing there, whatever the key's value
            if not reason.startswith("Missing output files"):
                bad.append(f"{rule} ({reason[:90]})")
        elif rule not in own and not reason.startswith("Input files updated by another job"):
            bad.append(f"{rule} ({reason[:90]})")
    if stages not in (["none"], ["grid"], ["location"]) and not {r for r, _ in jobs} & own:
        bad.append(f"nothing of {stages} planned")
    if stages == ["none"] and jobs:
        bad.append(f"{len(jobs)} jobs planned")
    return bad


@pytest.fixture(scope="module")
def moved_run(smoke_run, tmp_path_factory):
    """The finished smoke run, copied with its files' dates (cp -a) to another folder."""
    dst = tmp_path_factory.mktemp("moved") / "wf"
    shutil.copytree(smoke_run, dst, symlinks=True)
    return dst


def test_a_copied_run_folder_needs_no_job(moved_run):
    assert planned(moved_run) == []
    # the run folder alone, addressed from elsewhere with --directory and -s
    proc = snakemake(moved_run.parent, "-n", "-s", str(moved_run / "Snakefile"), "--directory", str(moved_run / RUN), "all",
                     "--configfile", str(moved_run / "presets/smoke.yaml"))  # fmt: skip
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_every_schema_leaf_has_a_stage():
    missing = []
    for path in leaves():
        try:
            declared(path)
        except AssertionError as e:
            missing.append(str(e))
    assert not missing, missing


# Keys that make an architecture another kind of model (a Keras file, a .tflite): no value
# fits the smoke run's builder architecture. What their content reruns is tested where such
# models run (tests/test_your_model.py: a replaced model file, an edited builder file).
REPLACE_THE_MODEL = {
    "architectures.*.model",
    "architectures.*.tflite",
    "architectures.*.custom_objects",
    "architectures.*.classes",
}


def test_every_setting_reruns_exactly_its_stages(moved_run):
    paths = [p for p in leaves() if _generic(p) not in REPLACE_THE_MODEL]
    assert len(paths) > 100, len(paths)

    def check(i, path):
        overlay = moved_run / f"leaf{i}.yaml"
        overlay.write_text(yaml.safe_dump(_overlay(path, other_value(path))))
        jobs = planned(moved_run, str(overlay.name))
        return path, declared(path), jobs, violations(path, jobs)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda a: check(*a), enumerate(paths)))
    report = "\n".join(
        f"{path:55s} {','.join(stages):22s} {len(jobs):3d} jobs  first: {sorted({r for r, why in jobs if not why.startswith('Input files updated')})}"
        for path, stages, jobs, _ in results
    )
    print("\nkey -> declared stages, planned jobs, rules planned first\n" + report)
    bad = [f"{path}: {', '.join(v)}" for path, _, _, v in results if v]
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------ code changes
def _edit(wf, module: str, change):
    path = wf / "workflow" / "scripts" / "pqgrid" / f"{module}.py"
    before = path.read_text()
    path.write_text(change(before))
    return lambda: path.write_text(before)


def _first_rules(jobs):
    return sorted({r for r, why in jobs if not why.startswith("Input files updated")})


@pytest.mark.parametrize(
    "module, change, expected",
    [
        ("models/prune", lambda s: s + "\nlog.info('pruning code changed')\n", ["prune_model"]),
        (
            # the PIE gallery lives in report/gallery.py: figure code reruns the figures only
            "report/figures",
            lambda s: s.replace("def ", "def _unused_helper():\n    return 1\n\n\ndef ", 1) + "\n_unused_helper()\n",
            ["plot_figure"],
        ),
        ("report/claims_size", lambda s: s.replace("cut.between(60, 80)", "cut.between(60, 81)"), ["check_findings"]),
        ("models/prune", lambda s: s.replace('"""', '"""A longer docstring. ', 1) + "\n# a comment\n", []),
        ("evaluate/stats", lambda s: _move_last_function_first(s), []),
    ],
    ids=["statement", "figure-code", "claim-code", "comment-docstring", "moved-function"],
)
def test_code_changes_rerun_exactly_their_stages(moved_run, module, change, expected):
    undo = _edit(moved_run, module, change)
    try:
        assert _first_rules(planned(moved_run)) == expected
    finally:
        undo()


def _move_last_function_first(source: str) -> str:
    """The module's last top-level function moved above its first one."""
    import ast

    tree = ast.parse(source)
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and not n.decorator_list]
    first, last = funcs[0], funcs[-1]
    lines = source.splitlines(keepends=True)
    moved = lines[last.lineno - 1 : last.end_lineno]
    rest = lines[: last.lineno - 1] + lines[last.end_lineno :]
    return "".join(rest[: first.lineno - 1] + moved + ["\n\n"] + rest[first.lineno - 1 :])


def test_a_function_moved_to_another_module_reruns_nothing(moved_run):
    """`welch_t` moved from stats.py to a new module with the imports it needs (stats.py
    imports it back), as a refactor into smaller modules does: nothing reruns."""
    import ast

    pq = moved_run / "workflow" / "scripts" / "pqgrid" / "evaluate"
    stats = (pq / "stats.py").read_text()
    fn = next(n for n in ast.parse(stats).body if isinstance(n, ast.FunctionDef) and n.name == "welch_t")
    lines = stats.splitlines(keepends=True)
    body = "".join(lines[fn.lineno - 1 : fn.end_lineno])
    (pq / "stats.py").write_text("".join(lines[: fn.lineno - 1] + lines[fn.end_lineno :]).replace(
        "from __future__ import annotations\n", "from __future__ import annotations\n\nfrom pqgrid.evaluate.means import welch_t\n", 1))  # fmt: skip
    (pq / "means.py").write_text('"""Tests of means."""\n\nimport warnings\n\nimport numpy as np\n\n\n' + body)
    try:
        assert _first_rules(planned(moved_run)) == []
    finally:
        (pq / "stats.py").write_text(stats)
        (pq / "means.py").unlink()


def test_an_upgrade_between_two_commits_reruns_the_changed_stage(moved_run):
    """A user's checkout is a git repository: commit, change one module in a second commit,
    dry-run: exactly its stages (convert.py: every conversion, then what reads them)."""

    def git(*args):
        subprocess.run(["git", "-C", str(moved_run), *args], check=True, capture_output=True)

    git("init", "-q")
    git(
        "-c",
        "user.email=t@t",
        "-c",
        "user.name=t",
        "add",
        "Snakefile",
        "config.yaml",
        "workflow",
        "presets",
        "profiles",
    )
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one")
    undo = _edit(moved_run, "quant/convert", lambda s: s.replace("level=9):", "level=9 + 0):", 1))
    try:
        git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "two")
        assert _first_rules(planned(moved_run)) == ["convert_tflite"]
    finally:
        undo()
        shutil.rmtree(moved_run / ".git")


def test_provenance_names_pqgrid_and_every_writer():
    from pqgrid import __version__
    from pqgrid.core.io import versions

    v = versions()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert v["pqgrid"]["version"] == __version__
    if commit.returncode == 0:
        assert v["pqgrid"]["commit"] == commit.stdout.strip()
    assert v["ai-edge-quantizer"] and v["ai-edge-litert"]


def test_stage_code_digests_are_cached_per_state_of_the_code(tmp_path):
    """Every Snakemake start reads the digests from the user's cache instead of re-reading
    ~70 modules: the cached value is the one computed from the code, it is what a later start
    returns, and any changed byte under workflow/scripts is another cache file."""
    import json
    import sys

    code = ROOT / "workflow" / "scripts"

    def digest(scripts, cache):
        prog = (
            f"import sys; sys.path.insert(0, {str(scripts)!r}); from pqgrid.jobs import stage_code as p; "
            "print(p.stage_digest('train_model.py'), p._cache_file().name)"
        )
        env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(cache)}
        out = subprocess.run([sys.executable, "-c", prog], env=env, capture_output=True, text=True, check=True)
        return out.stdout.split()

    cold, name = digest(code, tmp_path / "a")
    files = list((tmp_path / "a" / "pqgrid" / "stage-code").glob("*.json"))
    assert [f.name for f in files] == [name] and json.loads(files[0].read_text())["train_model.py"] == cold
    files[0].write_text(json.dumps({"train_model.py": "from-the-cache"}))
    assert digest(code, tmp_path / "a")[0] == "from-the-cache"
    assert digest(code, tmp_path / "b") == [cold, name], "an empty cache gives the same digest"
    copy = tmp_path / "scripts"
    shutil.copytree(code, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "pqgrid" / "models" / "prune.py").write_text((copy / "pqgrid" / "models" / "prune.py").read_text() + "\n")
    assert digest(copy, tmp_path / "a")[1] != name, "one changed byte: another cache file"
    # the cache's own code is reached by the rule files only, never by a stage: editing it
    # reruns nothing (stage_code itself is part of every digest: decorated, it runs at import)
    prov = copy / "pqgrid" / "jobs" / "stage_code.py"
    prov.write_text(prov.read_text().replace("KEPT_CODE_STATES = 20", "KEPT_CODE_STATES = 21"))
    assert digest(copy, tmp_path / "c")[0] == cold
