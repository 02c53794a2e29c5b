"""Reading runs back: the ``summary.json`` of each Hydra run directory, and the comparison table.

A *run* is one pipeline run (one job of a sweep). Its summary holds the Hydra choices, the resolved
config, per-step status/fingerprint and the metrics (``<step>/<split>/<metric>``). Sweeps are compared on
the choices that differ between their runs, plus the slerp ``t`` (``config.merge.t``), which is a value,
not a choice, and so would not show up among the choices.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
HEADLINE_METRIC = "eval/average"  # the mean over the run's averaged benchmarks (which ones: its eval config)
# The average, logged only when it is over the paper's six benchmarks on hub data: the one number the
# paper's six-benchmark mean may stand beside (hala_exp.evaluation.benchmarks).
PAPER_METRIC = "eval/six_benchmark_mean"
TRANSLATOR_STEP = "eval_translator"
BENCHMARK_STEP = "eval"
TRANSLATION_METRICS = ("bleu", "chrf")  # prefixes: "chrf" also matches "chrf++"/"chrfpp"
# Preference when a benchmark reports several metrics: lighteval's Arabic tasks score acc_norm.
BENCHMARK_METRIC_ORDER = ("acc_norm", "acc", "accuracy", "em", "f1")


@dataclass
class Run:
    name: str
    dir: Path
    group: str
    choices: dict[str, str]
    metrics: dict[str, float]
    stages: dict[str, dict[str, Any]]
    config: dict[str, Any]
    overrides: list[str] = field(default_factory=list)

    @property
    def t(self) -> float | None:
        """The slerp t of the merge step, or None for a run without a merge config."""
        value = (self.config.get("merge") or {}).get("t")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def load_run(run_dir: str | Path) -> Run:
    """One run from its directory; a summary that exists but cannot be parsed raises naming the file."""
    path = Path(run_dir) / SUMMARY
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no {SUMMARY} in {run_dir}: not a hala_exp run directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable summary ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("run"), dict):
        raise ValueError(f"{path}: missing the 'run' section of a hala_exp summary")
    meta = data["run"]
    metrics = {}
    for key, value in (data.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            metrics[key] = float(value)
    return Run(
        name=str(meta.get("name") or Path(run_dir).name),
        dir=Path(run_dir),
        group=str(meta.get("group") or ""),
        choices={k: str(v) for k, v in (meta.get("choices") or {}).items()},
        metrics=metrics,
        stages=dict(data.get("stages") or {}),
        config=dict(data.get("config") or {}),
        overrides=list(meta.get("overrides") or []),
    )


def find_run_dirs(path: str | Path) -> list[Path]:
    """Run directories under ``path``: itself if it holds a summary, else its jobs (multirun ``0/``, ``1/``...)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run or sweep directory")
    if (path / SUMMARY).is_file():
        return [path]
    found = sorted(
        {p.parent for p in path.glob(f"*/{SUMMARY}")} | {p.parent for p in path.glob(f"*/*/{SUMMARY}")},
        key=_natural_key,
    )
    jobs = [p for p in path.iterdir() if p.is_dir() and p.name.isdigit()]
    missing = [p for p in jobs if not (p / SUMMARY).is_file()]
    if missing:  # a job that died before writing its summary: say so rather than drop it silently
        log.warning(
            "%d job(s) in %s have no %s (failed or still running): %s",
            len(missing),
            path,
            SUMMARY,
            ", ".join(p.name for p in sorted(missing, key=_natural_key)),
        )
    return found


def _natural_key(p: Path) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in p.parts)


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run under the given sweep or run directories, in job order; none found raises."""
    runs: list[Run] = []
    for path in paths:
        runs.extend(load_run(d) for d in find_run_dirs(path))
    if not runs:
        raise FileNotFoundError(f"no {SUMMARY} found under: {', '.join(map(str, paths))}")
    return runs


def varying_choices(runs: list[Run]) -> list[str]:
    """Config-group choices whose value differs between runs (a missing choice counts as a value)."""
    keys = sorted({k for r in runs for k in r.choices})
    return [k for k in keys if len({r.choices.get(k) for r in runs}) > 1]


def run_label(run: Run, keys: list[str], with_t: bool = True) -> str:
    """``model=lfm2_350m t=0.5``: the run's values of the given choices (and its t)."""
    parts = [f"{k}={run.choices.get(k, '-')}" for k in keys]
    if with_t and run.t is not None:
        parts.append(f"t={run.t:g}")
    return " ".join(parts) or run.name


def _gap(run: Run, t: float) -> float:
    return 0.0 if run.t is None else abs(run.t - t)


def closest_to_t(runs: list[Run], keys: list[str], t: float) -> list[Run]:
    """Per combination of ``keys``, the run whose t is closest to ``t`` (runs without t count as t)."""
    best: dict[str, Run] = {}
    for run in runs:
        label = run_label(run, keys, with_t=False)
        kept = best.get(label)
        if kept is None or _gap(run, t) < _gap(kept, t):
            best[label] = run
    return list(best.values())


def metric_sort_key(key: str) -> tuple:
    """Headline first, then benchmark metrics, translator metrics, and everything else."""
    if key in (HEADLINE_METRIC, PAPER_METRIC):
        return (0, key)
    if key.startswith(BENCHMARK_STEP + "/"):
        return (1, key)
    if key.startswith(TRANSLATOR_STEP + "/"):
        return (2, key)
    return (3, key)


def headline_metrics(runs: list[Run]) -> list[str]:
    """Metrics for the main table: the average, one score per benchmark, BLEU/chrF++ per test set, losses."""
    keys = {k for r in runs for k in r.metrics}
    chosen = [k for k in keys if k in (HEADLINE_METRIC, PAPER_METRIC) or k.endswith("/loss")]
    chosen += [key for key in benchmark_keys(runs).values()]
    chosen += [k for k in keys if k.startswith(TRANSLATOR_STEP + "/") and _is_translation_metric(k)]
    return sorted(set(chosen), key=metric_sort_key)


def _is_translation_metric(key: str) -> bool:
    return key.rsplit("/", 1)[-1].lower().startswith(TRANSLATION_METRICS)


def benchmark_keys(runs: list[Run]) -> dict[str, str]:
    """``{benchmark: metric key}`` for the eval step's per-benchmark scores (one metric per benchmark)."""
    by_bench: dict[str, list[str]] = {}
    for key in {k for r in runs for k in r.metrics}:
        parts = key.split("/")
        if parts[0] != BENCHMARK_STEP or len(parts) < 3:
            continue
        name = "/".join(parts[1:-1])
        if ":" not in name:  # "family:subset" is one task of a benchmark, not a benchmark
            by_bench.setdefault(name, []).append(key)

    def rank(key: str) -> tuple:
        name = key.rsplit("/", 1)[-1]
        order = BENCHMARK_METRIC_ORDER.index(name) if name in BENCHMARK_METRIC_ORDER else len(BENCHMARK_METRIC_ORDER)
        return (order, name.endswith("stderr"), name)

    return {bench: min(keys, key=rank) for bench, keys in sorted(by_bench.items())}


def translator_keys(runs: list[Run]) -> dict[str, dict[str, str]]:
    """``{test set: {"bleu": key, "chrf": key}}`` for the translator evaluation step."""
    out: dict[str, dict[str, str]] = {}
    for key in sorted({k for r in runs for k in r.metrics}):
        parts = key.split("/")
        if parts[0] != TRANSLATOR_STEP or len(parts) < 3 or not _is_translation_metric(key):
            continue
        kind = "bleu" if parts[-1].lower().startswith("bleu") else "chrf"
        out.setdefault("/".join(parts[1:-1]), {}).setdefault(kind, key)
    return out


def comparable_with_paper(run: Run) -> bool:
    """The run measured the paper's six benchmarks on hub data (its eval logged ``six_benchmark_mean``)."""
    return PAPER_METRIC in run.metrics


def translator_variants(runs: list[Run]) -> list[Run]:
    """One run per distinct translator: runs sharing the eval_translator fingerprint measured the same model."""
    seen: set[str] = set()
    variants = []
    for run in runs:
        fp = (run.stages.get(TRANSLATOR_STEP) or {}).get("fingerprint") or run.name
        if fp not in seen and any(k.startswith(TRANSLATOR_STEP + "/") for k in run.metrics):
            seen.add(fp)
            variants.append(run)
    return variants


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]


def comparison_table(runs: list[Run], metrics: list[str] | None = None) -> Table:
    """One row per run: name, the varying choices, t, then the metrics (blank where a run lacks one)."""
    keys = varying_choices(runs)
    metrics = headline_metrics(runs) if metrics is None else metrics
    columns = ["run", *keys, "t", *metrics]
    rows = []
    for run in runs:
        row: list[Any] = [run.name, *[run.choices.get(k, "") for k in keys], run.t]
        row += [run.metrics.get(m) for m in metrics]
        rows.append(row)
    return Table(columns, rows)


def stage_table(runs: list[Run]) -> Table:
    """Per run, how many steps ran and how many came from the cache (what a sweep paid for)."""
    steps = list(dict.fromkeys(s for r in runs for s in r.stages))
    rows = [[r.name, *[(r.stages.get(s) or {}).get("status", "") for s in steps]] for r in runs]
    return Table(["run", *steps], rows)


def format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)
