"""The pipeline: steps chosen by config, each a cached stage run, chained by artifact paths.

``pipeline.steps`` declares every step (stage kind, inputs, config view); ``pipeline.stages`` selects which
run, in order. A step that is needed but not selected must already be complete in the cache. Everything
that can be checked (config schemas, step names, input wiring, fingerprints) is checked before any compute.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from hala_exp.core import store as cache_mod
from hala_exp.core.disk import check_free_space
from hala_exp.core.schema import ConfigError, build
from hala_exp.core.stage import KINDS, StageContext, StagePending, load_kind
from hala_exp.core.tracking import LoggerConfig, StageTracker, redact, redact_saved_configs
from hala_exp.data.paths import PROJECT_ROOT

log = logging.getLogger(__name__)


@dataclass
class Step:
    name: str
    kind: str
    inputs: dict[str, str]  # role -> step name
    raw_config: dict  # resolved plain config (what is fingerprinted and saved)
    config: Any  # the stage's validated Config
    fingerprint: str = ""


@dataclass
class StageOutcome:
    kind: str
    status: str  # ran | cached | failed
    fingerprint: str
    artifact: str
    seconds: float
    wandb_run_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    def __init__(
        self,
        steps: dict[str, Step],
        selected: list[str],
        cache_dir: str | Path,
        logger: LoggerConfig,
        group: str,
        tags: list[str],
    ):
        self.steps, self.selected = steps, selected
        self.store = cache_mod.ArtifactStore(cache_dir)
        self.logger, self.group, self.tags = logger, group, tags
        self.objective: str | None = None  # the metric a sweeper optimises (`pipeline.objective`)
        self.run_config: dict = {}  # the run's resolved, redacted config: every stage's W&B config

    # ---------------------------------------------------------------- planning
    @classmethod
    def from_config(cls, cfg, group: str, tags: Sequence[str] = ()) -> Pipeline:
        """Validate the whole plan from an OmegaConf config; raises ConfigError before any compute."""
        from omegaconf import OmegaConf

        steps_raw = cast(dict[str, dict], OmegaConf.to_container(cfg.pipeline.steps, resolve=False))
        selected = list(cfg.pipeline.stages)
        unknown = [s for s in selected if s not in steps_raw]
        if unknown:
            raise ConfigError(f"pipeline.stages: unknown stage(s) {unknown}; allowed: {list(steps_raw)}")
        if len(set(selected)) != len(selected):
            raise ConfigError(f"pipeline.stages: a stage is listed twice: {selected}")
        for name, node in steps_raw.items():  # the wiring of every declared step, selected or not
            where = f"pipeline.steps.{name}"
            if node.get("kind") not in KINDS:
                raise ConfigError(f"{where}.kind: {node.get('kind')!r} is not a stage kind; allowed: {list(KINDS)}")
            for role, upstream in (node.get("inputs") or {}).items():
                if upstream not in steps_raw:
                    raise ConfigError(f"{where}.inputs.{role}: unknown step {upstream!r}; allowed: {list(steps_raw)}")
        steps: dict[str, Step] = {}
        for name in _closure(selected, steps_raw):
            node = steps_raw[name]
            where = f"pipeline.steps.{name}"
            kind = node["kind"]
            inputs = dict(node.get("inputs") or {})
            try:
                resolved = cast(dict, OmegaConf.to_container(cfg.pipeline.steps[name].config, resolve=True) or {})
            except Exception as e:  # an interpolation to a missing group or key
                raise ConfigError(f"{where}.config: {e}") from None
            module = load_kind(kind)
            try:
                typed = build(module.Config, resolved, "")
            except ConfigError as e:
                raise ConfigError(_user_key(str(e), node.get("config"), where)) from None
            steps[name] = Step(name, kind, inputs, resolved, typed)
        for i, name in enumerate(selected):
            for role, upstream in steps[name].inputs.items():
                if upstream in selected and selected.index(upstream) > i:
                    raise ConfigError(
                        f"pipeline.stages: {name!r} needs {upstream!r} ({role}), which is listed after it"
                    )
        logger = build(LoggerConfig, OmegaConf.to_container(cfg.logger, resolve=True), "logger")
        pipeline = cls(steps, selected, cfg.paths.cache_dir, logger, group, list(tags))
        pipeline.objective = OmegaConf.select(cfg, "pipeline.objective", default=None, throw_on_missing=True)
        for name in steps:
            pipeline._fingerprint(name)
        return pipeline

    def _fingerprint(self, name: str) -> str:
        step = self.steps[name]
        if not step.fingerprint:
            module = load_kind(step.kind)
            files_fn = getattr(module, "input_files", None)
            try:
                # Keyed by the path relative to the project root: a second checkout reuses the cache.
                files = {
                    os.path.relpath(p, PROJECT_ROOT): cache_mod.file_digest(p)
                    for p in (files_fn(step.config) if files_fn else [])
                }
            except (FileNotFoundError, ConfigError) as e:  # a missing or empty input: a plan error, before compute
                raise ConfigError(f"pipeline.steps.{name}.config: {e}") from None
            inputs = {role: self._fingerprint(up) for role, up in step.inputs.items()}
            versions = cache_mod.library_versions(module.VERSIONS)
            step.fingerprint = cache_mod.fingerprint(
                step.kind, module.FORMAT_VERSION, step.config, inputs, versions, files
            )
        return step.fingerprint

    # ---------------------------------------------------------------- running
    def run(self, summary_path: Path, run_info: dict, config: dict) -> dict:
        summary = {"run": run_info, "stages": {}, "metrics": {}, "config": redact(config)}
        self.run_config = summary["config"]
        needed = [n for n in self.steps if n not in self.selected]
        for name in needed:  # steps left out must come from the cache
            art = self.store.artifact(self.steps[name].kind, self.steps[name].fingerprint)
            if not art.complete:
                raise ConfigError(
                    f"pipeline.stages: {name!r} is needed by the selected stages but is neither selected nor "
                    f"cached ({art.path}); add it to pipeline.stages"
                )
        for name in self.selected:
            try:
                outcome = self._run_step(name)
            except BaseException as e:
                pending = isinstance(e, StagePending)
                summary["stages"][name] = {
                    "kind": self.steps[name].kind,
                    "status": "pending" if pending else "failed",
                    "fingerprint": self.steps[name].fingerprint,
                    "artifact": None,
                    "seconds": None,
                    "wandb_run_id": None,
                }
                _write_json(summary_path, summary)
                if not pending:
                    raise
                log.warning("stage %s: %s", name, e)  # this job's share is done; later stages wait for a rerun
                summary["pending"] = f"{name}: {e}"
                return summary
            summary["stages"][name] = {k: v for k, v in outcome.__dict__.items() if k != "metrics"}
            summary["metrics"].update({f"{name}/{k}": v for k, v in outcome.metrics.items()})
            _write_json(summary_path, summary)
        return summary

    def _outputs(self, name: str) -> dict[str, str]:
        step = self.steps[name]
        return self.store.artifact(step.kind, step.fingerprint).outputs()

    def _run_step(self, name: str) -> StageOutcome:
        step = self.steps[name]
        art = self.store.artifact(step.kind, step.fingerprint)
        if art.complete:
            return self._cached(step, art)
        if getattr(load_kind(step.kind), "CONCURRENT", False):  # the stage coordinates its jobs itself
            art.path.mkdir(parents=True, exist_ok=True)
            try:
                return self._execute(step, art)
            except StagePending:
                if art.complete:  # another job finished (assembled) it while this one waited
                    return self._cached(step, art)
                raise
        with self.store.claim(art):
            if art.complete:  # another process finished it while we waited for the lock
                return self._cached(step, art)
            return self._execute(step, art)

    def _execute(self, step: Step, art: cache_mod.Artifact) -> StageOutcome:
        log.info("stage %s (%s) -> %s", step.name, step.kind, art.path)
        module = load_kind(step.kind)
        inputs = {role: self._outputs(up) for role, up in step.inputs.items()}
        check_free_space(step.name, step.kind, module, step.config, inputs, art.path)
        tags = [*self.tags, f"stage:{step.kind}"]
        started = time.perf_counter()
        # W&B config: the whole resolved config (so `merge.t` compares across runs) plus this step's view.
        wandb_config = {**self.run_config, "stage": step.name, "step_config": step.raw_config}
        with StageTracker(self.logger, step.name, step.kind, self.group, wandb_config, tags) as tracker:
            ctx = StageContext(
                step.name, step.kind, step.config, inputs, art.path, tracker.log, tracker.run, self.store.scratch_root
            )
            result = module.run(ctx)
            seconds = time.perf_counter() - started
            tracker.summarize({**result.metrics, "seconds": seconds})
            redact_saved_configs(art.path)
            art.finish(
                redact(
                    {
                        "step": step.name,
                        "kind": step.kind,
                        "fingerprint": step.fingerprint,
                        "config": redact(step.raw_config),
                        "inputs": {
                            r: {"step": u, "fingerprint": self.steps[u].fingerprint, "outputs": inputs[r]}
                            for r, u in step.inputs.items()
                        },
                        "versions": cache_mod.library_versions(module.VERSIONS),
                        "git_commit": git_commit(),
                        "host": socket.gethostname(),
                        "wall_seconds": seconds,
                        "metrics": result.metrics,
                        "details": result.details,
                        "outputs": result.outputs,
                        "wandb_run_id": tracker.run_id,
                    }
                )
            )
        return StageOutcome(
            step.kind, "ran", step.fingerprint, str(art.path), round(seconds, 2), tracker.run_id, result.metrics
        )

    def _cached(self, step: Step, art: cache_mod.Artifact) -> StageOutcome:
        manifest = art.manifest()
        log.info("stage %s (%s) cached: %s", step.name, step.kind, art.path)
        return StageOutcome(
            step.kind,
            "cached",
            step.fingerprint,
            str(art.path),
            0.0,
            manifest.get("wandb_run_id"),
            manifest.get("metrics", {}),
        )


def _closure(selected: list[str], steps_raw: dict) -> list[str]:
    """Selected steps and everything they need, in declaration order."""
    needed, todo = set(), list(selected)
    while todo:
        name = todo.pop()
        if name in needed or name not in steps_raw:
            continue
        needed.add(name)
        todo.extend((steps_raw[name].get("inputs") or {}).values())
    return [n for n in steps_raw if n in needed]


def _user_key(message: str, raw_config: Any, where: str) -> str:
    """Map 'a.b: msg' (relative to a step config) to the key the user sets, following interpolations:
    `config: ${merge}` turns `t: ...` into `merge.t: ...`."""
    key, sep, rest = message.partition(": ")
    if not sep:
        return f"{where}.config: {message}"
    parts = [p for p in key.split(".") if p]
    node = raw_config
    for i, part in enumerate(parts + [None]):
        if isinstance(node, str) and node.startswith("${") and node.endswith("}"):
            return f"{'.'.join([node[2:-1], *parts[i:]])}: {rest}"
        if part is None or not isinstance(node, dict) or part.split("[")[0] not in node:
            break
        node = node[part.split("[")[0]]
    return f"{'.'.join([f'{where}.config', *parts])}: {rest}"


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cache_mod.atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str))


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def format_table(summary: dict) -> str:
    """A readable table: every stage's status, time and key metrics."""
    rows = [("stage", "status", "seconds", "metrics")]
    for name, st in summary["stages"].items():
        metrics = {k[len(name) + 1 :]: v for k, v in summary["metrics"].items() if k.startswith(name + "/")}
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(metrics.items())[:4])
        secs = "" if st.get("seconds") is None else f"{st['seconds']:.1f}"
        rows.append((name, st["status"], secs, shown))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
