"""Where the files a config names are: the checkout (relative paths in the config start
there), the schema, a data source, a module or builder file found without importing it.
Pure Python: read at parse time."""

from __future__ import annotations

import importlib.util
import os

DATASET_SOURCES = ("keras", "synthetic", "synthetic-photos")  # plus a path (folder, tar, CIFAR python batches)


# The checkout. Relative paths in the config (dataset.source, architectures.*.weights,
# report.thesis_dir) start here, not in the run folder or wherever snakemake was started:
# the same config means the same files from any folder, and params hold the path as written
# (moving a run folder or the checkout reruns nothing).
# this file is <root>/workflow/scripts/pqgrid/core/paths.py
WORKFLOW_DIR = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
)


SCHEMA_PATH = os.path.join(WORKFLOW_DIR, "workflow", "schemas", "config.schema.yaml")


def workflow_path(path: str) -> str:
    """A path from the config as a job opens it: relative paths start at the workflow's
    folder (the checkout), absolute and ~ paths as given."""
    return os.path.join(WORKFLOW_DIR, os.path.expanduser(path))


def source_path(source: str) -> str:
    """dataset.source as the data stage opens it: a named source as is, else a path."""
    return source if source in DATASET_SOURCES else workflow_path(source)


def user_builder_file(builder: str) -> str | None:
    """The file a `module:function` builder lives in (module_file)."""
    return module_file(builder.rsplit(":", 1)[0])


def module_file(module: str) -> str | None:
    """The file of a module the config names, found without importing it: a path (relative
    to the workflow's folder), a module under the workflow's folder, or an installed module;
    None when there is none."""
    if module.endswith(".py"):
        path = workflow_path(module)
        return path if os.path.isfile(path) else None
    for candidate in (module.replace(".", os.sep) + ".py", os.path.join(module.replace(".", os.sep), "__init__.py")):
        if os.path.isfile(os.path.join(WORKFLOW_DIR, candidate)):
            return os.path.join(WORKFLOW_DIR, candidate)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin and os.path.isfile(spec.origin) else None
