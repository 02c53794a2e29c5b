"""bilingual stage: translated instructions + a parallel corpus -> EN->XX and XX->EN translator training pairs.

The Hala report turns the FP8 teacher's translations of Open-Orca into bilingual tuples
<instruction_en, instruction_ar, response_en, response_ar> and mixes them with filtered OPUS-100 into a 1.26M
example corpus on which LFM2-1.2B learns to translate in both directions ([S] reviews, ../shared/PAPER.md).

Every translated turn (``messages_en[i]`` / ``messages[i]``, system, user and assistant alike) and every
parallel pair gives one training pair per direction::

    {"id", "source", "direction": "en-ar" | "ar-en",
     "messages": [{"role": "user", "content": <prompt with the source text>},
                  {"role": "assistant", "content": <target text>}]}

The filter (thresholds in ``FilterConfig``; the paper does not publish its own, so all are our choice) rejects,
in this order: an empty side; a side longer than ``max_chars``; identical sides (an untranslated copy); a
target-language side with too few letters in the language's script, or an English side with too few Latin
letters; a length ratio (target chars / English chars) outside [min, max] when the English side has at least
``min_chars_for_ratio`` characters; a pair already seen (same direction, same texts). Rejected pairs go to
``rejected.jsonl`` with their reason; counts per source, direction and reason go to the manifest and metrics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hala_exp.core.schema import ConfigError
from hala_exp.core.stage import StageContext, StageResult
from hala_exp.data.jsonl import Quarantined, read_jsonl, write_jsonl, write_quarantine
from hala_exp.data.sources import MixConfig
from hala_exp.translation.config import LanguageConfig, PromptConfig, names

log = logging.getLogger(__name__)

VERSIONS = ("datasets",)  # reads hub parallel corpora; the rest is plain Python
CORPUS = "corpus.jsonl"
REJECTED = "rejected.jsonl"


@dataclass
class FilterConfig:
    """Pair filter (our choice throughout: the paper filtered OPUS-100 but does not publish how)."""

    max_chars: int = 8000  # per side; longer pairs would be truncated by training anyway
    min_target_script_ratio: float = 0.5  # share of the target side's letters in the language's script
    min_english_latin_ratio: float = 0.5  # share of the English side's letters that are Latin
    min_length_ratio: float = 0.3  # target chars / English chars
    max_length_ratio: float = 3.0
    min_chars_for_ratio: int = 20  # shorter English sides skip the ratio test (names, numbers, "Yes.")
    dedup: bool = True

    def check(self) -> None:
        for key in ("min_target_script_ratio", "min_english_latin_ratio"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}: {getattr(self, key)} is outside [0, 1]")
        if not 0 <= self.min_length_ratio < self.max_length_ratio:
            raise ConfigError(f"min_length_ratio: must be >= 0 and below max_length_ratio ({self.max_length_ratio})")
        if self.max_chars < 1:
            raise ConfigError(f"max_chars: {self.max_chars} must be >= 1")


@dataclass
class Config:
    prompt: PromptConfig
    language: LanguageConfig
    parallel: MixConfig | None = None  # human parallel text mixed in (OPUS-100 in the paper); null: none
    directions: list[Literal["en-xx", "xx-en"]] = field(default_factory=lambda: ["en-xx", "xx-en"])
    roles: list[Literal["system", "user", "assistant"]] = field(
        default_factory=lambda: ["system", "user", "assistant"]
    )  # which translated turns give pairs
    filter: FilterConfig = field(default_factory=FilterConfig)
    shuffle: bool = True  # one seeded shuffle of the whole corpus, so sources and directions interleave
    seed: int = 0

    def check(self) -> None:
        if not self.directions:
            raise ConfigError("directions: at least one of ['en-xx', 'xx-en']")
        if len(set(self.directions)) != len(self.directions):
            raise ConfigError(f"directions: {self.directions} lists a direction twice")
        if not self.roles:
            raise ConfigError("roles: at least one of ['system', 'user', 'assistant']")


def input_files(config: Config) -> list[str]:
    from hala_exp.data import sources

    return sources.input_files(config.parallel) if config.parallel else []


@dataclass
class Pair:
    id: str
    source: str
    en: str
    xx: str


def run(ctx: StageContext) -> StageResult:
    cfg: Config = ctx.config
    rejects: list[Quarantined] = []
    pairs = list(translated_pairs(ctx.input("translations", "data"), set(cfg.roles), rejects))
    translated_sources = sorted({p.source for p in pairs})
    if cfg.parallel is not None:
        from hala_exp.data.sources import load_mix

        rows, bad, _ = load_mix(cfg.parallel, target_language=cfg.language.code)
        rejects.extend(bad)
        pairs.extend(
            Pair(r["id"], r["source"], r["messages_en"][0]["content"], r["messages"][0]["content"]) for r in rows
        )

    corpus, filtered = build_corpus(pairs, cfg)
    rejects.extend(filtered)
    if cfg.shuffle:
        _rng(cfg.seed).shuffle(corpus)
    write_jsonl(ctx.out_dir / CORPUS, corpus)
    write_quarantine(ctx.out_dir / REJECTED, rejects)

    counts: dict[str, dict[str, int]] = {}
    for row in corpus:
        per = counts.setdefault(row["source"], {})
        per[row["direction"]] = per.get(row["direction"], 0) + 1
    reasons: dict[str, int] = {}
    for q in rejects:
        reasons[q.reason] = reasons.get(q.reason, 0) + 1
    metrics: dict[str, float | int] = {"rows": len(corpus), "rejected": len(rejects)}
    metrics.update({f"rows/{s}/{d}": n for s, per in counts.items() for d, n in per.items()})
    metrics.update({f"rejected/{r}": n for r, n in reasons.items()})
    log.info("bilingual corpus: %d pairs, %d rejected %s", len(corpus), len(rejects), reasons)
    details = {
        "rows_per_source_direction": counts,
        "rejected_per_reason": reasons,
        "translated_sources": translated_sources,
        "rejected_file": REJECTED,
    }
    return StageResult(outputs={"data": CORPUS}, metrics=metrics, details=details)


def translated_pairs(path: str, roles: set[str], rejects: list[Quarantined]) -> Iterator[Pair]:
    """(English, target) text of every translated turn; rows whose turns do not line up are quarantined."""
    for file in _jsonl_files(Path(path)):
        got = read_jsonl(file, required=("id",))
        rejects.extend(got.rejects)
        for pos, row in enumerate(got.rows, start=1):
            xx, en = row.get("messages"), row.get("messages_en")
            reason = _turns_mismatch(en, xx)
            if reason:
                rejects.append(Quarantined(str(file), pos, reason, json.dumps(row, ensure_ascii=False)))
                continue
            source = row.get("source") if isinstance(row.get("source"), str) else Path(file).stem
            for i, (e, x) in enumerate(zip(en, xx)):
                if e["role"] in roles:
                    yield Pair(f"{row['id']}:{i}", source, e["content"], x["content"])


def _jsonl_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"translations: no *.jsonl files under {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"translations: {path} not found")
    return [path]


def _turns_mismatch(en: Any, xx: Any) -> str | None:
    if not isinstance(en, list) or not en:
        return "missing_or_empty:messages_en"
    if not isinstance(xx, list) or not xx:
        return "missing_or_empty:messages"
    if len(en) != len(xx):
        return "turn_count_mismatch"
    for e, x in zip(en, xx):
        if not (isinstance(e, dict) and isinstance(x, dict)):
            return "turn_not_an_object"
        if not (isinstance(e.get("content"), str) and isinstance(x.get("content"), str)):
            return "turn_content_not_string"
        if e.get("role") != x.get("role"):
            return "turn_role_mismatch"
    return None


def build_corpus(pairs: list[Pair], cfg: Config) -> tuple[list[dict], list[Quarantined]]:
    """Filter each pair once, then write it in every configured direction."""
    from hala_exp.translation.gates import script_ratio

    corpus, rejects, seen = [], [], set()
    code = cfg.language.code
    for n, pair in enumerate(pairs, start=1):
        reason = pair_rejection(pair.en, pair.xx, cfg.filter, cfg.language.script, script_ratio)
        if reason is None and cfg.filter.dedup:
            key = hashlib.sha256(json.dumps([pair.en.strip(), pair.xx.strip()], ensure_ascii=False).encode()).digest()
            reason = "duplicate" if key in seen else None
            seen.add(key)
        if reason:
            raw = json.dumps({"id": pair.id, "en": pair.en, code: pair.xx}, ensure_ascii=False)
            rejects.append(Quarantined(pair.source, n, reason, raw))
            continue
        for direction in cfg.directions:
            source_text, target_text = (pair.en, pair.xx) if direction == "en-xx" else (pair.xx, pair.en)
            label = f"en-{code}" if direction == "en-xx" else f"{code}-en"
            corpus.append(
                {
                    "id": f"{pair.id}:{label}",
                    "source": pair.source,
                    "direction": label,
                    "messages": _prompt_messages(source_text, cfg.prompt, cfg.language, direction)
                    + [{"role": "assistant", "content": target_text}],
                }
            )
    return corpus, rejects


def pair_rejection(en: str, xx: str, f: FilterConfig, script: str, script_ratio) -> str | None:
    """The first filter rule the pair fails, or None (rules in the module docstring)."""
    en_s, xx_s = en.strip(), xx.strip()
    if not en_s or not xx_s:
        return "empty"
    if len(en_s) > f.max_chars or len(xx_s) > f.max_chars:
        return "too_long"
    if en_s == xx_s:
        return "identical_sides"
    target_share = script_ratio(xx_s, script)
    if target_share is not None and target_share < f.min_target_script_ratio:
        return "target_script"
    english_share = script_ratio(en_s, "Latin")
    if english_share is not None and english_share < f.min_english_latin_ratio:
        return "english_script"
    if len(en_s) >= f.min_chars_for_ratio:
        ratio = len(xx_s) / len(en_s)
        if not f.min_length_ratio <= ratio <= f.max_length_ratio:
            return "length_ratio"
    return None


def _prompt_messages(text: str, prompt: PromptConfig, language: LanguageConfig, direction: str) -> list[dict]:
    return prompt.messages(text, *names(direction, language))


def _rng(seed: int) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"bilingual:{seed}".encode()).digest()[:8], "big"))
