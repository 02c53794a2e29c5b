"""eval stage: translation quality (BLEU / chrF++) and Arabic benchmarks (lighteval) of one model.

Two uses in the Hala pipeline: ``eval_translator`` scores the fine-tuned translator on parallel test sets
(``translation`` + ``prompt`` + ``language``); ``eval`` runs the benchmarks on the merged model
(``benchmarks`` + ``language``). A step may set both.

Everything that can be refused is refused before the model is loaded: unknown benchmark tasks, local
benchmark data without the requested subset, test sets whose sides differ in length.

Outputs: ``results`` (results.json: every metric, per-task scores, per-question details of the
benchmarks), ``translation/<testset>/`` (source, hypotheses, references, metrics.json with the sacrebleu
signatures and the CLI command that reproduces them). Metrics: ``<testset>/bleu``, ``<testset>/chrf``,
``<task>/acc_norm``, ``<benchmark>/acc_norm``, ``average`` and, only when that average is over the paper's six
benchmarks on hub data, ``six_benchmark_mean`` (``hala_exp.evaluation.benchmarks``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Literal

from hala_exp.core.schema import ConfigError
from hala_exp.core.stage import StageContext, StageResult
from hala_exp.evaluation.benchmarks import BenchmarksConfig
from hala_exp.evaluation.testsets import TestSetConfig
from hala_exp.translation.config import EngineConfig, LanguageConfig, PromptConfig, ProtectConfig

log = logging.getLogger(__name__)

VERSIONS = ("sacrebleu", "lighteval", "transformers", "torch", "datasets")
FORMAT_VERSION = 1  # bump when this stage's code changes the bytes it writes (part of the fingerprint)


@dataclass
class TranslationEvalConfig:
    testsets: dict[str, TestSetConfig]
    # BLEU tokenizer: 13a works offline (flores200/spm download a model); our choice, the paper does not say.
    bleu_tokenize: Literal["13a", "intl", "char", "none"] = "13a"
    chrf_word_order: int = 2  # chrF++ (word bigrams), as the issue asks
    engine: EngineConfig = field(default_factory=EngineConfig)  # how hypotheses are generated (`translate.engine`)
    protect: ProtectConfig = field(default_factory=ProtectConfig)  # spans kept out, as the translate stage does

    def check(self) -> None:
        if not self.testsets:
            raise ConfigError("testsets: at least one test set is needed")
        if self.chrf_word_order not in (0, 1, 2):
            raise ConfigError(f"chrf_word_order: {self.chrf_word_order} is not allowed; allowed values: [0, 1, 2]")


@dataclass
class Config:
    translation: TranslationEvalConfig | None = None
    benchmarks: BenchmarksConfig | None = None
    prompt: PromptConfig | None = None  # the translator's prompt (translation only)
    language: LanguageConfig | None = None

    def check(self) -> None:
        if self.translation is None and self.benchmarks is None:
            raise ConfigError("translation: set translation and/or benchmarks (an eval with neither does nothing)")
        if self.translation is not None:
            for key in ("prompt", "language"):
                if getattr(self, key) is None:
                    raise ConfigError(f"{key}: required to generate translations (translation is set)")


def input_files(config: Config) -> list[str]:
    files: list[str] = []
    if config.translation:
        for ts in config.translation.testsets.values():
            files.extend(ts.local_files())
    if config.benchmarks:
        files.extend(config.benchmarks.local_files())
    return files


def run(ctx: StageContext) -> StageResult:
    cfg: Config = ctx.config
    model_dir = ctx.input("model", "model")
    metrics: dict[str, float | int] = {}
    details: dict = {}
    results: dict = {"model": model_dir}

    testsets = _load_testsets(cfg) if cfg.translation else {}
    bench_tasks = None
    if cfg.benchmarks:  # refuse unknown tasks and missing local subsets before any model is loaded
        from hala_exp.evaluation.benchmarks import resolve_tasks

        resolve_tasks(cfg.benchmarks, ctx.out_dir / "benchmarks")
        bench_tasks = cfg.benchmarks

    if testsets:
        results["translation"] = _translation(ctx, cfg, model_dir, testsets, metrics, details)
    if bench_tasks:
        from hala_exp.evaluation.benchmarks import run_benchmarks

        res = run_benchmarks(model_dir, bench_tasks, ctx.out_dir / "benchmarks")
        for task, values in res.tasks.items():
            metrics.update({f"{task}/{k}": v for k, v in values.items()})
        metrics.update({f"{b}/acc_norm": v for b, v in res.benchmarks.items()})
        if res.average is not None:
            metrics["average"] = res.average
        if res.six_benchmark_mean is not None:  # only over the paper's six on hub data: comparable with it
            metrics["six_benchmark_mean"] = res.six_benchmark_mean
        results["benchmarks"] = {
            "average": res.average,
            "six_benchmark_mean": res.six_benchmark_mean,
            "benchmarks": res.benchmarks,
            "tasks": res.tasks,
            "items": res.items,
        }
        details["benchmark_rejects"] = res.rejects
        details["max_samples"] = bench_tasks.max_samples
    (ctx.out_dir / "results.json").write_text(
        json.dumps({"metrics": metrics, **results}, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    _log_tables(ctx, results)
    return StageResult(outputs={"results": "results.json"}, metrics=metrics, details=details)


def _load_testsets(cfg: Config) -> dict:
    from hala_exp.evaluation.testsets import load_testset

    assert cfg.translation is not None  # run() calls this only for a translation eval
    return {name: load_testset(name, ts) for name, ts in cfg.translation.testsets.items()}


def _translation(ctx: StageContext, cfg: Config, model_dir: str, testsets: dict, metrics: dict, details: dict) -> dict:
    from hala_exp.evaluation.scoring import save_and_score
    from hala_exp.translation import translate_texts

    tr, prompt, language = cfg.translation, cfg.prompt, cfg.language
    # check() requires all three for a translation eval
    assert tr is not None and prompt is not None and language is not None
    out = {}
    translated: dict[tuple, list[str]] = {}  # FLORES varieties share one English side: translate it once
    for name, ts in testsets.items():
        log.info("translating %s (%d segments, %s)", name, len(ts.sources), ts.direction)
        same = (ts.direction, tuple(ts.sources))
        if same not in translated:
            translated[same] = translate_texts(
                model_dir,
                ts.sources,
                prompt=prompt,
                language=language,
                direction=ts.direction,
                engine=tr.engine,
                protect=tr.protect,
                # Segments kept in the artifact, one cache per direction: a killed eval resumes from them.
                cache_dir=ctx.out_dir / "segments" / ts.direction,
            )
        hyps = translated[same]
        scores = save_and_score(
            ctx.out_dir / "translation" / name,
            ts.sources,
            hyps,
            ts.references,
            tr.bleu_tokenize,
            tr.chrf_word_order,
            extra={"origin": ts.origin, "direction": ts.direction, "rejects": ts.rejects},
        )
        metrics[f"{name}/bleu"] = scores.bleu
        metrics[f"{name}/chrf"] = scores.chrf
        if scores.bleu_ci is not None:  # small test sets: bootstrap 95 % half-widths beside the scores
            metrics[f"{name}/bleu_ci95"], metrics[f"{name}/chrf_ci95"] = scores.bleu_ci, scores.chrf_ci
        details[name] = {
            "segments": scores.segments,
            "origin": ts.origin,
            "rejects": ts.rejects,
            "bleu_signature": scores.bleu_signature,
            "chrf_signature": scores.chrf_signature,
        }
        out[name] = {
            "bleu": scores.bleu,
            "chrf": scores.chrf,
            "segments": scores.segments,
            "bleu_signature": scores.bleu_signature,
            "chrf_signature": scores.chrf_signature,
            "files": f"translation/{name}",
        }
    return out


def _log_tables(ctx: StageContext, results: dict) -> None:
    """Per-task and per-test-set tables on the stage's W&B run (when there is one)."""
    run = ctx.tracker_run
    if run is None:
        return
    import wandb

    if "benchmarks" in results:
        rows = [[task, m.get("acc_norm", m.get("acc"))] for task, m in results["benchmarks"]["tasks"].items()]
        run.log({"benchmarks": wandb.Table(columns=["task", "acc_norm"], data=rows)})
    if "translation" in results:
        rows = [[n, r["bleu"], r["chrf"], r["segments"]] for n, r in results["translation"].items()]
        run.log({"translation": wandb.Table(columns=["testset", "bleu", "chrf", "segments"], data=rows)})
