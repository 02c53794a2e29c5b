"""Experiment tracking: one W&B run per stage, grouped per pipeline run (or sweep), secrets redacted.

W&B is imported only when a run starts. ``mode: offline`` (the default) needs no account or network;
``wandb sync <run dir>/wandb/offline-run-*`` uploads later. ``mode: disabled`` turns it off.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SECRET_WORDS = {"secret", "password", "passwd", "credential", "credentials", "apikey", "auth", "authorization"}
KEY_QUALIFIERS = {"api", "private", "access", "secret", "auth", "hf", "wandb", "ssh", "signing", "encryption", "client"}
# A "token" that is a vocabulary entry, not a credential: tokenizer and model configs are full of them
# (`bos_token`, `pad_token_id`, `additional_special_tokens`), and redacting them would break the model.
VOCABULARY_TOKEN = {"bos", "eos", "pad", "unk", "sep", "cls", "mask", "start", "end", "image", "video", "audio"}
VOCABULARY_TOKEN |= {"boi", "eoi", "eot", "special", "added", "decoder", "begin", "stop", "think", "tool", "im"}
TOKEN_COUNTS = {"id", "ids", "type", "types", "count", "len", "length", "limit"}
REDACTED = "***redacted***"


def is_secret_key(key: str) -> bool:
    """`hf_token`, `WANDB_API_KEY`, `db_password`, `auth` are secrets; `max_new_tokens`, `tokenizer`,
    `bos_token`, `pad_token_id` are not."""
    words = [w.lower() for w in re.split(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])", key) if w]
    if SECRET_WORDS.intersection(words):
        return True
    for i, w in enumerate(words):
        before, after = (words[i - 1] if i else None), (words[i + 1] if i + 1 < len(words) else None)
        if w == "token" and before not in VOCABULARY_TOKEN and after not in TOKEN_COUNTS:
            return True
        if w == "key" and before in KEY_QUALIFIERS:
            return True
    return False


# A command-line override: optional +, ++ or ~, a dotted key (group options may carry @package), then =.
OVERRIDE = re.compile(r"^(?P<prefix>~|\+\+|\+)?(?P<key>[A-Za-z_][\w.\-/@]*)=(?P<value>.*)$", re.DOTALL)


def secret_override_key(override: str) -> str | None:
    """The key of a ``key=value`` override that names a secret at any depth (``+a.b.access_token=...``)."""
    m = OVERRIDE.match(override)
    if not m:
        return None
    key = m.group("key")
    parts = re.split(r"[./@]", key)
    return key if any(is_secret_key(p) for p in parts if p) else None


def env_var_for(key: str) -> str:
    """The environment variable a secret should come from: the libraries' own names where they have one."""
    leaf = re.split(r"[./@]", key)[-1].lower()
    if "wandb" in key.lower():
        return "WANDB_API_KEY"
    if leaf in ("token", "hf_token", "access_token", "hub_token") or "hf" in key.lower():
        return "HF_TOKEN"
    return re.sub(r"\W", "_", leaf).upper()


def redact(obj: Any) -> Any:
    """Replace the value of every key that names a token, key or password (at any depth), including the value
    of ``key=value`` override strings (Hydra's override lists)."""
    if isinstance(obj, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) and not isinstance(v, (dict, list)) else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and "=" in obj:
        m = OVERRIDE.match(obj)
        if m and secret_override_key(obj) is not None:
            return f"{m.group('prefix') or ''}{m.group('key')}={REDACTED}"
        if "," in obj:  # Hydra's override_dirname joins overrides with commas
            parts = obj.split(",")
            redacted = [redact(p) for p in parts]
            if redacted != parts:
                return ",".join(redacted)
    return obj


SAVED_CONFIGS = ("config.json", "generation_config.json", "training_config.json", "tokenizer_config.json")


def redact_saved_configs(root: Path) -> list[Path]:
    """Redact secrets in the JSON configs a stage saved (a model's config.json may carry a token that came in
    with a hub config or a config-built model's settings); returns the files rewritten."""
    from hala_exp.core.store import atomic_write_text

    changed = []
    for path in sorted(p for name in SAVED_CONFIGS for p in Path(root).rglob(name) if p.is_file()):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        clean = redact(data)
        if clean != data:
            atomic_write_text(path, json.dumps(clean, indent=2, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


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
        self.config, self.tags = redact(config), list(dict.fromkeys([*cfg.tags, *tags]))  # logger.tags first
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
                # No command line, environment, code or git state in the run files: a secret given any way but
                # the config (which is redacted above) must not reach W&B. The pipeline records its own commit.
                settings=wandb.Settings(
                    silent=True,
                    console="off",
                    save_code=False,
                    disable_git=True,
                    x_disable_meta=True,
                    x_disable_machine_info=True,
                    x_save_requirements=False,
                    program="hala_exp",
                ),
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
