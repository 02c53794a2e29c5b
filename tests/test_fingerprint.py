"""What a fingerprint reads: the typed config less its NOT_FINGERPRINTED fields, and the stage's format version.

The contract a user sees (issue 8): a price, a generation/eval batch size or a display name re-runs nothing; a
gate threshold or the translate shard size re-runs the translate steps and what depends on them, never
quantize; ``merge.t`` re-runs merge and eval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from test_fingerprint_impact import compose_experiment

from hala_exp.core import store
from hala_exp.core.pipeline import Pipeline
from hala_exp.core.schema import NOT_FINGERPRINTED
from hala_exp.core.stage import KINDS, load_kind


@dataclass
class Inner:
    rate: float = 0.5
    workers: int = field(default=4, metadata=NOT_FINGERPRINTED)


@dataclass
class Outer:
    name: str = field(default="shown", metadata=NOT_FINGERPRINTED)
    size: int = 8
    inner: Inner = field(default_factory=Inner)
    items: list[Inner] = field(default_factory=lambda: [Inner()])


def fp(config, format_version: int = 1) -> str:
    return store.fingerprint("train", format_version, config, {}, {}, {})


def test_not_fingerprinted_fields_are_left_out_at_any_depth():
    assert store.fingerprinted(Outer()) == {"size": 8, "inner": {"rate": 0.5}, "items": [{"rate": 0.5}]}
    base = fp(Outer())
    assert fp(Outer(name="other", inner=Inner(workers=1), items=[Inner(workers=9)])) == base
    assert fp(Outer(size=9)) != base
    assert fp(Outer(inner=Inner(rate=0.25))) != base
    assert fp(Outer(items=[Inner(rate=0.25)])) != base


def test_format_version_is_part_of_the_fingerprint():
    assert fp(Outer(), format_version=2) != fp(Outer(), format_version=1)


@pytest.mark.parametrize("kind", KINDS)
def test_every_stage_declares_a_format_version(kind):
    assert isinstance(load_kind(kind).FORMAT_VERSION, int)


def fingerprints(tmp_path, *overrides: str) -> dict[str, str]:
    cfg = compose_experiment("embedded", tmp_path, list(overrides))
    return {name: step.fingerprint for name, step in Pipeline.from_config(cfg, group="t").steps.items()}


def moved(tmp_path, *overrides: str) -> set[str]:
    base, changed = fingerprints(tmp_path), fingerprints(tmp_path, *overrides)
    return {name for name in base if base[name] != changed[name]}


def downstream_of(tmp_path, kind: str) -> set[str]:
    """Steps of a kind and every step that reads them, directly or not."""
    steps = Pipeline.from_config(compose_experiment("embedded", tmp_path), group="t").steps
    found = {name for name, step in steps.items() if step.kind == kind}
    while True:
        more = {name for name, step in steps.items() if set(step.inputs.values()) & found} - found
        if not more:
            return found
        found |= more


@pytest.mark.parametrize(
    "override",
    [
        "translate.price_per_device_hour_usd=3.5",  # a cost estimate
        "translate.engine.runtime.generate_batch_size=3",  # generation batch size
        "eval.benchmarks.runtime.batch_size=3",  # eval batch size
        "translate.engine.runtime.worker_timeout_s=60.0",
        "model.name=Renamed",  # display names
        "translator.base.name=Renamed",
        "translator.teacher.name=Renamed",
        "data.sft.sources.0.comment=why",
        "merge.runtime.out_shard_size=1B",
    ],
)
def test_speed_cost_and_presentation_move_no_fingerprint(override, tmp_path):
    assert moved(tmp_path, override) == set()


def test_merge_t_moves_only_merge_and_eval(tmp_path):
    assert moved(tmp_path, "merge.t=0.25") == {"merge", "eval"}


def test_training_batch_size_moves_training_and_what_follows(tmp_path):
    assert moved(tmp_path, "train.micro_batch_size=4") == {"train", "merge", "eval"}


@pytest.mark.parametrize("override", ["translate.gates.min_length_ratio=0.2", "translate.shard_size=128"])
def test_translate_data_settings_move_translate_steps_and_dependents_never_quantize(override, tmp_path):
    changed = moved(tmp_path, override)
    assert "quantize" not in changed
    assert changed == downstream_of(tmp_path, "translate")
