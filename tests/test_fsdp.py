"""`trainer=fsdp`, exercised on CPU as far as it goes.

Lightning 2.6 refuses its FSDP strategy on CPU, so the test follows the real path up to the strategy and wrapping
policy it builds (composed config -> typed train config -> ``build_strategy``), then shards the tiny LFM2 with
that policy using torch's FSDP2 ``fully_shard`` on two gloo processes: each rank holds half of every sharded
parameter, and one optimizer step on identical batches equals the same step taken unsharded.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]


def fsdp_trainer_config(tmp_path) -> dict:
    from hydra import compose, initialize_config_dir

    from hala_exp.core.pipeline import Pipeline

    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        cfg = compose("config", overrides=["trainer=fsdp", f"paths.output_dir={tmp_path}"])
    train = Pipeline.from_config(cfg, group="t").steps["train"].config
    return train.trainer  # the typed TrainerConfig the train stage hands to build_strategy


def test_fsdp_trainer_builds_a_per_layer_wrap_and_checkpoint_policy(tmp_path, tiny_lfm2_dir):
    from pytorch_lightning.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    from transformers import AutoModelForCausalLM

    from hala_exp.training.fit import build_strategy, shard_units

    tr = fsdp_trainer_config(tmp_path)
    assert tr.strategy == "fsdp" and tr.devices == 8 and tr.precision == "bf16-mixed"
    model = AutoModelForCausalLM.from_pretrained(tiny_lfm2_dir)
    strategy = build_strategy(tr, model)
    assert isinstance(strategy, FSDPStrategy)
    units = shard_units(model)
    assert [c.__name__ for c in units] == ["Lfm2DecoderLayer"]
    policy = strategy.kwargs["auto_wrap_policy"]
    assert isinstance(policy, ModuleWrapPolicy) and set(policy._module_classes) == units
    assert strategy.sharding_strategy.name == "FULL_SHARD" and strategy.cpu_offload.offload_params is False
    assert strategy._activation_checkpointing_kwargs  # activation_checkpointing: true in conf/trainer/fsdp.yaml
    n_layers = sum(isinstance(m, tuple(units)) for m in model.modules())
    assert n_layers == model.config.num_hidden_layers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard_and_step(rank: int, world: int, port: int, model_dir: str, result_dir: str) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM

    from hala_exp.training.fit import shard_units

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        units = tuple(shard_units(model))
        full_sizes = {n: p.numel() for n, p in model.named_parameters()}
        for module in model.modules():
            if isinstance(module, units):
                fully_shard(module)
        fully_shard(model)
        local = {n: p.to_local().numel() for n, p in model.named_parameters()}
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ids = torch.arange(2, 18).reshape(2, 8) % model.config.vocab_size
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        full = {n: p.full_tensor().detach().clone() for n, p in model.named_parameters()}
        if rank == 0:
            torch.save({"full": full, "local": local, "sizes": full_sizes, "loss": loss.item()}, result_dir + "/r0.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_fully_shard_with_the_policy_on_two_gloo_processes(tmp_path, tiny_lfm2_dir):
    from transformers import AutoModelForCausalLM

    port = _free_port()
    torch.multiprocessing.spawn(_shard_and_step, args=(2, port, str(tiny_lfm2_dir), str(tmp_path)), nprocs=2, join=True)
    got = torch.load(tmp_path / "r0.pt")
    # Rank 0 holds its dim-0 shard of every parameter: about half of each, never the whole of a big one.
    for name, size in got["sizes"].items():
        assert got["local"][name] <= size, name
    assert sum(got["local"].values()) <= sum(got["sizes"].values()) * 0.55
    # The same step unsharded: identical batches on both ranks, so the averaged gradient is the same.
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_lfm2_dir, dtype=torch.float32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ids = torch.arange(2, 18).reshape(2, 8) % model.config.vocab_size
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    assert abs(loss.item() - got["loss"]) < 1e-5
    for name, p in model.named_parameters():
        torch.testing.assert_close(got["full"][name], p.detach(), rtol=1e-5, atol=1e-6, msg=name)
