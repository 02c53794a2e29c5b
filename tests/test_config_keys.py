"""Every config key is read: no leaf of any experiment is set and then ignored.

A leaf is consumed when a step view reaches it (directly or through interpolations) and the step's typed
Config accepts that view (``build`` refuses unknown keys), or when planning fails without it (the pipeline's
own keys: stages, steps, objective, paths, the logger's typed config). Nothing else is allowed but Hydra's own
keys.
"""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf
from test_fingerprint_impact import EXPERIMENTS, OFFLINE, compose_experiment, leaves

from hala_exp.core.pipeline import Pipeline
from hala_exp.core.schema import build
from hala_exp.core.stage import load_kind

HYDRA_KEYS = ("hydra",)  # Hydra's own settings, read by Hydra
REFERENCE = re.compile(r"\$\{([^${}:]+)\}")  # ${a.b} (not a resolver such as ${oc.env:...})


def references(value) -> list[str]:
    strings = value if isinstance(value, list) else [value]
    return [ref for s in strings if isinstance(s, str) for ref in REFERENCE.findall(s)]


def reached_by_step_views(cfg) -> set[str]:
    """Leaves under each step's config view, following interpolations; each view must build its Config."""
    all_leaves = leaves(OmegaConf.to_container(cfg, resolve=False))
    todo = []
    for name, step in cfg.pipeline.steps.items():
        view = OmegaConf.to_container(step.config, resolve=True)
        build(load_kind(step.kind).Config, view, f"pipeline.steps.{name}.config")  # every key has a field
        todo.append(f"pipeline.steps.{name}.config")
    reached, seen = set(), set()
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        for leaf, value in all_leaves.items():
            if leaf == key or leaf.startswith(key + "."):
                reached.add(leaf)
                todo.extend(references(value))
    return reached


def needed_by_planning(cfg, key: str) -> bool:
    original = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        original = original[int(part)] if isinstance(original, list) else original[part]
    OmegaConf.update(cfg, key, "???", merge=False)
    try:
        Pipeline.from_config(cfg, group="keys")
        return False
    except Exception:  # a missing value: ConfigError, MissingMandatoryValue, an interpolation to it
        return True
    finally:
        OmegaConf.update(cfg, key, original, merge=False)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_config_key_is_read(experiment, tmp_path, monkeypatch, request):
    if experiment not in OFFLINE:
        monkeypatch.setenv("HALA_SHARED_DATA", str(request.getfixturevalue("shared_data")))
    cfg = compose_experiment(experiment, tmp_path)
    candidates = {k for k in leaves(OmegaConf.to_container(cfg, resolve=False)) if not k.startswith(HYDRA_KEYS)}
    rest = candidates - reached_by_step_views(cfg)
    unread = sorted(k for k in rest if not needed_by_planning(cfg, k))
    assert not unread, f"{experiment}: config keys nothing reads (wire them into a step view or delete them): {unread}"


def test_logger_tags_reach_wandb(monkeypatch):
    import sys
    from types import SimpleNamespace

    from hala_exp.core.tracking import LoggerConfig, StageTracker

    seen = {}
    fake_run = SimpleNamespace(id="r1", finish=lambda exit_code: None)
    fake = SimpleNamespace(init=lambda **kw: seen.update(kw) or fake_run, Settings=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with StageTracker(LoggerConfig(tags=["hala_1.2b"]), "merge", "merge", "g", {}, ["stage:merge"]):
        pass
    assert seen["tags"] == ["hala_1.2b", "stage:merge"]
