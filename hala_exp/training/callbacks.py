"""Throughput metrics: real tokens/s excluding padding, padding fraction, step time, MFU on GPU."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytorch_lightning as pl
import torch


class Throughput(pl.Callback):
    """Logs every ``every_n_steps`` optimizer steps through ``log_fn`` (rank 0), summed over ranks.

    Why not Lightning's ``ThroughputMonitor``: it counts samples and items per second and hands them to a
    Lightning logger. We need real (non-padding) tokens next to padded ones (the padding fraction that
    length-grouped batching exists to lower) and the loss of each logging window weighted by trainable
    tokens, both summed over ranks, delivered to the stage's ``log_fn`` (which, in a DDP worker, writes a
    file the parent process forwards): a trainer with ``logger=False`` and no Lightning logger. The peak
    FLOPs for MFU come from Lightning's ``get_available_flops``.
    """

    def __init__(self, log_fn: Callable[[dict, int | None], None], every_n_steps: int, n_parameters: int):
        self.log_fn, self.every = log_fn, max(1, every_n_steps)
        self.flops_per_token = 6 * n_parameters  # forward + backward, attention term left out (standard estimate)
        self.interval = self._zero()
        self.total = self._zero()
        self.last_loss: float | None = None
        self.peak_flops = None

    @staticmethod
    def _zero():
        return {"real": 0.0, "padded": 0.0, "loss_sum": 0.0, "n_target": 0.0, "steps": 0.0, "time": 0.0}

    def on_train_start(self, trainer, pl_module):
        if trainer.strategy.root_device.type == "cuda":
            from lightning_fabric.utilities.throughput import get_available_flops

            dtype = torch.bfloat16 if "bf16" in str(trainer.precision) else torch.float32
            per_device = get_available_flops(trainer.strategy.root_device, dtype)
            self.peak_flops = per_device * trainer.world_size if per_device else None
        self._t = time.perf_counter()
        self._step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        i = self.interval
        i["real"] += batch["real_tokens"]
        i["padded"] += batch["padded_tokens"]
        i["loss_sum"] += outputs["loss_sum"]  # a device tensor until the flush reads it: no device sync per batch
        i["n_target"] += outputs["n_target"]
        if trainer.global_step != self._step:  # an optimizer step happened on this batch
            self._step = trainer.global_step
            i["steps"] += 1
            if trainer.global_step % self.every == 0 or trainer.global_step >= trainer.max_steps:
                self._flush(trainer)

    def on_train_end(self, trainer, pl_module):
        if self.interval["steps"]:
            self._flush(trainer)

    def _flush(self, trainer) -> None:
        keys = ["real", "padded", "loss_sum", "n_target"]
        values = [float(self.interval[k]) for k in keys]  # waits for the device: the window ends after its work
        now = time.perf_counter()
        self.interval["time"] = now - self._t
        self._t = now
        device = trainer.strategy.root_device
        summed = trainer.strategy.reduce(torch.tensor(values, dtype=torch.float64, device=device), reduce_op="sum")
        for k, v in zip(keys, summed.tolist()):
            self.interval[k] = v
        for k in self.total:
            self.total[k] += self.interval[k]
        metrics = self.summary(self.interval)
        metrics["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self.last_loss = metrics.get("loss")
        if trainer.is_global_zero:
            self.log_fn(metrics, trainer.global_step)
        self.interval = self._zero()

    def summary(self, s: dict) -> dict:
        out = {}
        if s["time"] > 0:
            out["tokens_per_s"] = s["real"] / s["time"]
            if s["steps"]:
                out["step_time_s"] = s["time"] / s["steps"]
            if self.peak_flops:
                out["mfu"] = self.flops_per_token * out["tokens_per_s"] / self.peak_flops
        if s["padded"]:
            out["padding_fraction"] = 1 - s["real"] / s["padded"]
        if s["n_target"]:
            out["loss"] = s["loss_sum"] / s["n_target"]
        return out
