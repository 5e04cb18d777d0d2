"""Style gates: ruff (lint + format), snakefmt, snakemake --lint, and CONTRIBUTING.md kept true."""

import re
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


def _pqgrid_imports():
    """{module: {(imported module, at top level?)}} of the pqgrid package's own imports,
    modules named relative to the package ('core.config'); and the relative imports found."""
    import ast

    from pqgrid.jobs.stage_code import PACKAGE, _own_module

    edges, relative = {}, []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        edges[module] = {
            (target, id(node) in top)
            for node in ast.walk(tree)
            for target in _own_module(node, module)
            if target not in ("", "__init__")
        }
        relative += [module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    return edges, relative


def _circles(graph: dict) -> list:
    def reaches(start, goal):
        seen, stack = set(), [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    return sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if reaches(b, a))


def test_pqgrid_imports_point_one_way():
    """No import circle between pqgrid's modules nor between its subpackages (counting
    imports inside functions), core imports no stage, no pqgrid import hidden inside a
    function, and every pqgrid import absolute (`from pqgrid.core.io import ...`)."""
    edges, relative = _pqgrid_imports()
    assert len(edges) > 30, "the walk found the package"
    assert not relative, f"relative imports in {sorted(set(relative))}: write them as from pqgrid.<package>.<module>"
    inner = sorted(f"{m} -> {t}" for m, ts in edges.items() for t, top in ts if not top)
    assert not inner, inner
    graph = {m: {t for t, _ in ts} for m, ts in edges.items()}
    assert not _circles(graph), _circles(graph)
    packages = {}
    for m, ts in graph.items():
        packages.setdefault(m.split(".")[0], set()).update(
            t.split(".")[0] for t in ts if t.split(".")[0] != m.split(".")[0]
        )
    assert not _circles(packages), _circles(packages)
    upward = sorted(
        f"{m} -> {t}" for m, ts in graph.items() if m.startswith("core.") for t in ts if not t.startswith("core")
    )
    assert not upward, f"core imports a stage: {upward}"
    jobs_up = sorted(
        f"{m} -> {t}"
        for m, ts in graph.items()
        if m.startswith("jobs.")
        for t in ts
        if t.split(".")[0] not in ("core", "jobs")
    )
    assert not jobs_up, f"the job machinery imports a stage: {jobs_up}"


def test_import_check_finds_circles():
    """The walk above sees a circle and an upward import when there is one."""
    assert _circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == ["a <-> b", "b <-> a"]
    assert not _circles({"a": {"b"}, "b": {"c"}})


# ---------------------------------------------------------------- the house in numbers
LIBRARY = ROOT / "workflow" / "scripts" / "pqgrid"
MAX_FUNCTION_LINES, MAX_MODULE_LINES, MAX_CORE_LINES = 60, 500, 2000
# comments and docstrings give reasons, not history ("no longer" describes what code does)
HISTORY = re.compile(
    r"(?i)\b(round \d+|issue #?\d+|always had|earlier (?:round|version|session)s?|previously|formerly|as before|used to be"
    r"|existing results keep)\b"
)


def _long_functions(path, base=LIBRARY, limit=MAX_FUNCTION_LINES) -> list:
    import ast

    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(base)}:{n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > limit]  # fmt: skip


def test_no_function_over_60_lines_and_no_module_over_500():
    """Every function of the library fits a screen, every module a sitting; the offenders are listed."""
    modules = sorted(LIBRARY.rglob("*.py"))
    long_functions = [f for path in modules for f in _long_functions(path)]
    assert not long_functions, long_functions
    long_modules = [f"{p.relative_to(LIBRARY)} ({n} lines)" for p in modules
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]  # fmt: skip
    assert not long_modules, long_modules


def test_the_limits_catch_what_they_name(tmp_path):
    """The walk above sees a long function and a history comment when there is one."""
    (tmp_path / "long.py").write_text("def f():\n" + "    x = 1\n" * 60 + "\n\ndef g():\n" + "    x = 1\n" * 59)
    assert _long_functions(tmp_path / "long.py", base=tmp_path) == ["long.py:f (61 lines)"]
    assert (
        HISTORY.search("# kept as in round 3") and HISTORY.search("see issue #12") and HISTORY.search("it always had")
    )
    assert not HISTORY.search("a rare extreme image no longer sets a whole range")


def test_comments_give_reasons_not_history():
    files = [*LIBRARY.rglob("*.py"), *(ROOT / "workflow" / "rules").glob("*.smk"), ROOT / "Snakefile",
             ROOT / "CONTRIBUTING.md"]  # fmt: skip
    found = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files
             for i, line in enumerate(p.read_text().splitlines(), 1) if HISTORY.search(line)]  # fmt: skip
    assert not found, found


def test_core_holds_at_most_2000_lines():
    """core/ is what every stage reads at parse time; job machinery, statistics and the board
    program live with their users."""
    lines = sum(len(p.read_text().splitlines()) for p in (LIBRARY / "core").glob("*.py"))
    assert lines <= MAX_CORE_LINES, f"core/ is {lines} lines"
