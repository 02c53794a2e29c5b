"""The LightningModule: a causal LM trained on the masked next-token loss, AdamW and a warm-up schedule
(transformers' schedule helpers)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from hala_exp.training.batches import DataPosition
from hala_exp.training.config import OptimizerConfig

FUSED_ADAMW = ("cuda", "cpu")  # devices with torch's fused AdamW kernel (fp32, bf16, fp16 parameters)


def target_loss(model, batch) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the batch's trainable targets, and how many there are.

    Only the positions that predict a trained token go through the output head: prompts and padding
    (often half of a chat batch) never produce vocabulary-sized logits, and the float32 upcast covers
    just those rows. Models that post-process their logits (soft-capping, scaling) take the full forward.
    The batch is fed as its ``pieces`` (``batches.collate``: runs of rows, each only as wide as it needs, up to
    the last column that predicts a trained token), whose targets and positions were gathered on the host.
    """
    parts = [_piece_loss(model, batch, piece) for piece in batch["pieces"]]
    return (parts[0] if len(parts) == 1 else torch.stack(parts).sum()), batch["n_target"]


def _piece_loss(model, batch, piece) -> torch.Tensor:
    (start, stop), feed = piece["rows"], piece["feed_width"]
    inputs = {"input_ids": batch["input_ids"][start:stop, :feed]}
    if "attention_mask" not in batch:
        inputs["position_ids"] = batch["position_ids"][start:stop, :feed]  # packed rows: these keep examples apart
    elif not getattr(model.config, "is_causal", True):
        inputs["attention_mask"] = batch["attention_mask"][start:stop, :feed]
    # else right-padded rows (collate) through a causal model: no trained position reads a later one, so the
    # padding mask changes no trained output. Without it SDPA runs its is_causal kernel instead of building and
    # applying a (batch, 1, width, width) mask, and LFM2's convolutions skip zeroing the padding; the default
    # position ids (0, 1, ...) are the rows' own.
    head = model.get_output_embeddings()
    if _plain_head(model, head):
        hidden = model.base_model(**inputs, use_cache=False).last_hidden_state
        logits = head(hidden.flatten(0, 1)[piece["target_index"]])
    else:
        logits = model(**inputs, use_cache=False).logits.flatten(0, 1)[piece["target_index"]]
    return torch.nn.functional.cross_entropy(logits.float(), piece["target_ids"], reduction="sum")


def _plain_head(model, head) -> bool:
    """True when the model's logits are exactly ``head(base_model(...).last_hidden_state)``."""
    config = model.config
    return (
        isinstance(head, torch.nn.Linear)
        and model.base_model is not model
        and getattr(config, "final_logit_softcapping", None) is None
        and getattr(config, "logit_scale", None) is None
        and getattr(config, "logits_scaling", None) is None
    )


class CausalLMModule(pl.LightningModule):
    def __init__(
        self, model, optim: OptimizerConfig, total_steps: int, accumulate: int, world_size: int, position: DataPosition
    ):
        super().__init__()
        # from_pretrained returns a model in eval mode and Lightning keeps the modes it finds: train mode makes
        # dropout (where a model has it) act during SFT. LFM2 has none, so its results do not change.
        self.model = model.train()
        self.optim, self.total_steps = optim, total_steps
        self.loss_scale = accumulate * world_size  # undo Lightning's /accumulate and DDP's mean over ranks
        self.position = position

    def training_step(self, batch, batch_idx):
        loss_sum, n_target = target_loss(self.model, batch)
        self.position.epoch, self.position.done = batch["epoch"], batch["index"] + 1
        if self.trainer.progress_bar_callback is not None:
            # only the bar reads it (metrics go through the Throughput callback): Lightning's per-step
            # logging machinery is skipped when there is no bar
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
        from transformers import get_scheduler

        o = self.optim
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for _name, p in self.model.named_parameters():
            if p.requires_grad:
                # Biases and norm gains are not decayed (common practice; our choice).
                (no_decay if p.ndim < 2 else decay).append(p)
        groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # The fused kernel (one pass over each parameter, no per-op dispatch) is what TRL/transformers use by
        # default too. On CPU the per-parameter loop took ~15 ms of a ~155 ms step of the benchmark's 5.5M LFM2
        # at one thread (fused: ~5 ms), and far more at two threads on a busy machine.
        optimizer = torch.optim.AdamW(
            groups, lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps, fused=self.device.type in FUSED_ADAMW or None
        )
        warmup = o.warmup_steps if o.warmup_steps is not None else int(o.warmup_ratio * self.total_steps)
        # Linear warm-up, then: cosine down to min_lr_ratio; linear down to it (a polynomial of power 1); flat.
        name, extra = {
            "cosine": ("cosine_with_min_lr", {"min_lr_rate": o.min_lr_ratio}),
            "linear": ("polynomial", {"lr_end": o.lr * o.min_lr_ratio, "power": 1.0}),
            "constant": ("constant_with_warmup", {}),
        }[o.schedule]
        scheduler = get_scheduler(
            name,
            optimizer,
            num_warmup_steps=warmup,
            num_training_steps=self.total_steps,
            scheduler_specific_kwargs=extra,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
