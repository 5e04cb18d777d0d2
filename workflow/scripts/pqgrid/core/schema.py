"""The config's JSON schema: loading it, its defaults filled in (what Snakemake's validate
does, for code that runs without the workflow), and a schema error as one line naming the
dotted key and the fix. Pure Python: read at parse time."""

from __future__ import annotations

import copy
import re

from pqgrid.core.paths import SCHEMA_PATH


class ConfigError(ValueError):
    """A configuration mistake, reported as one line naming the key and the fix."""


def load_schema(path=None) -> dict:
    """The config's JSON schema (default: the workflow's own)."""
    import yaml

    with open(path or SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def with_defaults(instance: dict, schema: dict) -> dict:
    """A copy of `instance` with the schema's defaults filled in, nested ones too - what
    Snakemake's validate does to the config (the recipe of jsonschema's FAQ), for code that
    gets a setting without the workflow (tests, a direct call). Defaults live only in the
    schema."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def fill(validator, properties, inst, sch):
        if isinstance(inst, dict):
            for key, sub in properties.items():
                if "default" in sub:
                    inst.setdefault(key, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, inst, sch)

    filled = copy.deepcopy(instance)
    for _ in validators.extend(Draft202012Validator, {"properties": fill})(schema).iter_errors(filled):
        pass
    return filled


def device_with_defaults(device: dict) -> dict:
    """One device's settings with the schema's defaults (devices.<name>)."""
    return with_defaults(device, load_schema()["properties"]["devices"]["additionalProperties"])


def validate(instance, schema: dict, prefix: str, fix: str = "") -> None:
    """JSON-schema validation whose first error becomes one line naming the dotted key."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(instance))
    if error is not None:
        raise ConfigError(_one_line(error, schema, prefix, fix))


def _one_line(e, root: dict, prefix: str, fix: str) -> str:
    path = ".".join(p for p in [prefix, *map(str, e.absolute_path)] if p)
    v, value = e.validator, _short(e.instance)
    if v in ("additionalProperties", "unevaluatedProperties"):
        key = re.findall(r"'([^']*)'", e.message)
        allowed = sorted(_properties(e.schema, root))
        where = f"{path}.{key[0]}" if path and key else (key[0] if key else path)
        return f"{where}: unknown key ({fix or 'allowed: ' + (', '.join(allowed) or 'none')})"
    if v == "type":
        want = e.validator_value if isinstance(e.validator_value, list) else [e.validator_value]
        return f"{path}: {value} is not {' or '.join(want)} (give {' or '.join(want)}{'; ' + fix if fix else ''})"
    if v == "enum":
        return f"{path}: {value} is not allowed (choose one of {', '.join(map(str, e.validator_value))})"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        return f"{path}: {value} is out of range (must be {sign} {e.validator_value})"
    if v == "uniqueItems":
        return f"{path}: {value} lists an entry twice (give each once)"
    if v == "required":
        missing = re.findall(r"'([^']*)'", e.message)
        return f"{path + '.' if path else ''}{missing[0] if missing else '?'}: missing (add it; config.yaml shows it)"
    if v in ("minItems", "minProperties"):
        return f"{path}: {value} is empty or too short (give at least {e.validator_value})"
    if v == "maxItems":
        return f"{path}: {value} is too long (give at most {e.validator_value})"
    return f"{path}: {e.message[:160]}"


def _properties(schema: dict, root: dict) -> set:
    """Keys a (sub)schema allows, following a local $ref."""
    keys = set(schema.get("properties", {}))
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        keys |= set(root.get("$defs", {}).get(ref.split("/")[-1], {}).get("properties", {}))
    return keys


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
