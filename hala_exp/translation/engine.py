"""The translation engine: protect spans, split into segments, generate the missing segments in length-sorted
batches, rejoin and restore. Used by the translate stage and by ``translate_texts`` (eval, quantize)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hala_exp.translation import segments, spans
from hala_exp.translation.backends import Generation, Request, make_backend
from hala_exp.translation.config import BackendConfig, LanguageConfig, PromptConfig, names
from hala_exp.translation.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    protected: spans.Protected
    pieces: list[segments.Piece]

    def keys(self, key_fn) -> list[str]:
        return [key_fn(p.text) for p in self.pieces if p.translate]


class MemoryCache:
    """The segment cache of one call (``translate_texts``): dedup without files."""

    def __init__(self):
        self.entries: dict[str, list[int]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> list[int]:
        return self.entries[key]

    def add(self, records: list[tuple[str, list[int]]]) -> None:
        self.entries.update(records)


class Translator:
    def __init__(
        self,
        model: str,
        prompt: PromptConfig,
        language: LanguageConfig,
        direction: str,
        backend: BackendConfig,
        work_dir: str | Path | None = None,
    ):
        from hala_exp.core.model_dirs import load_tokenizer

        self.model, self.prompt, self.language, self.direction, self.cfg = model, prompt, language, direction, backend
        self.source_name, self.target_name = names(direction, language)
        self.work_dir = Path(work_dir) if work_dir else None
        self.tokenizer = load_tokenizer(model, trust_remote_code=backend.trust_remote_code)
        self.eos_ids = _eos_ids(model, self.tokenizer)
        self._backend = None
        self.ledger = Ledger()

    # ------------------------------------------------------------ text -> segments
    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prepare(self, text: str) -> Prepared:
        protected = (
            spans.protect(text, self.cfg.protect.kinds) if self.cfg.protect.enabled else spans.Protected(text, [])
        )
        pieces = segments.split(protected.text, self.count_tokens, self.cfg.max_segment_tokens)
        return Prepared(protected, pieces)

    @staticmethod
    def key(segment: str) -> str:
        # Direction, prompt and model are fixed per cache (the stage's fingerprint): the text is the key.
        return hashlib.sha256(segment.encode("utf-8")).hexdigest()[:32]

    def render(self, segment: str) -> str:
        messages = self.prompt.messages(segment, self.source_name, self.target_name)
        if not self.prompt.chat_template:
            return messages[-1]["content"]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, segment: str) -> list[int]:
        # A chat template writes its own special tokens; a plain prompt gets the tokenizer's (e.g. BOS).
        return self.tokenizer(self.render(segment), add_special_tokens=not self.prompt.chat_template)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    # ------------------------------------------------------------ generation
    def generate_missing(self, segment_texts: Iterable[str], cache, progress: bool = False) -> None:
        """Translate every segment whose key is not in ``cache`` (each distinct text once)."""
        todo: dict[str, str] = {}
        cached = 0
        for text in segment_texts:
            k = self.key(text)
            if k in cache or k in todo:
                cached += k in cache
                continue
            todo[k] = text
        self.ledger.cached_segments += cached
        if not todo:
            return
        requests = []
        for k, text in todo.items():
            n = self.count_tokens(text)
            limit = min(self.cfg.max_new_tokens, math.ceil(self.cfg.max_new_tokens_ratio * n) + 16)
            requests.append(Request(k, self.encode(text), limit))
        bar = _Progress(len(requests), progress, self.cfg.runtime.log_every_s)
        started = time.perf_counter()

        def on_done(gens: list[Generation]) -> None:
            cache.add([(g.key, g.token_ids) for g in gens])
            self.ledger.segments += len(gens)
            self.ledger.input_tokens += sum(g.prompt_tokens for g in gens)
            out = sum(len(g.token_ids) for g in gens)
            self.ledger.output_tokens += out
            bar.update(len(gens), out)

        try:
            self.backend.generate(requests, on_done)
        finally:
            self.ledger.seconds += time.perf_counter() - started
            bar.close()

    @property
    def backend(self):
        if self._backend is None:  # loaded on first use: a fully cached rerun never loads the model
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
            work = self.work_dir or Path.cwd()
            self._backend = make_backend(self.model, self.cfg, self.eos_ids, pad, work / "worker")
        return self._backend

    @property
    def devices(self) -> int:
        return (
            getattr(self._backend, "devices", 1)
            if self._backend
            else (self.cfg.tensor_parallel_size * self.cfg.data_parallel_size)
        )

    # ------------------------------------------------------------ segments -> text
    def assemble(self, prepared: Prepared, cache) -> tuple[str, str | None]:
        """(translation with markers, restored translation or None when spans cannot be restored)."""
        out = [self.decode(cache.get(self.key(p.text))) if p.translate else p.text for p in prepared.pieces]
        marked = segments.join(out)
        return marked, spans.restore(marked, prepared.protected.spans)


def _eos_ids(model: str, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen = Path(model) / "generation_config.json"
    if gen.is_file():
        value = json.loads(gen.read_text()).get("eos_token_id")
        ids |= set(value if isinstance(value, list) else [value] if value is not None else [])
    if not ids:
        raise ValueError(f"{model}: no end-of-sequence token id in its tokenizer or generation_config.json")
    return ids


class _Progress:
    """tqdm on a terminal (segments, output tokens/s, ETA); a log line every ``every_s`` otherwise."""

    def __init__(self, total: int, enabled: bool, every_s: float):
        self.total, self.done, self.tokens, self.every_s = total, 0, 0, every_s
        self.start = self.last = time.perf_counter()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="seg", desc="translate", dynamic_ncols=True)

    def update(self, n: int, tokens: int) -> None:
        self.done += n
        self.tokens += tokens
        now = time.perf_counter()
        rate = self.tokens / max(now - self.start, 1e-9)
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(out_tok_s=f"{rate:.1f}", refresh=False)
        elif now - self.last >= self.every_s or self.done == self.total:
            eta = (self.total - self.done) * (now - self.start) / max(self.done, 1)
            log.info("translated %d/%d segments, %.1f output tokens/s, ETA %.0f s", self.done, self.total, rate, eta)
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
