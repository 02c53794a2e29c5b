"""The train stage's typed config (conf/train + conf/trainer), shared by the stage and the fit worker.

The fit worker gets it as JSON and rebuilds it through ``hala_exp.core.schema.build``, so both processes
read the same validated, frozen object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hala_exp.core.schema import NOT_FINGERPRINTED, ConfigError, in_range


@dataclass(frozen=True)
class TrainerRuntime:
    progress_bar: bool | Literal["auto"] = "auto"


@dataclass(frozen=True)
class FSDPConfig:
    sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD"] = "FULL_SHARD"
    activation_checkpointing: bool = True
    cpu_offload: bool = False


@dataclass(frozen=True)
class TrainerConfig:
    """Hardware and parallelism (conf/trainer): reaches both train steps as ``train.trainer``."""

    accelerator: Literal["cpu", "gpu", "cuda", "auto"] = "cpu"
    devices: int = 1  # per node
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    precision: Literal["32", "32-true", "bf16-mixed", "bf16-true", "16-mixed"] = "32"
    fsdp: FSDPConfig | None = None
    runtime: TrainerRuntime = field(default_factory=TrainerRuntime, metadata=NOT_FINGERPRINTED)

    def check(self) -> None:
        if self.devices < 1 or self.num_nodes < 1:
            raise ConfigError("devices: devices and num_nodes must be >= 1")
        if self.strategy == "fsdp" and self.accelerator == "cpu":
            raise ConfigError("strategy: fsdp needs GPUs (accelerator: gpu); use ddp on CPU")

    def multi_process(self) -> bool:
        return self.devices * self.num_nodes > 1 or self.strategy in ("ddp", "fsdp")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Runtime:
    """Settings that change speed or bookkeeping, never the trained weights (not fingerprinted)."""

    num_workers: int = 0
    pad_to_multiple_of: int = 1
    # a micro-batch is fed as two pieces (its longest rows apart) when that cuts its padded tokens by at least
    # this fraction (``batches.collate``); 1.0 never splits. 0.2 is our choice: a second forward has a fixed
    # cost, so only a large saving pays.
    split_saving: float = 0.2
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 200
    keep_checkpoints: bool = False  # keep checkpoints/ after a successful export (they are large)
    tokenized_cache_dir: str | None = None  # default: the store's scratch directory "tokenized"
    tokenize_num_proc: int = 1  # processes for Dataset.map; the tokenized examples are the same for any value
    resume: str = "auto"  # auto | true | false | <path to a .ckpt>: how to start, not what is trained


@dataclass(frozen=True)
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
        in_range("runtime.split_saving", self.runtime.split_saving, 0.0, 1.0)
        if self.trainer.precision == "bf16-true" and self.load_dtype == "float16":
            raise ConfigError("load_dtype: float16 weights with precision bf16-true; use bfloat16 or float32")
