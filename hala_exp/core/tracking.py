"""Experiment tracking: one W&B run per stage, grouped per pipeline run (or sweep), secrets redacted.

W&B is imported only when a run starts. ``mode: offline`` (the default) needs no account or network;
``wandb sync <run dir>/wandb/offline-run-*`` uploads later. ``mode: disabled`` turns it off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

SECRET_WORDS = {"token", "secret", "password", "passwd", "credential", "credentials", "apikey"}
KEY_QUALIFIERS = {"api", "private", "access", "secret", "auth"}
REDACTED = "***redacted***"


def is_secret_key(key: str) -> bool:
    """`hf_token`, `WANDB_API_KEY`, `db_password` are secrets; `max_new_tokens`, `tokenizer` are not."""
    words = [w.lower() for w in re.split(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])", key) if w]
    if SECRET_WORDS.intersection(words):
        return True
    return any(w == "key" and i > 0 and words[i - 1] in KEY_QUALIFIERS for i, w in enumerate(words))


def redact(obj: Any) -> Any:
    """Replace the value of every key that names a token, key or password (at any depth)."""
    if isinstance(obj, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) and not isinstance(v, (dict, list)) else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


@dataclass
class LoggerConfig:
    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "hala_exp"
    entity: str | None = None
    group: str | None = None  # default: the pipeline run's name; a sweep sets one group for all its jobs
    tags: list[str] = field(default_factory=list)
    dir: str | None = None


class StageTracker:
    """Context manager around one stage's W&B run; always finishes the run, marking failures."""

    def __init__(self, cfg: LoggerConfig, name: str, job_type: str, group: str, config: dict, tags: list[str]):
        self.cfg, self.name, self.job_type, self.group = cfg, name, job_type, group
        self.config, self.tags = redact(config), [*cfg.tags, *tags]  # `logger.tags`, then the run's own
        self.run: Any = None

    def __enter__(self) -> StageTracker:
        if self.cfg.mode != "disabled":
            import wandb

            self.run = wandb.init(
                project=self.cfg.project,
                entity=self.cfg.entity,
                group=self.group,
                job_type=self.job_type,
                name=f"{self.group}/{self.name}",
                config=self.config,
                tags=self.tags,
                mode=self.cfg.mode,
                dir=self.cfg.dir,
                reinit="create_new",
                settings=wandb.Settings(silent=True, console="off"),
            )
        return self

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def summarize(self, metrics: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(metrics)

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if exc_type is None else 1)
