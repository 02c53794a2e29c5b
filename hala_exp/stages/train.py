"""train stage: supervised fine-tuning of a causal LM on chat data (messages schema) with Lightning.

Runs twice in the Hala recipe ([S] reviews): LFM2-1.2B becomes the translator on the bilingual
corpus, then the base models are tuned on the translated SFT mix. Inputs: ``model`` (a Hugging Face
directory) and ``data`` (JSONL, messages schema). Output ``model``: a Hugging Face directory with tokenizer,
the chat template trained with and ``training_config.json``.

Features: loss masks by name (``assistant_turns``: every assistant turn with its end-of-turn token;
``last_assistant_turn``; ``all_tokens``), truncate-or-drop of long examples, length-grouped batching or
packing (refused for architectures where it leaks across examples, e.g. LFM2's convolutions), AdamW with
linear warm-up then cosine/linear/constant, gradient accumulation and clipping, precision 32 / bf16-mixed /
bf16-true, gradient checkpointing, resume from the stage directory's last checkpoint (exact after any
number of kills), SIGTERM answered with a checkpoint and ``StagePending``, throughput metrics.
Data: the upstream's Arrow copy when it has one (output ``arrow``, a file, or ``dataset``, a directory),
else its JSONL; tokenized examples are cached on Arrow in the store's scratch directory ``tokenized``.
Rejected: packing for conv/recurrent layers; ``resume=true`` with no checkpoint.
Several devices (``trainer=ddp|fsdp``) run in a subprocess worker (Lightning's launchers re-execute the
current command). ``runtime`` keys (here and under ``trainer``) do not enter the cache fingerprint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from hala_exp.core.stage import StageContext, StagePending, StageResult
from hala_exp.training.config import Config

__all__ = ["Config", "FORMAT_VERSION", "VERSIONS", "run"]
log = logging.getLogger(__name__)
VERSIONS = ("torch", "transformers", "tokenizers", "pytorch-lightning")
FORMAT_VERSION = 3  # bump when this stage's code changes the bytes it writes (part of the fingerprint)
# 2: LR schedule from transformers' helpers; quarantine lines are file lines, rejects keep id + messages


def run(ctx: StageContext) -> StageResult:
    from hala_exp.core.model_dirs import load_tokenizer
    from hala_exp.training.chat import resolve_template
    from hala_exp.training.checkpoints import resume_checkpoint
    from hala_exp.training.examples import prepare_examples
    from hala_exp.training.fit import FitRequest, Preempted, fit

    cfg: Config = ctx.config
    out = ctx.out_dir
    model_dir, data_path = ctx.input("model", "model"), training_data(ctx)
    tokenizer = load_tokenizer(model_dir)
    template = resolve_template(tokenizer, cfg.chat_template)
    examples = prepare_examples(
        data_path,
        tokenizer,
        template,
        masking=cfg.masking,
        max_length=cfg.max_length,
        too_long=cfg.too_long,
        end_of_turn=cfg.end_of_turn,
        cache_dir=Path(cfg.runtime.tokenized_cache_dir or ctx.scratch("tokenized")),
        quarantine_path=out / "quarantine.jsonl",
        num_proc=cfg.runtime.tokenize_num_proc,
    )
    if not len(examples):
        raise ValueError(f"{data_path}: no trainable example left ({examples.counts})")
    log.info("train data: %s", examples.counts)

    ckpt_dir = out / "checkpoints"
    request = FitRequest(
        config=cfg,
        model_dir=model_dir,
        examples_dir=str(examples.path),
        template=template,
        checkpoint_dir=str(ckpt_dir),
        export_dir=str(out / "model"),
        resume_from=resume_checkpoint(cfg.runtime.resume, ckpt_dir),
        data_counts=examples.counts,
    )
    start = time.perf_counter()
    try:
        if cfg.trainer.multi_process():
            result = _run_worker(request, out / "work", ctx.log_metrics)
        else:
            result = fit(request, ctx.log_metrics)
    except Preempted as e:
        raise StagePending(f"step {ctx.name!r} preempted ({e}); rerun to resume from its checkpoint") from None
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
        details={"data_counts": examples.counts, "resumed_from": request.resume_from},
    )


def training_data(ctx: StageContext) -> str:
    """The upstream's chat data: its Arrow copy when it offers one (output ``arrow``: an Arrow file, or
    ``dataset``: a ``save_to_disk`` directory), else its JSONL file."""
    outputs = ctx.inputs.get("data", {})
    for key in ("arrow", "dataset"):
        if key in outputs and Path(outputs[key]).exists():
            return outputs[key]
    return ctx.input("data", "data")


def _run_worker(request, work: Path, log_metrics) -> dict:
    """Run the fit in ``python -m hala_exp.training.worker``; forward its metrics (and SIGTERM) while it runs."""
    from hala_exp.training.fit import Preempted
    from hala_exp.training.worker import PREEMPTED

    work.mkdir(parents=True, exist_ok=True)
    req = work / "request.json"
    metrics_path, result_path = req.with_suffix(".metrics.jsonl"), req.with_suffix(".result.json")
    for p in (metrics_path, result_path):
        p.unlink(missing_ok=True)
    req.write_text(json.dumps(request.to_json()))
    log_path = work / "worker.log"
    seen = 0
    with open(log_path, "w") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hala_exp.training.worker", str(req)],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        forward = threading.current_thread() is threading.main_thread()  # signal handlers live in the main thread
        if forward:
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signal.SIGTERM))
        try:
            while True:
                code = proc.poll()
                seen = _forward(metrics_path, seen, log_metrics)
                if code is not None:
                    break
                time.sleep(1.0)
        finally:
            if forward:
                signal.signal(signal.SIGTERM, previous)
    if code == PREEMPTED:
        raise Preempted(f"the training worker stopped on SIGTERM after checkpointing (log {log_path})")
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
