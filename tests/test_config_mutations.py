"""Generated invalid configs: seeded mutations of config.yaml at every nesting level (type
swaps, wrong enum values, out-of-range numbers, unknown keys), including per-architecture
blocks, builder arguments, devices and per-figure settings. Each must be refused by the one
validation path with one line that names the dotted key; none accepted, no traceback.
What makes a mutation invalid is read from the schema itself (and from the builder and
figure-setting schemas), so the ground truth is not hand-written per key."""

import copy
import random

import pytest
import yaml
from conftest import ROOT, snakemake
from pqgrid.core import report_entries
from pqgrid.core.catalog import ARCH_RESERVED, BUILDERS
from pqgrid.core.config import check_config
from pqgrid.core.schema import ConfigError, load_schema

SCHEMA = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
N_MUTATIONS = 1200
BAD_VALUES = ["abc", "", "true", "1e-3", "none", 3.5, 7, -2, True, False, [1, "x"], {"k": 1}, None]
JSON_TYPES = {"string": str, "number": (int, float), "integer": int, "boolean": bool, "array": list,
              "object": dict, "null": type(None)}  # fmt: skip


def full_config() -> dict:
    """config.yaml with every optional nesting level filled in."""
    c = copy.deepcopy(yaml.safe_load((ROOT / "config.yaml").read_text()))
    c["dataset"].update(source="synthetic", train_per_class=10, test_per_class=5)
    c["architectures"]["mobilenet"].update(alpha=0.5, dropout=0.001, training={"learning_rate": 1e-3, "epochs": 3},
                                           pruning={"learning_rate": 1e-4, "depthwise": True, "exclude": "conv_pw_1"})  # fmt: skip
    c["architectures"]["mobilenet_v3_small"].update(minimalistic=False, alpha=0.75)
    c["pruning"]["schedules"][90]["recovery_epochs"] = 1
    c["devices"]["pi4"] = {"type": "ssh", "host": "pi4.local", "port": 22, "threads": 4, "trust_new_host": False,
                           "timeout": 60, "retries": 1, "num_runs": 50}  # fmt: skip
    c["report"]["figures"]["per_figure"]["per_class_pruning_mobilenet"] = {"alpha": 0.05, "size": [8, 5]}
    return c


def _resolve(schema):
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        merged = dict(SCHEMA["$defs"][ref.split("/")[-1]])
        merged.update({k: v for k, v in schema.items() if k not in ("$ref", "properties")})
        # keywords beside a $ref apply too: its `properties` (defaults) add to the definition's
        props = dict(merged.get("properties", {}))
        for key, extra in schema.get("properties", {}).items():
            props[key] = {**props.get(key, {}), **extra, "properties": {**props.get(key, {}).get("properties", {})}}
        merged["properties"] = props
        return merged
    return schema


def subschema(config, path):
    """The schema that governs the value at `path` (builder kwargs and per-figure settings
    from their own registries)."""
    schema, node = SCHEMA, config
    for i, key in enumerate(path):
        schema = _resolve(schema)
        if path[:1] == ("architectures",) and i == 2 and key not in ARCH_RESERVED:
            schema = BUILDERS[node["builder"]]["kwargs"][key]
        elif path[:3] == ("report", "figures", "per_figure") and i == 3:
            schema = report_entries.figure_settings_schema(key)
        elif isinstance(node, list):
            schema = schema.get("items", {})
        elif key in schema.get("properties", {}):
            schema = schema["properties"][key]
        else:
            schema = schema.get("additionalProperties", {})
        node = node[key]
    return _resolve(schema)


def closed(schema, path) -> bool:
    """Does an unknown key at `path` count as a mistake?"""
    return (
        schema.get("additionalProperties") is False
        or schema.get("unevaluatedProperties") is False
        or schema.get("type") == "object"  # maps: a new entry `bogus_key: 1` is no object
        or path[:1] == ("architectures",)
        and len(path) == 2
    )


def _type_ok(value, schema) -> bool:
    types = schema.get("type")
    if types is None:
        return True
    types = types if isinstance(types, list) else [types]
    for t in types:
        if t in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, JSON_TYPES[t]) and not (t == "integer" and isinstance(value, float)):
            return True
    return False


def mutations(config, rng):
    """(path, description, mutated config) forever, seeded."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(config, ())
    while True:
        path = rng.choice(paths[1:])
        schema, value = subschema(config, path), _get(config, path)
        options = []
        if "enum" in schema:
            bad_types = [v for v in BAD_VALUES if not any(v == e and type(v) is type(e) for e in schema["enum"])]
            options.append(("enum", "not_an_option"))
        else:
            bad_types = [v for v in BAD_VALUES if not _type_ok(v, schema)]
        if bad_types and (schema.get("type") or "enum" in schema):
            options += [("type", v) for v in bad_types]
        for bound, delta in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1), ("exclusiveMaximum", 0)):
            if bound in schema:
                options.append(("range", schema[bound] + delta))
        if isinstance(value, dict) and closed(schema, path):
            options.append(("unknown key", None))
        if not options:
            continue
        kind = rng.choice(sorted({k for k, _ in options}))  # each kind of mistake equally often
        bad = rng.choice([b for k, b in options if k == kind])
        mutated = copy.deepcopy(config)
        if kind == "unknown key":
            _get(mutated, path)["bogus_key"] = 1
            yield (*path, "bogus_key"), kind, mutated
        else:
            parent = _get(mutated, path[:-1])
            parent[path[-1]] = bad
            yield path, f"{kind}: {bad!r}", mutated


def _get(node, path):
    for key in path:
        node = node[key]
    return node


def dotted(path) -> str:
    return ".".join(str(p) for p in path if not isinstance(p, int) or isinstance(p, bool))


def test_full_config_is_valid():
    check_config(full_config(), SCHEMA)


def test_generated_invalid_configs_are_refused_with_one_line():
    rng = random.Random(20261124)
    accepted, tracebacks, unnamed, seen = [], [], [], 0
    base = full_config()
    for path, kind, mutated in mutations(base, rng):
        if seen == N_MUTATIONS:
            break
        seen += 1
        try:
            check_config(mutated, SCHEMA)
        except ConfigError as e:
            msg = str(e)
            # the mutated key, or (for a list entry or a schedule key) its list/map
            if "\n" in msg or not any(dotted(path[:n]) in msg for n in (len(path), len(path) - 1) if n):
                unnamed.append((dotted(path), kind, msg))
        except Exception as e:  # noqa: BLE001 - the point: no other exception may escape
            tracebacks.append((dotted(path), kind, repr(e)))
        else:
            accepted.append((dotted(path), kind))
    print(f"{seen} mutations: {seen - len(accepted) - len(tracebacks)} refused, "
          f"{len(accepted)} accepted, {len(tracebacks)} other exceptions")  # fmt: skip
    assert seen == N_MUTATIONS
    assert not accepted, accepted[:10]
    assert not tracebacks, tracebacks[:10]
    assert not unnamed, unnamed[:10]


@pytest.mark.parametrize("n", range(4))
def test_generated_invalid_configs_through_real_snakemake(workflow_dir, n):
    rng = random.Random(n)
    gen = mutations(full_config(), rng)
    for _ in range(37 * (n + 1)):
        path, kind, mutated = next(gen)
    while path[:2] == ("dataset", "source"):
        path, kind, mutated = next(gen)
    (workflow_dir / "bad.yaml").write_text(yaml.safe_dump(mutated, sort_keys=False))
    proc = snakemake(workflow_dir, "-n", "all", "--configfile", "bad.yaml", check=False)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("pqgrid config error:")]
    assert proc.returncode != 0 and len(lines) == 1, (dotted(path), kind, proc.stderr[-1500:])
    assert "Traceback" not in proc.stdout + proc.stderr
