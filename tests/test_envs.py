"""Conda environments and pip requirements pin the same versions; every rule has `conda:`."""

import re

import yaml
from conftest import ROOT


def _pins(lines):
    out = {}
    for line in lines:
        m = re.match(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_env_pins_match_requirements():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert {e.stem for e in envs} == {"train", "report", "device"}
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        pins = _pins(pip)
        assert pins, env
        for name, version in pins.items():
            assert req.get(name) == version, f"{env.name}: {name}=={version} but requirements.txt has {req.get(name)}"
    top = _pins((ROOT / "requirements.in").read_text().splitlines())
    for name, version in top.items():
        assert req.get(name) == version, f"requirements.in {name}=={version} vs requirements.txt {req.get(name)}"


def test_every_rule_has_a_conda_env():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        blocks = re.split(r"\n(?=rule \w+:)", smk.read_text())
        for block in blocks:
            m = re.match(r"rule (\w+):", block)
            if m and m.group(1) != "all":
                assert "\n    conda:\n" in block, f"{smk.name}: rule {m.group(1)} has no conda:"
