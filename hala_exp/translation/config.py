"""Typed schemas of the translation config groups: ``translator.prompt``, ``language`` and ``translate``.

``translate`` is split by owner: ``translate.engine`` (``EngineConfig``: backend, dtype, limits, parallelism)
is what other stages may borrow; the rest (``TranslateConfig``: spans, gates, shards, prices,
job sharing) belongs to the translate stage alone. Fields marked ``NOT_FINGERPRINTED`` (runtime knobs, the
price) change speed, cost estimates or who does the work, never a translation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hala_exp.core.schema import NOT_FINGERPRINTED, ConfigError, in_range


@dataclass
class PromptConfig:
    """How a source text becomes the translator's input, and where its answer ends. ``template`` takes
    ``{source_name}``, ``{target_name}`` and ``{text}``; ``chat_template: true`` wraps it as the user turn of
    the tokenizer's chat template with the generation prompt, ``false`` sends it as plain text. The two
    decoding settings belong to the prompt, not to the shared engine: a base model's few-shot prompt needs
    them, and the chat-tuned translator that borrows the same engine must not get them."""

    template: str
    chat_template: bool = True
    system: str | None = None  # an optional system turn (chat_template only)
    # A segment's generation ends at the first token whose text holds a line break (dropped, like an EOS): the
    # answer to a few-shot plain-text prompt ("English: ...\nArabic:") is one line, and a base model goes on to
    # write the next example. Segments are then cut at every line break, so no source line is lost.
    stop_at_newline: bool = False
    # Lowers every token already in the prompt or the output (a positive logit divided by it, a negative one
    # multiplied, as vLLM does; 1.0: off). A base model on a few-shot prompt loops without it: Gemma 3 270M's
    # chrF++ went from 16.1 to 23.5 with 1.2 (benchmarks/teacher_candidates.py, 10 FLORES sentences).
    repetition_penalty: float = 1.0

    def check(self) -> None:
        if "{text}" not in self.template:
            raise ConfigError(f"template: must contain {{text}}, got {self.template!r}")
        try:
            self.template.format(source_name="", target_name="", text="")
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(
                f"template: only {{source_name}}, {{target_name}} and {{text}} are allowed ({e})"
            ) from None
        if self.system is not None and not self.chat_template:
            raise ConfigError("system: needs chat_template: true")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty: {self.repetition_penalty} must be > 0 (1.0: off)")

    def messages(self, text: str, source_name: str, target_name: str) -> list[dict]:
        """The chat turns of one request: what the translator is trained on (bilingual) and asked (engine)."""
        user = self.template.format(source_name=source_name, target_name=target_name, text=text)
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": user}
        ]


@dataclass
class LanguageConfig:
    """The target language of the recipe (``language=ar``, ``language=sw``)."""

    code: str  # ISO 639-1, used in row keys and metric names
    name: str  # English name, what prompts say ("Arabic")
    flores: str  # FLORES-200 code of the evaluation text (arb_Arab)
    script: str  # Unicode script of the language's letters: Arabic, Latin, Cyrillic, Devanagari, Han, ...
    # Phrases that mark a refusal instead of a translation, in this language (regular expressions).
    refusal_patterns: list[str] = field(default_factory=list)


@dataclass
class GateConfig:
    """Quality gates on each translated turn (thresholds: our choice, not published by the paper)."""

    enabled: bool = True
    min_target_script_ratio: float = 0.5  # share of letters in the target script
    min_length_ratio: float = 0.3  # output chars / source chars (prose only, spans removed)
    max_length_ratio: float = 3.0
    min_chars_for_ratio: int = 20  # shorter sources skip the length and copy gates (names, numbers)
    max_repeats: int = 8  # a unit of text repeated this many times in a row is a generation loop
    refusal: bool = True
    # Every number of two or more digits in the source (Arabic-Indic digits read as digits, grouping commas
    # dropped) must appear in the output: a translation without them cannot be this source's. Single digits
    # and ordinals ("1st") are exempt, as a translator may spell them out.
    numbers: bool = True
    # One output text given for this many distinct sources (each of at least min_chars_for_ratio characters)
    # in one shard is a collapsed translator, not a translation: every such row is rejected. null: off.
    collapse_min_sources: int | None = 3

    def check(self) -> None:
        in_range("min_target_script_ratio", self.min_target_script_ratio, 0.0, 1.0)
        if self.collapse_min_sources is not None and self.collapse_min_sources < 2:
            raise ConfigError(f"collapse_min_sources: {self.collapse_min_sources} must be >= 2 or null")
        if not 0 <= self.min_length_ratio < self.max_length_ratio:
            raise ConfigError(f"min_length_ratio: must be >= 0 and below max_length_ratio ({self.max_length_ratio})")
        if self.max_repeats < 2:
            raise ConfigError(f"max_repeats: {self.max_repeats} must be >= 2")


@dataclass
class ProtectConfig:
    """Spans kept out of the translator and put back byte-exact."""

    enabled: bool = True
    kinds: list[str] = field(
        default_factory=lambda: [
            "code_fence",
            "math_block",
            "inline_code",
            "math_inline",
            "latex_command",
            "url",
            "email",
            "placeholder",
        ]
    )
    # Reject rows whose protected share of characters exceeds this (the paper dropped code from Hermes-3,
    # [S] reviews); null keeps them.
    max_protected_ratio: float | None = None

    def check(self) -> None:
        from hala_exp.translation.spans import KINDS

        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ConfigError(f"kinds: unknown {unknown}; allowed values: {list(KINDS)}")
        in_range("max_protected_ratio", self.max_protected_ratio, 0.0, 1.0)


@dataclass
class EngineRuntime:
    """Where and how fast the engine runs, never fingerprinted: greedy search over the same logits, so it moves a
    translation only through float rounding (batch shapes; an FP8 checkpoint's 8-bit activations turn such
    rounding into different tokens more often: tests/test_translation_engine.py, benchmarks/few_shot_prefix.py)."""

    # Prompts handed to one generate call: one padded batch on transformers; on vLLM one chunk that the engine
    # schedules itself (continuous batching) and whose results stream back together.
    generate_batch_size: int = field(default=16, metadata=NOT_FINGERPRINTED)
    device: str = field(default="auto", metadata=NOT_FINGERPRINTED)  # auto | cpu | cuda | cuda:1 (transformers)
    # transformers: the tokens all prompts of a call share (a few-shot prompt's examples) are run once and their
    # KV cache reused by every row (attention-only models; vLLM caches prefixes itself).
    prefix_cache: bool = field(default=True, metadata=NOT_FINGERPRINTED)
    worker_python: str | None = field(default=None, metadata=NOT_FINGERPRINTED)  # interpreter with vllm (env B)
    worker_timeout_s: float | None = field(default=None, metadata=NOT_FINGERPRINTED)  # per window, vllm only
    progress: bool = field(default=True, metadata=NOT_FINGERPRINTED)  # tqdm on a terminal, log lines otherwise
    log_every_s: float = field(default=30.0, metadata=NOT_FINGERPRINTED)

    def check(self) -> None:
        if self.generate_batch_size < 1:
            raise ConfigError(f"generate_batch_size: {self.generate_batch_size} must be >= 1")


@dataclass
class EngineConfig:
    """``translate.engine``: which engine generates and with what limits. The translate stage owns it;
    quantize validation and eval borrow it (``${translate.engine}``) and nothing else of ``translate``."""

    name: Literal["transformers", "vllm"] = "transformers"
    dtype: str = "auto"  # torch dtype name or auto
    max_new_tokens: int = 512  # cap per segment
    # Per segment: at most ratio x source tokens are generated (bounds runaway loops); our choice.
    max_new_tokens_ratio: float = 4.0
    max_segment_tokens: int = 256  # longer texts are split at paragraph/sentence boundaries under this budget
    trust_remote_code: bool = False
    tensor_parallel_size: int = 1  # vllm
    data_parallel_size: int = 1  # vllm
    gpu_memory_utilization: float = 0.9  # vllm
    max_model_len: int | None = None  # vllm
    runtime: EngineRuntime = field(default_factory=EngineRuntime, metadata=NOT_FINGERPRINTED)

    def check(self) -> None:
        for key in ("max_new_tokens", "max_segment_tokens", "tensor_parallel_size", "data_parallel_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: {getattr(self, key)} must be >= 1")
        if self.max_new_tokens_ratio <= 0:
            raise ConfigError(f"max_new_tokens_ratio: {self.max_new_tokens_ratio} must be > 0")
        in_range("gpu_memory_utilization", self.gpu_memory_utilization, 0.05, 1.0)
        if self.name == "transformers" and (self.tensor_parallel_size > 1 or self.data_parallel_size > 1):
            raise ConfigError(
                "tensor_parallel_size: parallelism needs name: vllm (the transformers backend uses one device)"
            )

    @property
    def devices(self) -> int:
        return self.tensor_parallel_size * self.data_parallel_size


@dataclass
class CorpusRuntime:
    """How jobs share the stage's work; never changes the output, never fingerprinted."""

    window_shards: int = field(default=8, metadata=NOT_FINGERPRINTED)  # shards translated together (batching)
    lease_heartbeat_s: float = field(default=30.0, metadata=NOT_FINGERPRINTED)  # a live job renews its leases
    # A lease not renewed for this long belongs to a dead job and is taken over (our choice: 10 heartbeats).
    lease_stale_s: float = field(default=300.0, metadata=NOT_FINGERPRINTED)

    def check(self) -> None:
        if self.window_shards < 1:
            raise ConfigError(f"window_shards: {self.window_shards} must be >= 1")
        if not 0 < self.lease_heartbeat_s < self.lease_stale_s:
            raise ConfigError(
                f"lease_heartbeat_s: {self.lease_heartbeat_s} must be > 0 and below "
                f"lease_stale_s ({self.lease_stale_s})"
            )


@dataclass
class TranslateConfig:
    """The ``translate`` config group, owned by the translate stage: the engine plus what only a corpus
    translation needs (protected spans, gates, shards, cost, job sharing). The row limit is the mix's
    ``max_chars`` (``hala_exp.data.messages``): one limit, applied where rows are read."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    shard_size: int = 256  # rows per output shard: the unit of exactly-once work (defines the artifact's layout)
    price_per_device_hour_usd: float = field(default=0.0, metadata=NOT_FINGERPRINTED)  # the ledger's estimate
    protect: ProtectConfig = field(default_factory=ProtectConfig)
    gates: GateConfig = field(default_factory=GateConfig)
    runtime: CorpusRuntime = field(default_factory=CorpusRuntime, metadata=NOT_FINGERPRINTED)

    def check(self) -> None:
        if self.shard_size < 1:
            raise ConfigError(f"shard_size: {self.shard_size} must be >= 1")


def names(direction: str, language: LanguageConfig) -> tuple[str, str]:
    """(source_name, target_name) for a direction."""
    if direction == "en-xx":
        return "English", language.name
    if direction == "xx-en":
        return language.name, "English"
    raise ConfigError(f"direction: {direction!r} is not allowed; allowed values: ['en-xx', 'xx-en']")


def target_script(direction: str, language: LanguageConfig) -> str:
    return language.script if direction == "en-xx" else "Latin"
