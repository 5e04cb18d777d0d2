"""The command line a user typed, read at parse time so a mistake there gets one line naming
it and the fix, like a config mistake: `--config` values typed as YAML, and targets no rule
makes with the nearest ones that exist. Hand-written: Snakemake parses `--config` lists and
mappings as strings and reports an unknown target as a MissingRuleException. Pure Python."""

from __future__ import annotations

import difflib

import yaml


class CommandLineError(ValueError):
    """A mistake on the command line, reported as one line with the fix."""


def command_line(argv: list):
    """Snakemake's own reading of the command line (its argparse parser), or None where the
    words are not a user's command line (a job Snakemake spawned itself)."""
    import contextlib
    import io

    from snakemake.cli import get_argument_parser  # deferred: only the Snakefile calls this

    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return get_argument_parser().parse_known_args(argv)[0]
        except SystemExit:
            return None


CONFIGFILE_FLAGS = ("--configfile", "--configfiles")


def one_configfile_flag(argv: list) -> None:
    """Snakemake keeps only the last of several --configfile flags (argparse's "store"): the
    preset of an earlier flag would be dropped without a word. One line naming the files and
    the command that keeps them all, instead."""
    groups, current = [], None
    for word in argv:
        if word.partition("=")[0] in CONFIGFILE_FLAGS:
            current = [word.partition("=")[2]] if "=" in word else []
            groups.append(current)
        elif current is not None and not word.startswith("-"):
            current.append(word)
        else:
            current = None
    if len(groups) > 1:
        files = [f for g in groups for f in g]
        raise CommandLineError(
            f"--configfile is given {len(groups)} times and Snakemake keeps only the last ({' '.join(groups[-1])}); "
            f"name every file after one flag, later ones laid over earlier: --configfile {' '.join(files)}"
        )


def example(key: str, config: dict | None) -> str:
    """A valid `--config` entry for `key`, from its value in `config` (a mapping: its first
    key only): what a hint shows beside a mistake."""
    value = (config or {}).get(key)
    if isinstance(value, dict) and value:
        first = next(iter(value))
        value = {first: value[first]}
    if value is None:
        return f"{key}={{name: value}}"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return f"{key}={text if len(text) <= 60 else text[:57] + '...'}"


def typed_config(entries: list, config: dict | None = None) -> dict:
    """--config's list and mapping values parsed as YAML (`seeds=[0,1]` gives integers, not
    the strings Snakemake's parser leaves), to lay over the config; `config` (the files'
    merged config) gives the example a hint shows."""
    typed = {}
    for entry in entries or ():
        key, value = entry.split("=", 1)
        if not value.lstrip().startswith(("[", "{")):
            continue  # scalars: Snakemake already types them (int, float, bool)
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise CommandLineError(
                f"--config {entry}: not valid YAML ({str(e).splitlines()[0]}); write it as in a config file, "
                f"e.g. {example(key, config)!r}, or put it in an overlay file (--configfile mine.yaml)"
            ) from None
        if isinstance(parsed, dict) and any(isinstance(k, str) and ":" in k and parsed[k] is None for k in parsed):
            bad = next(k for k in parsed if ":" in str(k))
            fixed = bad.replace(":", ": ", 1)
            raise CommandLineError(
                f"--config {entry}: YAML needs a space after the colon ({{{fixed}}}), or put it in an overlay "
                "file (--configfile mine.yaml)"
            )
        typed[key] = parsed
    return typed


def unknown_targets(wanted: list, makes, candidates, rule_names: set) -> str | None:
    """One line for the first target no rule makes (`makes(path)` is Snakemake's own test),
    with the nearest of `candidates()` (the grid's targets, listed only then); None when every
    target is fine."""
    for target in wanted:
        if target in rule_names or makes(target):
            continue
        near = difflib.get_close_matches(target, candidates(), n=3, cutoff=0.6)
        hint = f"nearest in this grid: {', '.join(near)}" if near else "see docs/targets.md for the targets"
        return (
            f"{target}: no rule makes this file in this grid ({hint}); targets are relative to the run folder, "
            "and architectures, seeds, sparsities and modes are those of the config"
        )
    return None


PLANNED_FOR = "PQGRID_PLANNED_FOR"  # the run folder a dry run's stand-in plans for


def stand_in_folder(run_dir: str) -> str:
    """An empty temporary folder, removed when the process exits, for a dry run whose run
    folder `run_dir` does not exist: the plan is the same (nothing is there), and nothing is
    created where the user looks. The folder planned for is kept in the environment for the
    logger's first line."""
    import atexit
    import os
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="pqgrid-dry-run-")
    atexit.register(shutil.rmtree, folder, True)
    os.environ[PLANNED_FOR] = run_dir
    return folder
