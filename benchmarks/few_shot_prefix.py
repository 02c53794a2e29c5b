"""The shared few-shot prefix: the embedded default's teacher with and without its key/value cache reused.

    .venv/bin/python benchmarks/few_shot_prefix.py             # 16 held-out sentences, 5 rounds: ~8 min idle
    .venv/bin/python benchmarks/few_shot_prefix.py --rounds 2  # development

The teacher is Gemma 3 270M as the embedded default runs it: the pipeline's ``teacher -> quantize`` steps
(fp32 conversion of the GGUF package, then FP8), asked with ``translator.teacher_prompt`` (three Tatoeba
shots, ~400 tokens every prompt starts with) through the transformers backend with the default's engine
settings. Inputs: the default's held-out English sentences (what ``eval_teacher`` translates). Each side is
one ``generate`` call over all of them on an already loaded model, ``engine.runtime.prefix_cache`` off or on;
rounds interleave the sides. The report compares each row's tokens with the uncached side's, and the uncached
side's with each prompt generated alone (batch 1), and counts the rows generated again without the prefix
(their prompt and answer could outgrow Gemma's sliding window).
Writes benchmarks/results/few_shot_prefix.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Spread, finish, header, interleaved, pipeline_steps, run_facts, write_result  # noqa: E402

OFF, ON = "prefix cache off", "prefix cache on"
STEPS = "teacher,quantize"


def report(facts: dict, setup: dict, runs: dict[str, dict[str, list[float]]], check: dict[str, dict]) -> str:
    """``runs[model][side]``: wall seconds per round; ``check[model]``: shared tokens, identical and redone rows."""
    n = setup["sentences"]
    lines = header("Few-shot prefix cache (the embedded default's teacher)", facts)
    lines += [
        f"Model: {setup['model']}; {n} held-out sentences of the embedded default, EN->AR, one `generate` call "
        f"over all of them (batch {setup['batch']}, greedy, repetition penalty {setup['penalty']}, stop at a "
        f"line break), torch threads {setup['threads']}. {setup['rounds']} interleaved rounds after one "
        "unmeasured warm-up round; median (min–max) wall seconds, model loading excluded.",
        "",
        "| weights | side | wall s | sentences/s | speed-up | rows identical to cache off | rows redone |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for model, sides in runs.items():
        c = check[model]
        for side, secs in sides.items():
            s = Spread.of(secs)
            speedup = Spread.of([x / y for x, y in zip(sides[OFF], secs)])
            same = f"{c['identical']}/{n}" if side == ON else "-"
            redone = f"{c['redone']}/{n}" if side == ON else "-"
            lines.append(
                f"| {model} | {side} | {s.fmt()} | {n / s.median:.2f} | {speedup.fmt()}x | {same} | {redone} |"
            )
    lines += [""]
    for model, c in check.items():
        lines.append(
            f"- {model}: {c['shared']} prompt tokens shared of {c['prompt_tokens']} per prompt on average; "
            f"{c['identical']}/{n} rows have the same tokens with the cache on as off; chrF++ "
            + ", ".join(f"{c['chrf'][side]:.1f} with the {side}" for side in (OFF, ON))
            + f"; with the cache off, {c['alone']}/{n} rows have the same tokens when each prompt runs alone "
            "(batch 1) as in its batch."
        )
    lines += [
        "",
        "Greedy search over the same logits up to float rounding: the fp32 rows should match. The FP8 checkpoint "
        "rounds every activation to 8 bits, so a last-digit difference (a different matrix shape) can flip a "
        "token there, as a batch's shape already does without the cache (the batch 1 comparison).",
    ]
    return "\n".join(lines) + "\n"


def pipeline_models(out: Path) -> dict[str, Path]:
    """The default's ``teacher`` (fp32) and ``quantize`` (FP8) outputs, run or reused in ``out``."""
    steps = pipeline_steps(out, ["teacher", "quantize"])
    return {"fp32": steps["teacher"] / "model", "FP8": steps["quantize"] / "model"}


def measure(models: dict[str, Path], rounds: int) -> tuple[dict, dict, dict]:
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from hala_exp.core.schema import build
    from hala_exp.evaluation.testsets import TestSetConfig, load_testset
    from hala_exp.translation.config import EngineConfig, LanguageConfig, PromptConfig
    from hala_exp.translation.engine import Translator

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = OmegaConf.to_container(compose(config_name="config"), resolve=True)
    prompt = build(PromptConfig, cfg["translator"]["teacher_prompt"], "translator.teacher_prompt")
    language = build(LanguageConfig, cfg["language"], "language")
    heldout = load_testset("data.heldout", build(TestSetConfig, cfg["data"]["heldout"], "data.heldout"))
    engine = cfg["translate"]["engine"]
    setup = dict(
        model="Gemma 3 270M (the default's teacher steps)",
        sentences=len(heldout.sources),
        batch=engine["runtime"]["generate_batch_size"],
        penalty=prompt.repetition_penalty,
        threads=torch.get_num_threads(),
        rounds=rounds,
    )
    runs: dict[str, dict[str, list[float]]] = {}
    check: dict[str, dict] = {}
    for label, path in models.items():
        sides = {}
        for side, flag in ((OFF, False), (ON, True)):
            options = {**engine, "runtime": {**engine["runtime"], "prefix_cache": flag, "progress": False}}
            tr = Translator(str(path), prompt, language, heldout.direction, build(EngineConfig, options, "engine"))
            requests = tr.requests({str(i): s for i, s in enumerate(heldout.sources)})  # the engine's own limits
            sides[side] = _Side(tr.backend(), requests, tr.decode)  # the model loads here, outside the timing
        runs[label] = interleaved({name: side.run for name, side in sides.items()}, rounds, warmup=1)
        on, off = sides[ON], sides[OFF]
        check[label] = dict(
            shared=len(on.backend._prefix.ids) if on.backend._prefix else 0,
            prompt_tokens=round(sum(len(r.prompt_ids) for r in on.requests) / len(on.requests)),
            identical=sum(on.outputs[k] == off.outputs[k] for k in off.outputs),
            redone=on.redone,
            chrf={name: _chrf(side, heldout.references) for name, side in sides.items()},
            alone=off.identical_alone(),
        )
    return setup, runs, check


def _chrf(side: _Side, references: list[str]) -> float:
    """chrF++ of the side's last round against the references (the translator's decode, as eval scores)."""
    import sacrebleu

    texts = [side.decode(side.outputs[str(i)]) for i in range(len(references))]
    return sacrebleu.corpus_chrf(texts, [references], word_order=2).score


class _Side:
    """One backend and its requests; ``run`` generates them all once and counts the rows generated without the
    shared prefix (``_generate`` called with none)."""

    def __init__(self, backend, requests, decode):
        self.backend, self.requests, self.decode = backend, requests, decode
        self.outputs: dict[str, list[int]] = {}
        self.redone = 0
        plain = backend._generate

        def counted(batch, prefix):
            self.redone += len(batch) if prefix is None else 0
            return plain(batch, prefix)

        backend._generate = counted

    def identical_alone(self) -> int:
        """Rows of the last round whose tokens are the same when each prompt is generated alone (batch 1)."""
        batched, runtime = self.outputs, self.backend.cfg.runtime
        size, runtime.generate_batch_size = runtime.generate_batch_size, 1
        try:
            self.run()
        finally:
            runtime.generate_batch_size = size
        alone, self.outputs = self.outputs, batched
        return sum(alone[k] == batched[k] for k in batched)

    def run(self) -> float:
        self.outputs, self.redone = {}, 0
        start = time.perf_counter()
        self.backend.generate(self.requests, lambda gens: self.outputs.update((g.key, g.token_ids) for g in gens))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pipeline-output", type=Path, help="reuse the teacher steps cached in this output dir")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    facts = run_facts("few_shot_prefix.py")
    with tempfile.TemporaryDirectory() as tmp:
        models = pipeline_models(args.pipeline_output or Path(tmp))
        setup, runs, check = measure(models, args.rounds)
    write_result("few_shot_prefix.md", report(finish(facts), setup, runs, check))


if __name__ == "__main__":
    main()
