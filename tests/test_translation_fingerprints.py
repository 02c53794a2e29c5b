"""Who owns which translate key: a price, a generation batch size or a gate threshold never moves quantize's
fingerprint; gates and the shard size move only the translate steps (and what reads their output)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hala_exp.core.pipeline import Pipeline

CONF = Path(__file__).resolve().parents[1] / "conf"


def fingerprints(*overrides: str) -> dict[str, str]:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    return {name: step.fingerprint for name, step in Pipeline.from_config(cfg, group="g").steps.items()}


@pytest.fixture(scope="module")
def base():
    return fingerprints()


@pytest.mark.parametrize(
    "override",
    [
        "translate.price_per_device_hour_usd=9.5",
        "translate.runtime.window_shards=2",
        "translate.runtime.lease_stale_s=60",
        "quantize.validation.logits_batch_size=2",
        "quantize.validation.enabled=false",
    ],
)
def test_speed_cost_and_checks_move_no_step(base, override):
    assert fingerprints(override) == base


@pytest.mark.parametrize("override", ["translate.engine.max_new_tokens=99", "translate.engine.dtype=float32"])
def test_engine_settings_move_what_translates_never_quantize(base, override):
    # quantize validation borrows the engine, but validation is a check of the checkpoint, not an input
    moved = {name for name, fp in fingerprints(override).items() if fp != base[name]}
    assert "quantize" not in moved and {"translate_seed", "translate_sft", "eval_translator"} <= moved


@pytest.mark.parametrize("override", ["translate.gates.min_length_ratio=0.2", "translate.shard_size=7"])
def test_translate_data_settings_move_translate_steps_never_quantize(base, override):
    moved = {name for name, fp in fingerprints(override).items() if fp != base[name]}
    assert "quantize" not in moved and "teacher" not in moved
    assert {"translate_seed", "translate_sft"} <= moved
    assert not moved & {"base", "translator_base"}, "no step upstream of translation moves"


def test_quantize_declares_validation_and_engine_runtime_outside_its_fingerprint():
    """The declarations the store reads (``NOT_FINGERPRINTED`` field metadata): validation is a check of the
    checkpoint, not an input to it; engine runtime and the price change speed or estimates only."""
    from dataclasses import fields

    from hala_exp.stages import quantize
    from hala_exp.translation.config import EngineConfig, TranslateConfig

    def unfingerprinted(cls):
        return {f.name for f in fields(cls) if f.metadata.get("fingerprint") is False}

    assert unfingerprinted(quantize.Config) == {"validation"}
    assert unfingerprinted(EngineConfig) == {"runtime"}
    assert unfingerprinted(TranslateConfig) == {"price_per_device_hour_usd", "runtime"}
