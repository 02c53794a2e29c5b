"""Fake stage modules for testing the pipeline's mechanics (cache, locks, kills) without models.

Usable in-process (``patched_kinds``) and from a subprocess (``python tests/pipeline_fakes.py CACHE ...``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from omegaconf import OmegaConf

from hala_exp.core.schema import NOT_FINGERPRINTED
from hala_exp.core.stage import StageResult


@dataclass
class SourceConfig:
    value: int
    runtime: dict | None = field(default=None, metadata=NOT_FINGERPRINTED)  # {"sleep": seconds, "batch": n}


def _source_run(ctx):
    """Writes a partial file first, then (after sleeping) its output: a kill in between leaves no marker."""
    log = Path(os.environ["FAKE_STAGE_LOG"]) if "FAKE_STAGE_LOG" in os.environ else None
    partial = ctx.out_dir / "partial.txt"
    resumed = partial.exists()
    partial.write_text("started\n")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{ctx.name} {os.getpid()}\n")
    runtime = ctx.config.runtime or {}
    time.sleep(runtime.get("sleep_resumed", runtime.get("sleep", 0)) if resumed else runtime.get("sleep", 0))
    (ctx.out_dir / "data.json").write_text(json.dumps({"value": ctx.config.value}))
    return StageResult(outputs={"data": "data.json"}, metrics={"value": ctx.config.value, "resumed": int(resumed)})


@dataclass
class DoubleConfig:
    factor: int = 2


def _double_run(ctx):
    value = json.loads(Path(ctx.input("data", "data")).read_text())["value"]
    (ctx.out_dir / "data.json").write_text(json.dumps({"value": value * ctx.config.factor}))
    return StageResult(outputs={"data": "data.json"}, metrics={"value": value * ctx.config.factor})


FAKES = {
    "model": SimpleNamespace(Config=SourceConfig, VERSIONS=("omegaconf",), FORMAT_VERSION=1, run=_source_run),
    "train": SimpleNamespace(Config=DoubleConfig, VERSIONS=(), FORMAT_VERSION=1, run=_double_run),
}


def make_config(cache_dir, value=1, factor=2, sleep=0.0, stages=("source", "double"), batch=8):
    return OmegaConf.create(
        {
            "pipeline": {
                "stages": list(stages),
                "steps": {
                    "source": {
                        "kind": "model",
                        "config": {"value": value, "runtime": {"batch": batch, "sleep": sleep}},
                    },
                    "double": {"kind": "train", "inputs": {"data": "source"}, "config": "${double}"},
                },
            },
            "double": {"factor": factor},
            "paths": {"cache_dir": str(cache_dir)},
            "logger": {"mode": "disabled"},
        }
    )


def patch(monkeypatch=None):
    import hala_exp.core.pipeline as pipeline

    fake = lambda kind: FAKES[kind]  # noqa: E731
    if monkeypatch is not None:
        monkeypatch.setattr(pipeline, "load_kind", fake)
    else:
        pipeline.load_kind = fake


def run(cfg, summary_path):
    from hala_exp.core.pipeline import Pipeline

    pipe = Pipeline.from_config(cfg, group="test")
    return pipe.run(Path(summary_path), {"name": "test"}, {})


if __name__ == "__main__":  # python pipeline_fakes.py CACHE SUMMARY SLEEP
    patch()
    cache, summary, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
    run(make_config(cache, sleep=sleep), summary)
