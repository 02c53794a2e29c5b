"""Shared builders for the train-stage tests: a tiny model directory and chat data (built once per session)."""

from __future__ import annotations

import json
from pathlib import Path

from hala_exp.core.schema import build


def chat_rows(n: int = 24, multi_turn: bool = True) -> list[dict]:
    """Chats made from the embedded parallel pairs: system + user/assistant turns, some multi-turn."""
    from hala_exp.core.model_dirs import ASSETS
    from hala_exp.data.jsonl import read_jsonl

    pairs = read_jsonl(ASSETS / "parallel_train.jsonl").rows
    rows = []
    for i in range(n):
        a, b = pairs[i % len(pairs)], pairs[(i + 1) % len(pairs)]
        msgs = [
            {"role": "system", "content": "You translate."},
            {"role": "user", "content": f"Translate to Arabic: {a['en']}"},
            {"role": "assistant", "content": a["ar"]},
        ]
        if multi_turn and i % 2:
            msgs += [{"role": "user", "content": f"And: {b['en']}"}, {"role": "assistant", "content": b["ar"]}]
        rows.append({"id": f"ex{i}", "source": "test", "messages": msgs})
    return rows


def write_rows(path: Path, rows: list, extra_lines: list[str] = ()) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return path


def train_config(**overrides) -> dict:
    """The cpu_tiny recipe as a plain dict (trainer=cpu), with overrides (dotted keys allowed)."""
    import yaml

    conf = Path(__file__).resolve().parents[1] / "conf"
    cfg = yaml.safe_load((conf / "train" / "cpu_tiny.yaml").read_text())
    cfg["trainer"] = yaml.safe_load((conf / "trainer" / "cpu.yaml").read_text())
    cfg["seed"] = 0
    cfg["trainer"]["runtime"]["progress_bar"] = False
    for key, value in overrides.items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return cfg


def make_config(**overrides):
    from hala_exp.stages import train

    return build(train.Config, train_config(**overrides), "train")


def run_stage(out_dir: Path, model_dir: Path, data_path: Path, **overrides):
    from hala_exp.core.stage import StageContext
    from hala_exp.stages import train

    out_dir.mkdir(parents=True, exist_ok=True)
    logged = []
    ctx = StageContext(
        name="train",
        kind="train",
        config=make_config(**overrides),
        inputs={"model": {"model": str(model_dir)}, "data": {"data": str(data_path)}},
        out_dir=out_dir,
        log_metrics=lambda m, step=None: logged.append((step, m)),
    )
    return train.run(ctx), logged


class SimulatedCrash(RuntimeError):
    pass


def _callback_base():
    import pytorch_lightning as pl

    return pl.Callback


class StopAfterSteps(_callback_base()):
    """Raises after ``step`` optimizer steps: a crash in the middle of training (for resume tests)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            raise SimulatedCrash(f"simulated crash after step {trainer.global_step}")


class SignalAtBatch(_callback_base()):
    """Sends ``signum`` to this very process after the ``target``-th batch of the run (counted across
    epochs from the data position, so a resumed attempt counts from where it resumed)."""

    def __init__(self, target: int, batches_per_epoch: int, signum: int):
        self.target, self.per_epoch, self.signum, self.sent = target, batches_per_epoch, signum, False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        import os

        if not self.sent and batch["epoch"] * self.per_epoch + batch["index"] + 1 >= self.target:
            self.sent = True
            os.kill(os.getpid(), self.signum)


def run_attempt(spec: dict):
    """One attempt of the train stage in a subprocess (``python tests/train_helpers.py <spec json>``)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, str(Path(__file__)), json.dumps(spec)], capture_output=True, text=True, timeout=600
    )


def _attempt_main(spec: dict) -> int:
    import hala_exp.training.fit as fit_module
    from hala_exp.core.stage import StagePending

    callbacks = []
    if spec.get("signal_at"):
        callbacks.append(SignalAtBatch(spec["signal_at"], spec["batches_per_epoch"], spec["signum"]))
    real_fit = fit_module.fit
    fit_module.fit = lambda request, log_fn: real_fit(request, log_fn, callbacks=callbacks)
    try:
        result, _ = run_stage(Path(spec["out"]), Path(spec["model"]), Path(spec["data"]), **spec["settings"])
    except StagePending as e:
        print(json.dumps({"pending": str(e)}))
        return 3
    print(json.dumps({"resumed_from": result.details["resumed_from"], "steps": result.metrics["steps"]}))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_attempt_main(json.loads(sys.argv[1])))
