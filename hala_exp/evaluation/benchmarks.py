"""Arabic benchmarks through lighteval 0.13.0: per-benchmark scores, their average, the six-benchmark mean.

The config names benchmarks and pins their lighteval task strings (``name|fewshot``). Scores are the
tasks' own metric (loglikelihood accuracy with character-length normalisation, ``acc_norm``), in percent
like the sources. A benchmark's score is the unweighted mean over its tasks (subsets), and ``average`` the
unweighted mean over the averaged benchmarks: the Open Arabic LLM Leaderboard v2 way, which the Hala
report follows ([S] the headline is the mean of six benchmarks; [A] AraLingBench Table 4 prints the six
columns, ../shared/PAPER.md).

Honest averages: a benchmark named ``local/<name>`` is a stand-in (data that is not the benchmark's own,
e.g. a machine-translated MMLU for ArbMMLU-HT) and is never averaged; two averaged benchmarks may not read
the same local file (that would count one data set twice). ``six_benchmark_mean`` is reported only when
the average is over exactly the paper's six benchmarks, read from the hub, on every question
(no ``max_samples``), with every task of each: only then is it the number the paper's mean can stand beside.

Offline use (measured with lighteval 0.13.0): building a lighteval ``Pipeline``
imports every task module and one downloads a file at import time, so the registry's loader is replaced
by one that returns only the requested tasks from ``lighteval.tasks.multilingual.tasks.arabic``;
``nltk.download`` (called by corpus BLEU) is disabled while lighteval runs; local task families are
pointed at converted copies (``local_tasks``) and read with the hub switched off.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hala_exp.core.schema import NOT_FINGERPRINTED, ConfigError
from hala_exp.evaluation.local_tasks import LocalSource, check_subset, convert, write_task_dir

log = logging.getLogger(__name__)

TASK_STRING = re.compile(r"^(?P<name>[^|]+)\|(?P<fewshot>\d+)$")
STAND_IN_PREFIX = "local/"  # benchmark names of stand-ins: metrics eval/local/<name>/...
# The six benchmarks of the paper's mean ([S]; columns of [A] AraLingBench Table 4): our benchmark names.
SIX_BENCHMARKS = ("alghafa", "arabic_mmlu", "arabic_exams", "madinah_qa", "aratrust", "arabic_mmlu_ht")
# Tasks (subsets) per benchmark in the OALL v2 suite as lighteval 0.13.0 names them (conf/eval/hala.yaml; our
# reading of the leaderboard): fewer means a partial benchmark, whose mean is not the paper's.
SIX_TASK_COUNTS = {
    "alghafa": 9,
    "arabic_mmlu": 40,
    "arabic_exams": 1,
    "madinah_qa": 2,
    "aratrust": 8,
    "arabic_mmlu_ht": 57,
}


@dataclass
class BenchmarkRuntime:
    batch_size: int = field(default=8, metadata=NOT_FINGERPRINTED)
    device: str = field(default="cpu", metadata=NOT_FINGERPRINTED)  # cpu | cuda
    dtype: str = "float32"  # fingerprinted: the precision changes the scores


@dataclass
class BenchmarksConfig:
    tasks: dict[str, list[str]]  # benchmark -> lighteval task strings "name|fewshot"
    averaged: list[str] | None = None  # benchmarks in `average` (null: all but the local/ stand-ins)
    local: dict[str, LocalSource] = field(default_factory=dict)  # task family -> local data (else the hub)
    max_samples: int | None = None  # per task; partial numbers, for quick runs only
    chat_template: bool | None = None  # null: lighteval's rule (use the tokenizer's template if it has one)
    runtime: BenchmarkRuntime = field(default_factory=BenchmarkRuntime)

    def check(self) -> None:
        if not self.tasks:
            raise ConfigError("tasks: at least one benchmark is needed")
        for bench, strings in self.tasks.items():
            if not strings:
                raise ConfigError(f"tasks.{bench}: no task strings")
            for i, s in enumerate(strings):
                if not TASK_STRING.match(s):
                    raise ConfigError(f"tasks.{bench}[{i}]: {s!r} is not a lighteval task string 'name|fewshot'")
        for i, bench in enumerate(self.averaged or []):
            if bench not in self.tasks:
                raise ConfigError(f"averaged[{i}]: {bench!r} is not a benchmark in tasks; allowed: {list(self.tasks)}")
            if bench.startswith(STAND_IN_PREFIX):
                raise ConfigError(f"averaged[{i}]: {bench!r} is a stand-in ({STAND_IN_PREFIX}...): never averaged")
        readers: dict[str, str] = {}
        for bench in self.averaged_benchmarks():
            for family in self.families(bench):
                for f in self.local[family].local_files() if family in self.local else []:
                    if readers.setdefault(f, bench) != bench:
                        raise ConfigError(
                            f"averaged: {readers[f]!r} and {bench!r} both read {f}; one data set would count "
                            f"twice in the average (leave one out, or rename it {STAND_IN_PREFIX}<name>)"
                        )
        if self.max_samples is not None and self.max_samples < 1:
            raise ConfigError(f"max_samples: {self.max_samples} must be >= 1 (or null)")

    def task_list(self) -> list[tuple[str, str, str, int]]:
        """(benchmark, task string, task name, fewshot) in config order."""
        out = []
        for bench, strings in self.tasks.items():
            for s in strings:
                m = TASK_STRING.match(s)
                assert m is not None  # check() refused strings that are not 'name|fewshot'
                out.append((bench, s, m["name"], int(m["fewshot"])))
        return out

    def local_files(self) -> list[str]:
        return [f for src in self.local.values() for f in src.local_files()]

    def averaged_benchmarks(self) -> list[str]:
        if self.averaged is not None:
            return list(self.averaged)
        return [b for b in self.tasks if not b.startswith(STAND_IN_PREFIX)]

    def families(self, bench: str) -> list[str]:
        """lighteval task families (name before ``:``) of one benchmark's task strings."""
        names = [name for b, _, name, _ in self.task_list() if b == bench]
        return list(dict.fromkeys(name.split(":")[0] for name in names))

    def is_paper_suite(self) -> bool:
        """The average is the paper's six-benchmark mean: those six, every task of each, hub data, every question."""
        averaged = self.averaged_benchmarks()
        if sorted(averaged) != sorted(SIX_BENCHMARKS) or self.max_samples is not None:
            return False
        local = any(f in self.local for b in averaged for f in self.families(b))
        complete = all(len(set(self.tasks[b])) >= SIX_TASK_COUNTS[b] for b in averaged)
        return complete and not local


@dataclass
class BenchmarkResults:
    tasks: dict[str, dict[str, float]]  # task name -> short metric name -> value (percent)
    benchmarks: dict[str, float]  # benchmark -> mean of its tasks' primary metric (percent)
    average: float | None
    six_benchmark_mean: float | None  # the average, when it is over the paper's six (is_paper_suite)
    items: list[dict[str, Any]]  # per question: task, id, gold, log-probabilities, metric values
    rejects: dict[str, dict[str, int]]  # local family -> reason -> rows


def arabic_task_configs() -> dict[str, Any]:
    """Task name -> LightevalTaskConfig of lighteval's Arabic multilingual module (the OALL tasks)."""
    import lighteval.tasks.multilingual.tasks.arabic as arabic

    return {cfg.name: cfg for cfg in arabic.TASKS_TABLE}


def resolve_tasks(cfg: BenchmarksConfig, work_dir: Path, where: str = "eval.benchmarks") -> tuple[dict, dict]:
    """Check every task string against lighteval's Arabic tasks and point local families at converted data.
    Returns (task name -> config with num_fewshots, family -> rejected rows per reason)."""
    known = arabic_task_configs()
    chosen: dict[str, Any] = {}
    converted: dict[str, Any] = {}
    for bench, string, name, fewshot in cfg.task_list():
        if name not in known:
            family = name.split(":")[0]
            near = sorted(n for n in known if n.split(":")[0] == family)[:8]
            raise ConfigError(
                f"{where}.tasks.{bench}: unknown lighteval task {string!r}"
                + (
                    f"; tasks of {family!r} include {near}"
                    if near
                    else f"; families: {sorted({n.split(':')[0] for n in known})}"
                )
            )
        task = known[name]
        family = name.split(":")[0]
        if family in cfg.local:
            eval_split = list(task.evaluation_splits)[0]
            dev = task.few_shots_split
            dev_split = (dev[0] if isinstance(dev, (list, tuple)) else dev) or "dev"
            if family not in converted:
                converted[family] = convert(cfg.local[family], eval_split, dev_split)
                write_task_dir(converted[family], work_dir / "local_tasks" / _safe(family))
            check_subset(f"{where}.tasks.{bench}: {string!r}", converted[family], task.hf_subset, eval_split)
            if fewshot and task.few_shots_split:
                check_subset(
                    f"{where}.tasks.{bench}: {string!r} (few-shot)", converted[family], task.hf_subset, dev_split
                )
            # A copy with another hf_repo (dataclasses.replace fails on the task classes with their own
            # __init__, e.g. CustomAlGhafaNativeTask); prompt function, splits and metric stay.
            task = copy.copy(task)
            task.hf_repo, task.hf_revision = str(work_dir / "local_tasks" / _safe(family)), None
        chosen[name] = task
    return chosen, {f: c.rejects for f, c in converted.items()}


def run_benchmarks(model_dir: str, cfg: BenchmarksConfig, work_dir: Path) -> BenchmarkResults:
    import torch

    work_dir.mkdir(parents=True, exist_ok=True)
    all_local = all(name.split(":")[0] in cfg.local for _, _, name, _ in cfg.task_list())
    # lighteval switches autograd off for the whole process (at import and per model): a later stage in the same
    # process (the next sweep job's train) would then train nothing. Its inference runs under no_grad anyway.
    with _offline(all_local), torch.set_grad_enabled(torch.is_grad_enabled()):
        tasks, rejects = resolve_tasks(cfg, work_dir)
        from lighteval.logging.evaluation_tracker import EvaluationTracker
        from lighteval.models.transformers.transformers_model import TransformersModelConfig
        from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters

        tracker = EvaluationTracker(output_dir=str(work_dir / "lighteval"), save_details=False)
        params = PipelineParameters(launcher_type=ParallelismManager.NONE, max_samples=cfg.max_samples)
        chat: dict[str, Any] = {} if cfg.chat_template is None else {"override_chat_template": cfg.chat_template}
        model_config = TransformersModelConfig(
            model_name=model_dir,
            device=cfg.runtime.device,
            batch_size=cfg.runtime.batch_size,
            dtype=cfg.runtime.dtype,
            **chat,
        )
        strings = ",".join(s for _, s, _, _ in cfg.task_list())
        with _only_these_tasks(tasks), _no_nltk_download():
            pipeline = Pipeline(
                tasks=strings, pipeline_parameters=params, evaluation_tracker=tracker, model_config=model_config
            )
            pipeline.evaluate()
        aggregated = tracker.metrics_logger.metric_aggregated
        details = pipeline.get_details()
    return _collect(cfg, aggregated, details, rejects)


def _collect(cfg: BenchmarksConfig, aggregated: dict, details: dict, rejects: dict) -> BenchmarkResults:
    per_task: dict[str, dict[str, float]] = {}
    for _, string, name, _ in cfg.task_list():
        metrics = aggregated.get(string, {})
        per_task[name] = {
            short_metric_name(k): 100.0 * float(v) for k, v in metrics.items() if not k.endswith("_stderr")
        }
    names = {string: name for _, string, name, _ in cfg.task_list()}
    per_bench = {}
    for bench, strings in cfg.tasks.items():
        values = [v for v in (_primary(per_task[names[s]]) for s in strings) if v is not None]
        if values:
            per_bench[bench] = sum(values) / len(values)
    wanted = cfg.averaged_benchmarks()
    averaged = [b for b in wanted if b in per_bench]
    average = sum(per_bench[b] for b in averaged) / len(averaged) if averaged else None
    six = average if cfg.is_paper_suite() and len(averaged) == len(wanted) else None
    items = []
    for task_full, rows in details.items():
        for d in rows:
            items.append(
                {
                    "task": task_full,
                    "id": d.doc.id,
                    "gold_index": d.doc.gold_index,
                    "logprobs": list(d.model_response.logprobs or []),
                    "metrics": {short_metric_name(k): v for k, v in d.metric.items()},
                }
            )
    return BenchmarkResults(per_task, per_bench, average, six, items, rejects)


def short_metric_name(name: str) -> str:
    """lighteval's parametrised names -> the leaderboard's: acc with LogProbCharNorm is acc_norm."""
    base, _, params = name.partition(":")
    if base == "acc" and params:
        for norm, short in (
            ("LogProbCharNorm", "acc_norm"),
            ("LogProbTokenNorm", "acc_norm_token"),
            ("LogProbPMINorm", "acc_norm_pmi"),
        ):
            if norm in params:
                return short
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def _primary(metrics: dict[str, float]) -> float | None:
    for key in ("acc_norm", "acc"):
        if key in metrics:
            return metrics[key]
    return next(iter(metrics.values()), None)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


@contextlib.contextmanager
def _only_these_tasks(configs: dict):
    """lighteval's registry imports every task module (one downloads at import): hand it only ours."""
    from lighteval.tasks.registry import Registry

    original = Registry.__dict__["load_all_task_configs"]
    Registry.load_all_task_configs = staticmethod(  # type: ignore[method-assign]
        lambda custom_tasks=None, load_multilingual=False: dict(configs)
    )
    try:
        yield
    finally:
        Registry.load_all_task_configs = original  # type: ignore[method-assign]


@contextlib.contextmanager
def _no_nltk_download():
    """lighteval's corpus BLEU calls nltk.download on every computation, which hangs offline."""
    try:
        import nltk
    except ImportError:
        yield
        return
    original = nltk.download
    nltk.download = lambda *args, **kwargs: True
    try:
        yield
    finally:
        nltk.download = original


@contextlib.contextmanager
def _offline(enabled: bool):
    """Local tasks only: keep the hub out (datasets reads these variables when it is first imported)."""
    keys = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    saved = {k: os.environ.get(k) for k in keys}
    if enabled:
        for k in keys:
            os.environ[k] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def write_results(path: Path, results: BenchmarkResults, extra: dict | None = None) -> None:
    path.write_text(
        json.dumps(
            {
                "average": results.average,
                "six_benchmark_mean": results.six_benchmark_mean,
                "benchmarks": results.benchmarks,
                "tasks": results.tasks,
                "rejects": results.rejects,
                "items": results.items,
                **(extra or {}),
            },
            indent=1,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
