"""Stage kinds and the contract every stage follows.

A stage is a module in ``hala_exp.stages`` that satisfies the ``Stage`` protocol below:

* ``Config``: a dataclass describing its step config (validated before any compute); fields marked
  ``NOT_FINGERPRINTED`` (``hala_exp.core.schema``) do not enter the fingerprint;
* ``VERSIONS``: distributions whose version changes the stage's result (part of the fingerprint);
* ``FORMAT_VERSION``: an int bumped whenever the stage's code changes the bytes it writes (part of the
  fingerprint, so an artifact written by older code is never reused);
* ``run(ctx: StageContext) -> StageResult``: does the work inside ``ctx.out_dir``.

Optionally ``input_files(config) -> list[str]``: local files whose content is part of the fingerprint, and
``CONCURRENT = True`` for a stage whose jobs may work in one artifact directory at once (it coordinates
them itself, e.g. translation shards claimed by lease files); such a stage raises
``StagePending`` when its job's share is done but others' is not.

Stage modules import torch, transformers and friends inside ``run`` so that composing and validating a
config stays instant.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast, runtime_checkable

KINDS = ("model", "quantize", "translate", "bilingual", "train", "merge", "eval")


class StagePending(Exception):
    """This job finished its share of a stage; other jobs still hold the rest. Rerun to continue."""


@dataclass
class StageContext:
    """What a stage gets: its step name, validated config, upstream outputs and a working directory."""

    name: str
    kind: str
    config: Any  # the stage module's Config instance
    inputs: dict[str, dict[str, str]]  # input role -> upstream step's outputs (absolute paths or hub ids)
    out_dir: Path  # stable per fingerprint: partial work of an interrupted attempt is still there
    log_metrics: Callable[[dict[str, float], int | None], None] = field(default=lambda metrics, step=None: None)
    tracker_run: Any = None  # the W&B run of this stage, or None
    scratch_root: Path | None = None  # the store's scratch space (content-keyed caches shared across steps)

    def scratch(self, name: str) -> Path:
        """A named scratch directory from the store, shared by every step; its user keys entries by content."""
        path = (self.scratch_root if self.scratch_root is not None else self.out_dir / "scratch") / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def input(self, role: str, key: str = "model") -> str:
        try:
            return self.inputs[role][key]
        except KeyError:
            have = {r: sorted(o) for r, o in self.inputs.items()}
            raise KeyError(f"stage {self.name!r} needs output {key!r} of input {role!r}; it has {have}") from None


@dataclass
class StageResult:
    outputs: dict[str, str]  # name -> path relative to out_dir (or an absolute path / hub id)
    metrics: dict[str, float | int] = field(default_factory=dict)  # names relative to the stage: "split/metric"
    details: dict[str, Any] = field(default_factory=dict)  # extra manifest content (counts, rejects, ...)


@runtime_checkable
class Stage(Protocol):
    """The contract of a stage module (attributes, so a plain module satisfies it)."""

    Config: type
    VERSIONS: tuple[str, ...]
    FORMAT_VERSION: int

    def run(self, ctx: StageContext) -> StageResult: ...


def load_kind(kind: str) -> Stage:
    if kind not in KINDS:
        raise ValueError(f"unknown stage kind {kind!r}; allowed: {', '.join(KINDS)}")
    module: ModuleType = importlib.import_module(f"hala_exp.stages.{kind}")
    if not isinstance(module, Stage):
        missing = [a for a in ("Config", "VERSIONS", "FORMAT_VERSION", "run") if not hasattr(module, a)]
        raise TypeError(f"stage module {module.__name__} breaks the stage contract: it lacks {missing}")
    return cast(Stage, module)
