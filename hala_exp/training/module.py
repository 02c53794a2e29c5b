"""The LightningModule: a causal LM trained on the masked next-token loss, AdamW and a warm-up schedule."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from hala_exp.training.batches import DataPosition
from hala_exp.training.chat import IGNORE_INDEX


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (linear warm-up, then decay)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * decay


class CausalLMModule(pl.LightningModule):
    def __init__(self, model, optim: dict, total_steps: int, accumulate: int, world_size: int, position: DataPosition):
        super().__init__()
        self.model = model
        self.optim, self.total_steps = optim, total_steps
        self.loss_scale = accumulate * world_size  # undo Lightning's /accumulate and DDP's mean over ranks
        self.position = position

    def training_step(self, batch, batch_idx):
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch.get("attention_mask"),
            position_ids=batch["position_ids"],
            use_cache=False,
        )
        logits = out.logits[:, :-1].float()
        targets = batch["labels"][:, 1:]
        loss_sum = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
        )
        n_target = int((targets != IGNORE_INDEX).sum())
        self.position.epoch, self.position.done = batch["epoch"], batch["index"] + 1
        self.log(
            "loss",
            loss_sum.detach() / max(1, n_target),
            prog_bar=True,
            on_step=True,
            logger=False,
            batch_size=batch["input_ids"].size(0),
        )
        return {
            "loss": loss_sum / batch["window_tokens"] * self.loss_scale,
            "loss_sum": loss_sum.detach(),
            "n_target": n_target,
        }

    def configure_optimizers(self):
        o = self.optim
        decay, no_decay = [], []
        for _name, p in self.model.named_parameters():
            if p.requires_grad:
                # Biases and norm gains are not decayed (common practice; our choice).
                (no_decay if p.ndim < 2 else decay).append(p)
        groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(
            groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, fused=self.device.type == "cuda" or None
        )
        warmup = o.warmup_steps if o.warmup_steps is not None else int(o.warmup_ratio * self.total_steps)
        total, schedule, min_ratio = self.total_steps, o.schedule, o.min_lr_ratio
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, total, warmup, schedule, min_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
