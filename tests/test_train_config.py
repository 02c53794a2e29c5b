"""Every train recipe composes with every trainer and validates; the selected trainer reaches both train steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from hala_exp.core.schema import build

CONF = Path(__file__).resolve().parents[1] / "conf"
TRAIN = sorted(p.stem for p in (CONF / "train").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONF / "trainer").glob("*.yaml"))


def test_required_options_exist():
    assert {"cpu_tiny", "translator_1.2b", "lfm2_350m", "lfm2_700m", "lfm2_1.2b", "fanar_9b"} <= set(TRAIN)
    assert {"cpu", "gpu", "ddp", "fsdp"} <= set(TRAINERS)


@pytest.mark.parametrize("trainer", TRAINERS)
def test_recipes_validate_with_each_trainer(trainer):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from hala_exp.stages import train

    for option in TRAIN:
        with initialize_config_dir(config_dir=str(CONF), version_base=None):
            cfg = compose("config", overrides=[f"train={option}", f"trainer={trainer}"])
        for where, node in (("train", cfg.train), ("translator.train", cfg.translator.train)):
            built = build(train.Config, OmegaConf.to_container(node, resolve=True), where)
            assert built.trainer.strategy == OmegaConf.to_container(cfg.trainer)["strategy"]
