"""The learning-rate schedule (transformers' helpers): linear warm-up to the peak, then down to
``min_lr_ratio`` x peak at the last step (cosine or linear), or flat."""

from __future__ import annotations

import pytest


def lrs(schedule: str, total: int = 20, warmup: int = 4, min_ratio: float = 0.1) -> list[float]:
    import torch

    from hala_exp.training.batches import DataPosition
    from hala_exp.training.config import OptimizerConfig
    from hala_exp.training.module import CausalLMModule

    optim = OptimizerConfig(lr=1.0, schedule=schedule, warmup_steps=warmup, min_lr_ratio=min_ratio)
    module = CausalLMModule(torch.nn.Linear(2, 2), optim, total, 1, 1, DataPosition())
    conf = module.configure_optimizers()
    optimizer, scheduler = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    seen.append(optimizer.param_groups[0]["lr"])  # after the last step
    return seen


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_warm_up_then_decay_to_the_floor(schedule):
    seen = lrs(schedule)
    assert seen[:4] == sorted(seen[:4]) and seen[3] < 1.0  # rising during warm-up
    assert max(seen) == pytest.approx(1.0)
    decay = seen[4:]
    assert decay == sorted(decay, reverse=True)  # never rises after warm-up
    assert seen[-1] == pytest.approx(0.1)  # min_lr_ratio x peak at the end


def test_constant_after_warm_up():
    seen = lrs("constant")
    assert seen[0] < 1.0 and all(x == pytest.approx(1.0) for x in seen[4:])
