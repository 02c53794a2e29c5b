"""train stage: supervised fine-tuning of a causal LM on chat data (messages schema) with Lightning.

Runs twice in the Hala recipe ([S] reviews): LFM2-1.2B becomes the translator on the bilingual
corpus, then the base models are tuned on the translated SFT mix. Inputs: ``model`` (a Hugging Face
directory) and ``data`` (JSONL, messages schema). Output ``model``: a Hugging Face directory with tokenizer,
the chat template trained with and ``training_config.json``.

Features: loss masks by name (``assistant_turns``: every assistant turn with its end-of-turn token;
``last_assistant_turn``; ``all_tokens``), truncate-or-drop of long examples, length-grouped batching or
packing (refused for architectures where it leaks across examples, e.g. LFM2's convolutions), AdamW with
linear warm-up then cosine/linear/constant, gradient accumulation and clipping, precision 32 / bf16-mixed /
bf16-true, gradient checkpointing, resume from the stage directory's last checkpoint, throughput metrics.
Rejected: packing for conv/recurrent layers; ``resume=true`` with no checkpoint.
Several devices (``trainer=ddp|fsdp``) run in a subprocess worker (Lightning's launchers re-execute the
current command). ``runtime`` keys (here and under ``trainer``) do not enter the cache fingerprint.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from hala_exp.core.schema import NOT_FINGERPRINTED, ConfigError, in_range
from hala_exp.core.stage import StageContext, StageResult

log = logging.getLogger(__name__)
VERSIONS = ("torch", "transformers", "tokenizers", "pytorch-lightning")
FORMAT_VERSION = 1  # bump when this stage's code changes the bytes it writes (part of the fingerprint)
PRECISIONS = ("32", "32-true", "bf16-mixed", "bf16-true", "16-mixed")


@dataclass
class TrainerRuntime:
    progress_bar: bool | Literal["auto"] = "auto"


@dataclass
class FSDPConfig:
    sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD"] = "FULL_SHARD"
    activation_checkpointing: bool = True
    cpu_offload: bool = False


@dataclass
class TrainerConfig:
    """Hardware and parallelism (conf/trainer): reaches both train steps as ``train.trainer``."""

    accelerator: Literal["cpu", "gpu", "cuda", "auto"] = "cpu"
    devices: int = 1  # per node
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    precision: str = "32"
    fsdp: FSDPConfig | None = None
    runtime: TrainerRuntime = field(default_factory=TrainerRuntime, metadata=NOT_FINGERPRINTED)

    def check(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not allowed; allowed values: {list(PRECISIONS)}")
        if self.devices < 1 or self.num_nodes < 1:
            raise ConfigError("devices: devices and num_nodes must be >= 1")
        if self.strategy == "fsdp" and self.accelerator == "cpu":
            raise ConfigError("strategy: fsdp needs GPUs (accelerator: gpu); use ddp on CPU")

    def multi_process(self) -> bool:
        return self.devices * self.num_nodes > 1 or self.strategy in ("ddp", "fsdp")


@dataclass
class OptimizerConfig:
    lr: float = 2e-5
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = 0.03
    warmup_steps: int | None = None  # overrides warmup_ratio when set
    min_lr_ratio: float = 0.0

    def check(self) -> None:
        in_range("warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        in_range("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        if self.lr <= 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        if len(self.betas) != 2:
            raise ConfigError(f"betas: expected two numbers, got {self.betas}")


@dataclass
class Runtime:
    """Settings that change speed or bookkeeping, never the trained weights (not fingerprinted)."""

    num_workers: int = 0
    pad_to_multiple_of: int = 1
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 200
    keep_checkpoints: bool = False  # keep checkpoints/ after a successful export (they are large)
    tokenized_cache_dir: str | None = None  # default: <cache>/tokenized
    resume: str = "auto"  # auto | true | false | <path to a .ckpt>: how to start, not what is trained


@dataclass
class Config:
    trainer: TrainerConfig
    max_length: int = 2048
    micro_batch_size: int = 8  # per device
    grad_accumulation: int = 1
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    max_grad_norm: float | None = 1.0
    seed: int = 0
    masking: Literal["assistant_turns", "last_assistant_turn", "all_tokens"] = "assistant_turns"
    end_of_turn: str | None = None  # the token string ending a turn; default: the tokenizer's EOS
    chat_template: str | None = None  # a named template (chatml) or Jinja; default: the tokenizer's own
    too_long: Literal["truncate", "drop"] = "truncate"
    packing: bool = False
    batching: Literal["length_grouped", "random"] = "length_grouped"
    gradient_checkpointing: bool = False
    load_dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    save_dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"  # auto: the base model's dtype
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    runtime: Runtime = field(default_factory=Runtime, metadata=NOT_FINGERPRINTED)

    def check(self) -> None:
        for key in ("max_length", "micro_batch_size", "grad_accumulation", "epochs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps: must be >= 1 or null, got {self.max_steps}")
        if self.runtime.resume not in ("auto", "true", "false") and not self.runtime.resume.endswith(".ckpt"):
            raise ConfigError(
                f"runtime.resume: {self.runtime.resume!r} is not allowed; allowed values: auto, true, false "
                "or a path to a .ckpt file"
            )
        if self.trainer.precision == "bf16-true" and self.load_dtype == "float16":
            raise ConfigError("load_dtype: float16 weights with precision bf16-true; use bfloat16 or float32")


def run(ctx: StageContext) -> StageResult:
    from hala_exp.core.model_dirs import load_tokenizer
    from hala_exp.training.chat import resolve_template
    from hala_exp.training.examples import _save, prepare_examples

    cfg: Config = ctx.config
    out = ctx.out_dir
    model_dir, data_path = ctx.input("model", "model"), ctx.input("data", "data")
    tokenizer = load_tokenizer(model_dir)
    template = resolve_template(tokenizer, cfg.chat_template)
    cache_dir = (
        Path(cfg.runtime.tokenized_cache_dir) if cfg.runtime.tokenized_cache_dir else out.parent.parent / "tokenized"
    )
    examples = prepare_examples(
        data_path,
        tokenizer,
        template,
        masking=cfg.masking,
        max_length=cfg.max_length,
        too_long=cfg.too_long,
        end_of_turn=cfg.end_of_turn,
        cache_dir=cache_dir,
        quarantine_path=out / "quarantine.jsonl",
    )
    if not len(examples):
        raise ValueError(f"{data_path}: no trainable example left ({examples.counts})")
    log.info("train data: %s", examples.counts)

    ckpt_dir = out / "checkpoints"
    request = {
        "config": asdict(cfg),
        "model_dir": model_dir,
        "examples": examples,
        "template": template,
        "checkpoint_dir": str(ckpt_dir),
        "resume_from": resume_checkpoint(cfg.runtime.resume, ckpt_dir),
        "export_dir": str(out / "model"),
        "data_counts": examples.counts,
    }
    start = time.perf_counter()
    if cfg.trainer.multi_process():
        examples_path = out / "work" / "examples.npz"
        _save(examples_path, examples)
        result = _run_worker({**request, "examples": str(examples_path)}, out / "work", ctx.log_metrics)
    else:
        from hala_exp.training.fit import fit

        result = fit(request, ctx.log_metrics)
    if not cfg.runtime.keep_checkpoints:
        import shutil

        shutil.rmtree(ckpt_dir, ignore_errors=True)
    metrics = {k: v for k, v in result.items() if isinstance(v, (int, float)) and v is not None}
    metrics["wall_s"] = time.perf_counter() - start
    for key, value in examples.counts.items():
        metrics[key if "/" in key or key == "examples" else f"data/{key}"] = value
    return StageResult(
        outputs={"model": "model"},
        metrics=metrics,
        details={"data_counts": examples.counts, "resumed_from": request["resume_from"]},
    )


def resume_checkpoint(resume: str, ckpt_dir: Path) -> str | None:
    """The checkpoint to resume from: ``auto`` the newest in the stage directory if any, ``true`` the same
    but required, ``false`` none (old checkpoints are removed), else the given path."""
    found = sorted(ckpt_dir.glob("*.ckpt"), key=lambda p: (_step_of(p), p.stat().st_mtime)) if ckpt_dir.is_dir() else []
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


def _step_of(path: Path) -> int:
    digits = "".join(c for c in path.stem if c.isdigit())
    return int(digits) if digits else -1


def _run_worker(request: dict, work: Path, log_metrics) -> dict:
    """Run the fit in ``python -m hala_exp.training.worker``; forward its metrics while it runs."""
    work.mkdir(parents=True, exist_ok=True)
    req = work / "request.json"
    metrics_path, result_path = req.with_suffix(".metrics.jsonl"), req.with_suffix(".result.json")
    for p in (metrics_path, result_path):
        p.unlink(missing_ok=True)
    req.write_text(json.dumps(request, default=str))
    log_path = work / "worker.log"
    seen = 0
    with open(log_path, "w") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hala_exp.training.worker", str(req)],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        while True:
            code = proc.poll()
            seen = _forward(metrics_path, seen, log_metrics)
            if code is not None:
                break
            time.sleep(1.0)
    if code != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"training worker failed (exit {code}); log {log_path}:\n{tail}")
    return json.loads(result_path.read_text())


def _forward(path: Path, seen: int, log_metrics) -> int:
    if not path.is_file():
        return seen
    lines = path.read_text().splitlines()
    for line in lines[seen:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line being written: read it next time
            return seen
        log_metrics(entry["metrics"], entry["step"])
        seen += 1
    return seen
