"""Which pqgrid code each stage runs, as a hash: a job reruns when that code changes.

A rule passes `code=stage_digest("<script>.py")` (stage_code, cached) as a param, so Snakemake reruns a job when
the pqgrid code it executes changes, and only then (its params trigger). The hash is
hand-written: no library follows a script's calls through a package. It covers the
definitions the script can reach by name, normalised:
  - comments, docstrings and line numbers are not part of it;
  - pqgrid's own imports are not (moving a function to another module changes nothing);
  - definitions are hashed as a sorted set (reordering or moving code changes nothing);
  - anything else (a renamed variable, a new log message) is a change;
  - a text "pqgrid.<module>:<name>" reaches that definition like an import and a call do.
Trade-off, written down in CONTRIBUTING ("Code changes and staleness"): a refactor that
changes reached code reruns its stages even when their outputs would come out the same;
the alternative, a version number per stage bumped by hand, reruns nothing by mistake
when someone forgets to bump it. `--cleanup-metadata` keeps results on purpose.

Pure standard library, called by the rule files at parse time. Reading and normalising the
~70 modules takes ~1 s, paid by every Snakemake start (each dry run, each cluster job), so the
digests are kept in the user's cache (`$XDG_CACHE_HOME/pqgrid`, else `~/.cache/pqgrid`) under
a hash of every file's bytes in workflow/scripts and the Python version: any edit is a new key,
and a cache that cannot be written or read only costs the second."""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FUNCTION_TEXT = re.compile(r"pqgrid\.([\w.]+):(\w+)")
PACKAGE = Path(__file__).resolve().parent.parent  # workflow/scripts/pqgrid
SCRIPTS = PACKAGE.parent


def _module_file(dotted: str) -> Path | None:
    """The file of a pqgrid module named relative to the package ('core.config'), or of a
    subpackage's __init__; None when the name is no module (an imported function)."""
    path = PACKAGE.joinpath(*dotted.split(".")) if dotted else PACKAGE
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _own_module(node: ast.AST, module: str | None) -> list[str]:
    """pqgrid modules an import statement names, relative to the package: `import
    pqgrid.core.io`, `from pqgrid.core.io import x` -> 'core.io'; `from pqgrid.core import io`
    -> 'core.io' (io is a module) or 'core' (a name in core/__init__); relative imports alike."""
    if isinstance(node, ast.Import):
        return [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("pqgrid.")]
    if not isinstance(node, ast.ImportFrom):
        return []
    name = node.module or ""
    if node.level == 0:
        if name != "pqgrid" and not name.startswith("pqgrid."):
            return []
        base = name.split(".", 1)[1] if "." in name else ""
    else:
        if module is None:
            return []  # a relative import outside the package: not pqgrid's
        parts = module.split(".")[: -node.level]
        base = ".".join(p for p in (*parts, name) if p)
    found = []
    for alias in node.names:
        inner = f"{base}.{alias.name}" if base else alias.name
        found.append(inner if _module_file(inner) else base)
    return [m for m in dict.fromkeys(found) if _module_file(m)]


def _module_aliases(tree: ast.Module, module: str | None) -> dict:
    """Local name -> pqgrid module, for imports that bind a module (`from pqgrid.core import
    harness`): what `harness.__file__` refers to, and imports that run a module."""
    aliases = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                found = _own_module(ast.ImportFrom(module=node.module, names=[alias], level=node.level), module)
                if found and found[0].rsplit(".", 1)[-1] == alias.name:
                    aliases[alias.asname or alias.name] = found[0]
    return aliases


def _docstring(body: list) -> bool:
    first = body[0] if body else None
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def _canon(node, module: str | None) -> str:
    """A version-stable text of an AST: node type and non-empty fields, without positions,
    load/store contexts, docstrings and pqgrid's own imports (ast.dump's format changes
    between Python releases)."""
    if isinstance(node, list):
        return "[" + ",".join(_canon(v, module) for v in node if not _own_module(v, module)) + "]"
    if not isinstance(node, ast.AST):
        return repr(node)
    fields = []
    for name, value in ast.iter_fields(node):
        if name in ("ctx", "type_comment") or value is None or value == []:
            continue
        if name == "body" and isinstance(node, _WITH_DOCSTRING) and _docstring(value):
            value = value[1:]
        fields.append(f"{name}={_canon(value, module)}")
    return f"{type(node).__name__}({','.join(fields)})"


_WITH_DOCSTRING = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)


def _defined(stmt: ast.stmt) -> set:
    """Names a top-level statement defines (empty: it runs for its effect when imported).
    An import defines the names it binds: it counts where reached code uses them, so adding
    `import re` for one function reruns only the stages that reach that function."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return set() if stmt.decorator_list else {stmt.name}  # decorated: registers itself
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {a.asname or a.name.split(".")[0] for a in stmt.names if a.name != "*"}
    if isinstance(stmt, ast.Assign):
        return {n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and isinstance(stmt.target, ast.Name):
        return {stmt.target.id}
    return set()


@dataclass(frozen=True)
class _Statement:
    """One top-level statement, read once: what it defines and names, which pqgrid modules
    it imports or runs as a file, and its normalised text (None: a pqgrid import)."""

    defines: frozenset
    names: frozenset
    imports: tuple
    runs_file: tuple
    text: str | None


def _read(stmt: ast.stmt, module: str | None, aliases: dict) -> _Statement:
    names, imports, runs_file = set(), [], []
    for node in ast.walk(stmt):
        imports += _own_module(node, module)
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
            # `module.__file__`: the file runs elsewhere as a whole (device.py uploads the
            # harness to the board), so every line of it is reached
            if node.attr == "__file__" and isinstance(node.value, ast.Name):
                runs_file.append(aliases.get(node.value.id, node.value.id))
        elif isinstance(node, ast.alias):
            names.update((node.asname or node.name.split(".")[0], node.name.split(".")[-1]))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # "pqgrid.<module>:<name>", a function named by text (core/catalog.py's builders)
            ref = FUNCTION_TEXT.fullmatch(node.value)
            if ref and _module_file(ref[1]):
                imports.append(ref[1])
                names.add(ref[2])
    text = None if _own_module(stmt, module) else _canon(stmt, module)
    defines = _defined(stmt)
    if isinstance(stmt, ast.ImportFrom) and defines and defines <= set(aliases):
        # `from pqgrid.report import claims_size`: importing a module runs it (its
        # registrations, e.g. @claim), so the statement is reached whenever its module is,
        # not only where a name it binds is used
        defines = set()
    return _Statement(frozenset(defines), frozenset(names), tuple(imports), tuple(runs_file), text)


@functools.cache
def _module(path: Path, module: str | None) -> tuple:
    tree = ast.parse(path.read_text(), filename=str(path))
    body = tree.body[1:] if _docstring(tree.body) else tree.body
    aliases = _module_aliases(tree, module)
    return tuple(_read(stmt, module, aliases) for stmt in body)


def reached(script: str | Path) -> list:
    """Every top-level statement the script can reach by name: the script itself, each
    imported pqgrid module's import-time statements, and the definitions named by anything
    included, to a fixed point. Names are matched across modules without resolving them (a
    shared name includes both: more reruns, never fewer)."""
    modules: dict = {None: _module(Path(script), None)}
    included: set = set()
    names: set = set()
    pending = [(None, i) for i in range(len(modules[None]))]

    def load(module, whole=False):
        path = _module_file(module)
        if path is None:
            return
        first = module not in modules
        if first:
            modules[module] = _module(path, module)
        pending.extend((module, i) for i, st in enumerate(modules[module]) if whole or (first and not st.defines))

    while pending:
        while pending:
            key = pending.pop()
            if key in included:
                continue
            included.add(key)
            st = modules[key[0]][key[1]]
            names.update(st.names)
            for other in st.imports:
                load(other)
            for other in st.runs_file:
                load(other, whole=True)
        pending = [
            (m, i)
            for m, sts in modules.items()
            for i, st in enumerate(sts)
            if (m, i) not in included and st.defines & names
        ]
    return [modules[m][i] for m, i in sorted(included, key=lambda k: (str(k[0]), k[1]))]


@functools.cache
def stage_code(script: str) -> str:
    """sha256 (first 16 hex digits) of the normalised code a rule script reaches; `script`
    is a file name in workflow/scripts/. The rule files call `stage_digest`, its cached form."""
    # a set: the same import in two modules counts once, so moving a function next to
    # imports its new module already has changes nothing
    texts = sorted({st.text for st in reached(SCRIPTS / script) if st.text is not None})
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]


# The cache lives beside stage_code, not in it: every stage reaches stage_code (a decorated
# definition runs at import), so its text is part of every digest; the functions below are
# reached only by the rule files.
def stage_digest(script: str) -> str:
    """`stage_code(script)`, from the user's cache when this exact code was digested before."""
    cache = _code_cache()
    if script not in cache:
        cache[script] = stage_code(script)
        _keep_cache(cache)
    return cache[script]


KEPT_CODE_STATES = 20  # cache files kept: one per state of the code (a few kB each)


def _cache_file_of_this_code() -> Path:
    """The cache file of this exact code: named by a hash of every file under
    workflow/scripts (names and bytes) and the Python version (its ast may differ)."""
    h = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for path in sorted(SCRIPTS.rglob("*.py")):
        h.update(f"{path.relative_to(SCRIPTS)}\0".encode() + path.read_bytes())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pqgrid" / "stage-code"
    return root / f"{h.hexdigest()[:24]}.json"


def _read_code_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


_cache_file = functools.cache(_cache_file_of_this_code)
_code_cache = functools.cache(_read_code_cache)


def _keep_cache(cache: dict) -> None:
    """Write the cache atomically (concurrent Snakemake starts each write whole files);
    drop the oldest code states beyond KEPT_CODE_STATES."""
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
            json.dump(cache, f)
        os.replace(f.name, path)
        for old in sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-KEPT_CODE_STATES]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
