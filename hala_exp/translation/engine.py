"""The translation engine: protect spans, split into segments, generate the missing segments in length-sorted
batches, rejoin and restore, in one call (``Translator.translate``) used by the translate stage, by
``translate_texts`` (eval) and by quantize's validation."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hala_exp.translation import segments, spans
from hala_exp.translation.backends import Generation, Request, make_backend
from hala_exp.translation.config import EngineConfig, LanguageConfig, PromptConfig, ProtectConfig, names
from hala_exp.translation.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    protected: spans.Protected
    pieces: list[segments.Piece]


@dataclass
class Translation:
    """One text through the engine."""

    source: str
    prose: str  # the source with protected spans replaced by markers (what the translator saw)
    marked: str | None  # the translation with markers; None when the text was not sent (``skipped``)
    text: str | None  # markers restored; None when the translator lost a span or the text was skipped
    spans: list = field(default_factory=list)  # the protected spans (for a lenient restore)
    skipped: str | None = None  # why the text was not translated (code_heavy)


class Translator:
    """The engine: ``translate(texts, cache)`` protects spans, splits segments, generates the segments the
    cache lacks in length-sorted batches, rejoins and restores. The stage, eval and quantize validation all
    call it; the backend (model) is loaded on first use and kept for the translator's lifetime."""

    def __init__(
        self,
        model: str,
        prompt: PromptConfig,
        language: LanguageConfig,
        direction: str,
        engine: EngineConfig,
        protect: ProtectConfig | None = None,
        work_dir: str | Path | None = None,
    ):
        self.model, self.prompt, self.language, self.direction, self.cfg = model, prompt, language, direction, engine
        self.protect = protect if protect is not None else ProtectConfig()
        self.source_name, self.target_name = names(direction, language)
        self.work_dir = Path(work_dir) if work_dir else None
        self.tokenizer = shared_tokenizer(model, engine.trust_remote_code)
        self.eos_ids = _eos_ids(model, self.tokenizer)
        if prompt.stop_at_newline:  # a line break ends a segment as an EOS does, on both backends (cut_at_eos)
            self.eos_ids |= _newline_ids(model, engine.trust_remote_code)
        self._backend = None
        self._prepared: dict[str, Prepared] = {}  # a bounded memo of ``prepare`` (least recent out first)
        self._starts_seen = (0, 0.0)  # backend start-ups already in a ledger

    # ------------------------------------------------------------ the one call
    def translate(self, texts: list[str], cache) -> tuple[list[Translation], Ledger]:
        """Translations of ``texts`` (input order) and what this call spent. Generated segments go to
        ``cache`` batch by batch (with their cost), so a call killed half-way keeps them."""
        ledger = Ledger()
        prepared = {t: self.prepare(t) for t in dict.fromkeys(texts)}
        heavy = {t for t, p in prepared.items() if self._heavy(t, p)}
        self._generate_missing(
            (piece.text for t, p in prepared.items() if t not in heavy for piece in p.pieces if piece.translate),
            cache,
            ledger,
        )
        wanted = (x.text for t, p in prepared.items() if t not in heavy for x in p.pieces if x.translate)
        keys = list(dict.fromkeys(self.key(text) for text in wanted))
        decoded = dict(zip(keys, self.decode_many([cache.get(k) for k in keys])))
        out = []
        for t in texts:
            p = prepared[t]
            if t in heavy:
                out.append(Translation(t, p.protected.text, None, None, p.protected.spans, "code_heavy"))
                continue
            pieces = [decoded[self.key(x.text)] if x.translate else x.text for x in p.pieces]
            marked = segments.join(pieces)
            restored = spans.restore(marked, p.protected.spans)
            out.append(Translation(t, p.protected.text, marked, restored, p.protected.spans))
        return out, ledger

    def segments_of(self, text: str) -> list[str]:
        """The segments ``translate`` would generate for ``text`` (none for a code-heavy text): the plan's input."""
        p = self.prepare(text)
        return [] if self._heavy(text, p) else [x.text for x in p.pieces if x.translate]

    def generate(self, segment_texts: Iterable[str], cache) -> Ledger:
        """Generate the segments ``cache`` lacks (each distinct text once); what it spent."""
        ledger = Ledger()
        self._generate_missing(segment_texts, cache, ledger)
        return ledger

    # ------------------------------------------------------------ text -> segments
    def _heavy(self, text: str, p: Prepared) -> bool:
        limit = self.protect.max_protected_ratio
        return limit is not None and bool(text) and p.protected.protected_chars / len(text) > limit

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prepare(self, text: str) -> Prepared:
        # Texts repeat across rows (system prompts, boilerplate): recent ones are prepared once.
        hit = self._prepared.pop(text, None) or self._prepare(text)
        self._prepared[text] = hit  # most recent last
        if len(self._prepared) > 4096:
            del self._prepared[next(iter(self._prepared))]
        return hit

    def _prepare(self, text: str) -> Prepared:
        protected = spans.protect(text, self.protect.kinds) if self.protect.enabled else spans.Protected(text, [])
        pieces = segments.split(
            protected.text, self.count_tokens, self.cfg.max_segment_tokens, single_line=self.prompt.stop_at_newline
        )
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
        return self._token_ids([self.render(segment)], special=not self.prompt.chat_template)[0]

    def _token_ids(self, texts: list[str], special: bool) -> list[list[int]]:
        """Token ids of many texts in one batched call (the Rust tokenizer's threads, no per-call overhead)."""
        if not texts:
            return []
        return self.tokenizer(texts, add_special_tokens=special)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def decode_many(self, ids: list[list[int]]) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)] if ids else []

    # ------------------------------------------------------------ generation
    def _generate_missing(self, segment_texts: Iterable[str], cache, ledger: Ledger) -> None:
        """Translate every segment whose key is not in ``cache`` (each distinct text once)."""
        todo: dict[str, str] = {}
        seen: set[str] = set()
        for text in segment_texts:
            k = self.key(text)
            if k in seen:
                continue
            seen.add(k)
            if k in cache:
                ledger.cached_segments += 1
            else:
                todo[k] = text
        if not todo:
            return
        requests = self.requests(todo)
        backend = self.backend()
        bar = _Progress(len(requests), self.cfg.runtime.progress, self.cfg.runtime.log_every_s)
        last = [time.perf_counter()]

        def on_done(gens: list[Generation]) -> None:
            now = time.perf_counter()
            spent = Ledger(
                segments=len(gens),
                input_tokens=sum(g.prompt_tokens for g in gens),
                output_tokens=sum(len(g.token_ids) for g in gens),
                seconds=now - last[0],
            )
            last[0] = now
            cache.add([(g.key, g.token_ids) for g in gens], spent)
            ledger.add(spent)
            bar.update(len(gens), spent.output_tokens)

        try:
            backend.generate(requests, on_done)
        finally:
            bar.close()
            # Start-ups since the last call: a model load here, or a vLLM worker (re)started inside generate.
            now_seen = (getattr(backend, "starts", 0), getattr(backend, "start_seconds", 0.0))
            starts = Ledger(
                engine_starts=now_seen[0] - self._starts_seen[0], startup_seconds=now_seen[1] - self._starts_seen[1]
            )
            self._starts_seen = now_seen
            if starts.engine_starts:
                cache.record(starts)
                ledger.add(starts)

    def requests(self, segments: dict[str, str]) -> list[Request]:
        """The backend's requests for ``segments`` (key -> text): each prompt tokenised once, each with a limit
        of ``max_new_tokens_ratio`` times its own length (plus 16), capped at ``max_new_tokens``."""
        prompts = self._token_ids([self.render(t) for t in segments.values()], special=not self.prompt.chat_template)
        # The segment's length is its prompt's less the prompt around it (one tokenization, not two).
        around = len(self.encode(""))
        return [
            Request(k, ids, min(self.cfg.max_new_tokens, math.ceil(self.cfg.max_new_tokens_ratio * n) + 16))
            for k, ids, n in ((k, ids, max(len(ids) - around, 1)) for k, ids in zip(segments, prompts))
        ]

    def backend(self):
        """The generation backend, started on first use (a fully cached call never loads the model) and kept."""
        if self._backend is None:
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)
            work = self.work_dir or Path.cwd()
            self._backend = make_backend(
                self.model, self.cfg, self.eos_ids, pad, work / "worker", self.prompt.repetition_penalty
            )
        return self._backend

    def close(self) -> None:
        """Stop the backend (a vLLM worker process); the next call starts a new one."""
        close = getattr(self._backend, "close", None)
        if close is not None:
            close()
        self._backend = None
        self._starts_seen = (0, 0.0)

    @property
    def devices(self) -> int:
        return getattr(self._backend, "devices", self.cfg.devices)


def _eos_ids(model: str, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen = Path(model) / "generation_config.json"
    if gen.is_file():
        value = json.loads(gen.read_text()).get("eos_token_id")
        ids |= set(value if isinstance(value, list) else [value] if value is not None else [])
    if not ids:
        raise ValueError(f"{model}: no end-of-sequence token id in its tokenizer or generation_config.json")
    return ids


@functools.lru_cache(maxsize=4)
def shared_tokenizer(model: str, trust_remote_code: bool = False):
    """One tokenizer per model directory for the process's translators, which only encode and decode with it
    (never change it): Gemma 3's 262k-token tokenizer takes ~5 s to load on 2 cores, and one run's quantize,
    eval and translate steps build several translators of one directory."""
    from hala_exp.core.model_dirs import load_tokenizer

    return load_tokenizer(model, trust_remote_code=trust_remote_code)


@functools.lru_cache(maxsize=4)
def _newline_ids(model: str, trust_remote_code: bool) -> frozenset[int]:
    r"""Every token whose text holds a line break ("\n", "\n\n", ".\n", a byte-fallback <0x0A>). The whole
    vocabulary is decoded in one batched call: about a second for Gemma 3's 262k tokens on 2 CPU cores."""
    tokenizer = shared_tokenizer(model, trust_remote_code)
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return frozenset(i for i, text in enumerate(texts) if "\n" in text)


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
