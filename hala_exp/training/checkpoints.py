"""Checkpoints across attempts: which one a rerun resumes from, how many are kept, and SIGTERM.

A run may be killed (SIGKILL) or preempted (SIGTERM) any number of times; each rerun resumes from the
newest checkpoint in the stage directory and replays exactly the batches not yet trained on (the data
position is saved with the loader state, see ``batches.make_loader``).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


def checkpoint_step(path: Path) -> int:
    digits = "".join(c for c in path.stem if c.isdigit())
    return int(digits) if digits else -1


def resume_checkpoint(resume: str, ckpt_dir: Path) -> str | None:
    """The checkpoint to resume from: ``auto`` the newest in the stage directory if any, ``true`` the same
    but required, ``false`` none (old checkpoints are removed), else the given path."""
    found = sorted(ckpt_dir.glob("*.ckpt"), key=checkpoint_step) if ckpt_dir.is_dir() else []
    if resume == "false":
        for p in found:
            p.unlink()
        return None
    if resume in ("auto", "true"):
        if not found and resume == "true":
            raise FileNotFoundError(f"train.runtime.resume=true but {ckpt_dir} holds no checkpoint")
        return str(found[-1]) if found else None
    if not Path(resume).is_file():
        raise FileNotFoundError(f"train.runtime.resume: checkpoint {resume} not found")
    return resume


def prune_checkpoints(dirpath: str | Path, keep: int) -> None:
    """Keep the ``keep`` newest ``*.ckpt`` files (by the step in their name) in ``dirpath``."""
    found = sorted(Path(dirpath).glob("*.ckpt"), key=checkpoint_step)
    for old in found[: max(0, len(found) - keep)]:
        old.unlink(missing_ok=True)


class CheckpointRetention(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``save_top_k`` also covers files earlier attempts left in ``dirpath``.

    Lightning's bookkeeping of the best k knows only the checkpoints it wrote since the one it resumed
    from; a run killed, resumed and killed again (or stopped by SIGTERM) leaves others behind. Checkpoints
    here are ranked by step, so the newest ``save_top_k`` are kept.
    """

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        # Right after each save, not at every batch end: the directory changes only here, and a listing per
        # batch was file-system work on every step for nothing.
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero and self.dirpath and self.save_top_k > 0:
            prune_checkpoints(self.dirpath, self.save_top_k)


class GracefulSigterm(pl.Callback):
    """On SIGTERM, finish the running optimizer step (the accumulation window), checkpoint it and stop.

    Lightning's own SIGTERM handling stops after the current micro-batch, which may sit inside an
    accumulation window whose gradients a checkpoint cannot hold; so this callback replaces Lightning's
    handler for the duration of the fit (Lightning restores the original one at teardown) and all ranks
    agree, at each optimizer step, whether any of them was signalled.
    """

    def __init__(self, dirpath: str | Path, filename: str):
        self.dirpath, self.filename = Path(dirpath), filename
        self.requested = False
        self.saved: Path | None = None

    def on_train_start(self, trainer, pl_module):
        self._step = trainer.global_step
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        self.requested = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self._step:  # inside an accumulation window
            return
        self._step = trainer.global_step
        stop = self.requested
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop and trainer.global_step < trainer.max_steps:
            path = self.dirpath / f"{self.filename.format(step=trainer.global_step)}.ckpt"
            trainer.save_checkpoint(path)
            if trainer.is_global_zero:
                prune_checkpoints(self.dirpath, 1)
            self.saved = path
            trainer.should_stop = True
