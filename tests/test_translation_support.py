"""Helpers shared by the translation tests (no tests here): a test-double backend, rows, stage contexts."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hala_exp.core.schema import build
from hala_exp.core.stage import StageContext
from hala_exp.translation.backends import Generation, cut_at_eos

LATIN = "abcdefghijklmnopqrstuvwxyz"
ARABIC = "ابتثجحخدذرزسشصضطظعغفقكلمنه"
PROMPT = {"template": "Translate from {source_name} to {target_name}: {text}", "chat_template": True}
LANGUAGE = {
    "code": "ar",
    "name": "Arabic",
    "flores": "arb_Arab",
    "script": "Arabic",
    "refusal_patterns": ["(?:عذرًا|عذرا)[،,]?\\s*لا\\s+(?:أستطيع|يمكنني)"],
}


def arabize(text: str) -> str:
    """A deterministic stand-in for a translator: Latin letters to Arabic ones, everything else kept."""
    table = str.maketrans(LATIN + LATIN.upper(), ARABIC + ARABIC)
    return text.translate(table)


class FakeBackend:
    """Decodes each prompt, 'translates' the text after the template's colon, returns token ids.
    after ``crash_after`` batches (over all calls) it raises (a crash inside the loop); ``delay`` slows it
    (for kill -9 tests)."""

    devices = 1
    starts, start_seconds = 1, 0.0  # one "model load" per instance
    generated: list[str] = []  # keys generated, across instances (class-level on purpose)

    def __init__(self, tokenizer, eos_ids, batch_size=4, crash_after=None, delay=0.0, transform=arabize):
        self.tok, self.eos_ids, self.bs = tokenizer, eos_ids, batch_size
        self.crash_after, self.delay, self.transform = crash_after, delay, transform
        self.batches = 0

    def generate(self, requests, on_done):
        for start in range(0, len(requests), self.bs):
            if self.crash_after is not None and self.batches >= self.crash_after:
                raise RuntimeError("simulated crash")
            self.batches += 1
            batch = requests[start : start + self.bs]
            gens = []
            for r in batch:
                prompt = self.tok.decode(r.prompt_ids, skip_special_tokens=False)
                text = prompt.split(": ", 1)[1].split("<|im_end|>", 1)[0]
                ids = self.tok(self.transform(text), add_special_tokens=False)["input_ids"] + [min(self.eos_ids)]
                gens.append(Generation(r.key, cut_at_eos(ids, self.eos_ids, 10_000), len(r.prompt_ids)))
                FakeBackend.generated.append(r.key)
            time.sleep(self.delay)
            on_done(gens)


def install_fake(monkeypatch, **kwargs):
    """Make the engine use FakeBackend instead of loading the model."""
    import hala_exp.translation.engine as engine
    from hala_exp.core.model_dirs import load_tokenizer

    def make(model_path, cfg, eos_ids, pad_id, work_dir, repetition_penalty=1.0):
        return FakeBackend(load_tokenizer(model_path), eos_ids, **kwargs)

    monkeypatch.setattr(engine, "make_backend", make)


def stage_config(source=None, translate=None, direction="en-xx", **runtime):
    """A translate stage config; ``runtime`` keys go to ``translate.runtime`` (shard sharing)."""
    from hala_exp.stages.translate import Config

    translate = {"shard_size": 3, **(translate or {})}
    engine = translate.setdefault("engine", {})
    engine.setdefault("max_new_tokens", 8)
    engine["runtime"] = {"progress": False, "generate_batch_size": 4, **engine.get("runtime", {})}
    translate["runtime"] = {"lease_heartbeat_s": 0.2, "lease_stale_s": 3.0, **translate.get("runtime", {}), **runtime}
    source = source or {
        "sources": [
            {
                "name": "orca",
                "adapter": "open_orca",
                "path": "package://hala_exp/assets/embedded/instructions_en.jsonl",
                "fraction": 1.0,
            }
        ]
    }
    return build(
        Config,
        {"source": source, "prompt": PROMPT, "language": LANGUAGE, "translate": translate, "direction": direction},
        "",
    )


def context(cfg, model_dir, out_dir) -> StageContext:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return StageContext(
        name="translate_seed",
        kind="translate",
        config=cfg,
        inputs={"model": {"model": str(model_dir)}},
        out_dir=Path(out_dir),
    )


def make_rows(n: int, prefix: str = "r", shared_system: bool = True) -> list[dict]:
    """Rows with code, a URL and a protected fence; all share one system turn unless ``shared_system`` is
    false (then no segment appears in two rows)."""
    rows = []
    for i in range(n):
        system = "You are a helpful assistant." if shared_system else f"You are assistant number {i}."
        rows.append(
            {
                "id": f"{prefix}{i}",
                "source": "synthetic",
                "messages": [
                    {"role": "system", "content": system},
                    {
                        "role": "user",
                        "content": f"Question number {i}: explain `code_{i}` and see https://example.com/{i}.",
                    },
                    {
                        "role": "assistant",
                        "content": f"Answer {i}. Shared sentence for dedup.\n\n```python\nx = {i}\n```",
                    },
                ],
            }
        )
    return rows


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def tiny_model(root: Path) -> Path:
    from hala_exp.core import model_dirs as models

    out = Path(root) / "tiny_lfm2"
    if not (out / "config.json").exists():
        models.build_tiny_model_dir(out, models.embedded_texts(), "lfm2")
    return out
