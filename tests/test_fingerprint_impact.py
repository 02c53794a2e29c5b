"""Which steps' fingerprints each config key moves, for every experiment, against a table reviewed in the diff.

For every leaf key of an experiment's composed config, the leaf is perturbed (a number +1 or halved, a bool
flipped, a string + "x", a list grown, changed or shrunk, null set to a value; a value a Literal refuses is
replaced by another one its error message allows), the pipeline is planned (nothing runs) and the steps whose
fingerprint moved are recorded. ``invalid`` marks a leaf whose every perturbation the plan refuses (a path
that must exist, a list that must keep its length). The table ``fingerprint_impact.json`` is regenerated only
on purpose: ``HALA_REGEN_FINGERPRINT_TABLE=1 pytest tests/test_fingerprint_impact.py``; review its diff.
"""

from __future__ import annotations

import ast
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hala_exp.core import store
from hala_exp.core.pipeline import Pipeline
from hala_exp.core.schema import ConfigError

CONF = Path(__file__).parent.parent / "conf"
TABLE = Path(__file__).parent / "fingerprint_impact.json"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
# Experiments that plan without local data (every other one hashes files under the shared data folder).
OFFLINE = {"embedded"}
# The pipeline's wiring, not values: steps are declared there and the selection is what is planned.
WIRING = ("pipeline.steps", "pipeline.stages")
INVALID = "invalid"
ALLOWED = re.compile(r"allowed values: (\[.*?\])")


def compose_experiment(experiment: str, output_dir: Path, overrides: list[str] = ()):
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose("config", overrides=[f"+experiment={experiment}", f"paths.output_dir={output_dir}", *overrides])
    OmegaConf.set_struct(cfg, False)
    return cfg


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> unresolved value for every leaf: scalars, lists of scalars, empty mappings."""
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(node, list) and any(isinstance(v, (dict, list)) for v in node):
        out = {}
        for i, v in enumerate(node):
            out.update(leaves(v, f"{prefix}.{i}"))
        return out
    return {prefix: node}


def config_leaves(cfg) -> dict[str, Any]:
    """Leaves a user sets: not the wiring, and not a reference to a whole group (``backend: ${translate}``),
    whose leaves are listed under the group itself."""
    everything = leaves(OmegaConf.to_container(cfg, resolve=False))
    return {
        k: v
        for k, v in everything.items()
        if not k.startswith(WIRING) and not (isinstance(v, str) and OmegaConf.is_config(OmegaConf.select(cfg, k)))
    }


def perturbations(value: Any) -> list[Any]:
    """Candidate changes of a resolved leaf, most telling first."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1] if value > 0 else [value + 1]
    if isinstance(value, float):
        return [value / 2 if value else 1.0, value + 1]
    if isinstance(value, str):
        return [value + "x"]
    if value is None:
        return [1, 0.5, "x", True]
    if isinstance(value, list):
        if not value:
            return [["x"], [1]]
        changed = perturbations(value[-1])[0]
        return [value + [changed], value[:-1] + [changed], value[:-1]]
    if isinstance(value, dict):
        return [{"x": 1}]
    raise TypeError(f"no perturbation for {value!r}")


class Planner:
    """Plans one composed config again and again; file digests and library versions are looked up once."""

    def __init__(self, cfg, monkeypatch):
        digest, versions = cache(store.file_digest), cache(store.library_versions)
        monkeypatch.setattr(store, "file_digest", digest)
        monkeypatch.setattr(store, "library_versions", lambda names: versions(tuple(names)))
        self.cfg = cfg

    def fingerprints(self) -> dict[str, str]:
        steps = Pipeline.from_config(self.cfg, group="impact").steps
        return {name: step.fingerprint for name, step in steps.items()}

    def moved(self, key: str, original: Any, base: dict[str, str]) -> list[str] | str:
        resolved = OmegaConf.select(self.cfg, key)
        resolved = OmegaConf.to_container(resolved, resolve=True) if OmegaConf.is_config(resolved) else resolved
        candidates, asked_schema = perturbations(resolved), False
        try:
            while candidates:
                OmegaConf.update(self.cfg, key, candidates.pop(0), merge=False)
                try:
                    changed = self.fingerprints()
                except ConfigError as e:
                    # A Literal refused the change: the schema's message lists what it allows; try another one.
                    allowed = ALLOWED.search(str(e))
                    scalar = not isinstance(resolved, (list, dict))
                    named = str(e).split(":")[0].endswith(key.rsplit(".", 1)[-1])
                    if allowed and scalar and named and not asked_schema:
                        asked_schema = True
                        candidates = [v for v in ast.literal_eval(allowed[1]) if v != resolved][:1] + candidates
                    continue
                return [name for name in base if changed[name] != base[name]]
            return INVALID
        finally:
            OmegaConf.update(self.cfg, key, original, merge=False)


def impact(cfg, monkeypatch) -> dict[str, list[str] | str]:
    planner = Planner(cfg, monkeypatch)
    base = planner.fingerprints()
    table = {key: planner.moved(key, value, base) for key, value in config_leaves(cfg).items()}
    assert planner.fingerprints() == base, "a perturbation was not undone"
    return table


def write_table(table: dict[str, dict]) -> None:
    """One key per line, so that a change shows as a one-line diff."""
    lines = []
    for experiment, keys in sorted(table.items()):
        rows = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in keys.items()]
        lines.append(f" {json.dumps(experiment)}: {{\n" + ",\n".join(rows) + "\n }")
    TABLE.write_text("{\n" + ",\n".join(lines) + "\n}\n")


@pytest.mark.parametrize(
    "experiment", [e if e in OFFLINE else pytest.param(e, marks=pytest.mark.slow) for e in EXPERIMENTS]
)
def test_fingerprint_impact_matches_the_table(experiment, tmp_path, monkeypatch, request):
    if experiment not in OFFLINE:
        monkeypatch.setenv("HALA_SHARED_DATA", str(request.getfixturevalue("shared_data")))
    computed = impact(compose_experiment(experiment, tmp_path), monkeypatch)
    table = json.loads(TABLE.read_text()) if TABLE.exists() else {}
    if os.environ.get("HALA_REGEN_FINGERPRINT_TABLE") == "1":
        table[experiment] = computed
        write_table(table)
        return
    expected = table.get(experiment)
    assert expected is not None, f"{experiment} is not in {TABLE.name}; regenerate it (see the module docstring)"
    differences = [
        f"{key}: table {json.dumps(expected.get(key, 'absent'))}, now {json.dumps(computed.get(key, 'absent'))}"
        for key in sorted(set(expected) | set(computed))
        if expected.get(key) != computed.get(key)
    ]
    assert not differences, (
        f"{experiment}: config keys move other steps than {TABLE.name} says (if intended, regenerate it and "
        "review the diff):\n" + "\n".join(differences)
    )
