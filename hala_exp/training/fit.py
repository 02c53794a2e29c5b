"""One fine-tuning run: load the model, plan the data, fit with Lightning, export a Hugging Face directory.

``fit(request, log_fn)`` runs in the stage's process for one device, or in ``hala_exp.training.worker``
(a subprocess that Lightning's DDP/FSDP launcher may re-execute once per device) for several. The
request (``FitRequest``) carries the typed train config; the worker receives it as JSON and rebuilds it
through ``hala_exp.core.schema.build``.

Faults: checkpoints are written every ``checkpoint_every_n_steps`` optimizer steps, only the newest is
kept, and a resumed run replays exactly the batches it had not trained on. SIGTERM (what SLURM sends
before a kill) is answered at the next optimizer step: that step is checkpointed and ``Preempted`` raised.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hala_exp.core.schema import build
from hala_exp.training.config import Config, TrainerConfig

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "step{step:06d}"


class Preempted(RuntimeError):
    """The fit stopped on SIGTERM after checkpointing its last optimizer step: rerun to resume."""


@dataclass(frozen=True)
class FitRequest:
    config: Config
    model_dir: str  # the base model (Hugging Face directory)
    examples_dir: str  # tokenized examples (a cache entry of ``training.examples``)
    template: str  # the chat template the data was rendered with (saved with the model)
    checkpoint_dir: str
    export_dir: str
    resume_from: str | None = None  # a .ckpt path
    data_counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> FitRequest:
        return build(FitRequest, data, "fit request")


def fit(
    request: FitRequest,
    log_fn: Callable[[dict, int | None], None],
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Train and export; returns the run's metrics on rank 0 (an empty dict on other ranks).

    ``callbacks``: extra Lightning callbacks, appended after ours (tests use them to inject faults).
    """
    import pytorch_lightning as pl

    from hala_exp.core.model_dirs import load_tokenizer
    from hala_exp.training.batches import BatchPlan, DataPosition, make_loader
    from hala_exp.training.callbacks import Throughput
    from hala_exp.training.checkpoints import CheckpointRetention, GracefulSigterm
    from hala_exp.training.examples import load_examples
    from hala_exp.training.module import CausalLMModule
    from hala_exp.training.packing import packing_refusal

    cfg, tr, runtime = request.config, request.config.trainer, request.config.runtime
    examples = load_examples(request.examples_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    tokenizer = load_tokenizer(request.model_dir)
    model = _load_model(request.model_dir, cfg)
    if cfg.packing:
        refusal = packing_refusal(model)
        if refusal:
            raise ValueError(refusal)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False

    world = tr.devices * tr.num_nodes
    plan = BatchPlan(
        examples.lengths(),
        examples.trainable_counts(),
        cfg.micro_batch_size,
        packing=cfg.packing,
        max_length=cfg.max_length,
        batching=cfg.batching,
        seed=cfg.seed,
        world_size=world,
        accumulate=cfg.grad_accumulation,
    )
    total_steps = cfg.max_steps or cfg.epochs * plan.steps_per_epoch()
    position = DataPosition()
    module = CausalLMModule(model, cfg.optimizer, total_steps, cfg.grad_accumulation, world, position)
    n_params = sum(p.numel() for p in model.parameters())

    class DataModule(pl.LightningDataModule):
        def train_dataloader(self):
            assert self.trainer is not None  # Lightning attaches the trainer before asking for loaders
            return make_loader(
                examples,
                plan,
                self.trainer.global_rank,
                tokenizer.pad_token_id,
                position,
                runtime.num_workers,
                runtime.pad_to_multiple_of,
                runtime.split_saving,
            )

    throughput = Throughput(log_fn, runtime.log_every_n_steps, n_params)
    ckpt_dir = Path(request.checkpoint_dir)
    checkpoint = CheckpointRetention(
        dirpath=ckpt_dir,
        filename=CHECKPOINT_NAME,
        auto_insert_metric_name=False,
        every_n_train_steps=runtime.checkpoint_every_n_steps,
        save_top_k=1,
        monitor="step",
        mode="max",
        save_last=False,
    )
    sigterm = GracefulSigterm(ckpt_dir, CHECKPOINT_NAME)
    progress = tr.runtime.progress_bar
    trainer = pl.Trainer(
        accelerator=tr.accelerator,
        devices=tr.devices,
        num_nodes=tr.num_nodes,
        strategy=build_strategy(tr, model),
        precision=tr.precision,
        max_steps=total_steps,
        accumulate_grad_batches=cfg.grad_accumulation,
        gradient_clip_val=cfg.max_grad_norm or None,
        gradient_clip_algorithm="norm",
        logger=False,
        default_root_dir=str(ckpt_dir),
        callbacks=[throughput, checkpoint, sigterm, *callbacks],
        enable_progress_bar=sys.stderr.isatty() if progress == "auto" else bool(progress),
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=runtime.log_every_n_steps,
    )
    trainer.fit(module, datamodule=DataModule(), ckpt_path=request.resume_from)
    if sigterm.saved is not None:
        raise Preempted(f"SIGTERM: stopped after optimizer step {trainer.global_step}, checkpoint {sigterm.saved}")

    state = trainer.strategy.lightning_module_state_dict()  # full weights (gathered under FSDP)
    result: dict[str, Any] = {}
    if trainer.is_global_zero:
        _export(model, {k.removeprefix("model."): v for k, v in state.items()}, tokenizer, request)
        totals = throughput.summary(throughput.total)
        result = {
            "steps": trainer.global_step,
            "examples": len(examples),
            "parameters": n_params,
            "world_size": world,
            "epochs_planned": total_steps / plan.steps_per_epoch(),
            **totals,
        }
        if throughput.last_loss is not None:
            result["loss"] = throughput.last_loss  # the last logging window's mean
            result["loss_all_steps"] = totals.get("loss")
    trainer.strategy.barrier()
    return result


def _load_model(model_dir: str, cfg: Config):
    import torch
    from transformers import AutoModelForCausalLM

    dtype = cfg.load_dtype
    return AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype="auto" if dtype == "auto" else getattr(torch, dtype),
        use_safetensors=True,
        attn_implementation=cfg.attn_implementation,
    )


def shard_units(model) -> set[type]:
    """The module classes FSDP wraps (and checkpoints) one by one: those the model marks as not to be split
    (its decoder layers)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return {type(m) for m in model.modules() if type(m).__name__ in names}


def build_strategy(tr: TrainerConfig, model):
    """The Lightning strategy for ``trainer`` (a name, or an ``FSDPStrategy`` wrapping the decoder layers)."""
    if tr.strategy != "fsdp":
        return tr.strategy
    from pytorch_lightning.strategies import FSDPStrategy

    from hala_exp.training.config import FSDPConfig

    f = tr.fsdp or FSDPConfig()
    layers = shard_units(model)
    return FSDPStrategy(
        auto_wrap_policy=layers or None,
        sharding_strategy=f.sharding_strategy,
        activation_checkpointing_policy=layers if f.activation_checkpointing else None,
        cpu_offload=f.cpu_offload,
        state_dict_type="full",
        limit_all_gathers=True,
    )


def _export(model, state: dict, tokenizer, request: FitRequest) -> None:
    """The fine-tuned model as a Hugging Face directory, written beside and renamed into place."""
    import torch

    from hala_exp.core.model_dirs import save_model_dir

    out = Path(request.export_dir)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    save_dtype = request.config.save_dtype
    if save_dtype == "auto":
        base = json.loads((Path(request.model_dir) / "config.json").read_text())
        save_dtype = base.get("dtype") or base.get("torch_dtype") or "float32"
    dtype = getattr(torch, save_dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    model.to(dtype)
    model.config.use_cache = True
    tokenizer.chat_template = request.template
    save_model_dir(model, tokenizer, tmp)
    (tmp / "training_config.json").write_text(
        json.dumps(
            {"base_model": request.model_dir, "train": asdict(request.config), "data_counts": request.data_counts},
            indent=2,
            default=str,
        )
    )
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
