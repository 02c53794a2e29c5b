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

Memory is bounded by a batch of rows, not the corpus: translations are streamed (JSONL line by line, or
memory-mapped Arrow), the parallel mix is built on Arrow (``hala_exp.data.mixes``), kept pairs are written to
an Arrow file as they pass the filter, and the seeded shuffle permutes row indices (a numpy array) and copies
the rows in that order into ``corpus.arrow`` (what training reads) and ``corpus.jsonl`` (the same rows, for
inspection and JSONL readers). The duplicate filter keeps a set of 16-byte digests, one per kept pair.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hala_exp.core.schema import ConfigError
from hala_exp.core.stage import StageContext, StageResult
from hala_exp.data.arrow import BATCH_ROWS, turns_type, write_batches, write_rows
from hala_exp.data.jsonl import Quarantined, QuarantineLog, iter_jsonl
from hala_exp.data.messages import problem
from hala_exp.data.sources import MixConfig
from hala_exp.translation.config import LanguageConfig, PromptConfig, names

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

VERSIONS = ("datasets", "pyarrow")
FORMAT_VERSION = 1  # bump when this stage's code changes the bytes it writes (part of the fingerprint)
CORPUS = "corpus.jsonl"
CORPUS_ARROW = "corpus.arrow"
REJECTED = "rejected.jsonl"
PARALLEL_DIR = "parallel"  # the parallel mix's own directory (mix.arrow, rejects.jsonl)


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
    out = ctx.out_dir
    translated_sources: set[str] = set()
    counts: dict[str, dict[str, int]] = {}
    # The Arrow copy of the translations when the translate stage offers one (output "arrow"), else its JSONL.
    # No `translations` input: a corpus of parallel text alone (a stand-in teacher's training pairs).
    translations = None
    if "translations" in ctx.inputs:
        translations = ctx.inputs["translations"].get("arrow") or ctx.input("translations", "data")
    # Entries in input order: unusable rows (translations, then the parallel mix), then filtered pairs.
    with QuarantineLog(out / REJECTED) as rejects, QuarantineLog(out / f".filtered-{REJECTED}") as filtered:
        pairs = _all_pairs(translations, cfg, out, rejects, translated_sources)
        unshuffled = out / f".unshuffled-{CORPUS_ARROW}"
        rows = write_rows(unshuffled, _corpus_schema(), _counted(build_corpus(pairs, cfg, filtered), counts))
        filtered.close()
        rejects.add_file(filtered.path)
        filtered.path.unlink()
    if not rows:  # fail here, naming why, rather than inside training on an empty file
        unshuffled.unlink()
        raise ValueError(
            f"bilingual: no training pair left ({rejects.total} rejected: {rejects.reasons()}; see {rejects.path})"
        )
    _write_corpus(unshuffled, out, rows, cfg)
    unshuffled.unlink()

    reasons = rejects.reasons()
    metrics: dict[str, float | int] = {"rows": rows, "rejected": rejects.total}
    metrics.update({f"rows/{s}/{d}": n for s, per in counts.items() for d, n in per.items()})
    metrics.update({f"rejected/{r}": n for r, n in reasons.items()})
    log.info("bilingual corpus: %d pairs, %d rejected %s", rows, rejects.total, reasons)
    details = {
        "rows_per_source_direction": counts,
        "rejected_per_reason": reasons,
        "translated_sources": sorted(translated_sources),
        "rejected_file": REJECTED,
    }
    return StageResult(outputs={"data": CORPUS, "arrow": CORPUS_ARROW}, metrics=metrics, details=details)


def _all_pairs(
    translations: str | None, cfg: Config, out: Path, rejects: QuarantineLog, translated_sources: set[str]
) -> Iterator[Pair]:
    """Translated turns, then the parallel mix's pairs; the mix is built before anything streams, so a bad
    parallel source fails the stage before the filter runs, and its rejects follow the translations'."""
    built = None
    if cfg.parallel is not None:
        from hala_exp.data.mixes import build_mix

        built = build_mix(cfg.parallel, out / PARALLEL_DIR, target_language=cfg.language.code)
    files = _translation_files(Path(translations)) if translations is not None else []
    for pair in translated_pairs(files, set(cfg.roles), rejects):
        translated_sources.add(pair.source)
        yield pair
    if built is not None:
        rejects.add_file(built.rejects_path)
        for row in built.dataset:
            yield Pair(row["id"], row["source"], row["messages_en"][0]["content"], row["messages"][0]["content"])


def translated_pairs(files: list[Path], roles: set[str], rejects: QuarantineLog) -> Iterator[Pair]:
    """(English, target) text of every translated turn; rows whose turns do not line up are quarantined."""
    for file in files:
        for line, row in _translation_rows(file):
            if isinstance(row, Quarantined):
                rejects.add(row)
                continue
            reason = problem(row, None, keys=("messages_en", "messages")) or _turns_mismatch(row)
            if reason:
                rejects.add(Quarantined(str(file), line, reason, json.dumps(row, ensure_ascii=False, default=str)))
                continue
            source = row.get("source") if isinstance(row.get("source"), str) else file.stem
            for i, (e, x) in enumerate(zip(row["messages_en"], row["messages"])):
                if e["role"] in roles:
                    yield Pair(f"{row['id']}:{i}", source, e["content"], x["content"])


def _translation_files(path: Path) -> list[Path]:
    """The translate stage's output: one JSONL or Arrow file, or a directory of them."""
    if path.is_dir():
        files = sorted(path.rglob("*.arrow")) or sorted(path.rglob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"translations: no *.arrow or *.jsonl files under {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"translations: {path} not found")
    return [path]


def _translation_rows(file: Path) -> Iterator[tuple[int, Any]]:
    if file.suffix == ".arrow":
        import datasets

        yield from enumerate(datasets.Dataset.from_file(str(file)), start=1)
    else:
        yield from iter_jsonl(file)


def _turns_mismatch(row: dict) -> str | None:
    """Both sides are valid message lists (checked before); they must pair turn by turn."""
    en, xx = row["messages_en"], row["messages"]
    if len(en) != len(xx):
        return "turn_count_mismatch"
    if any(e["role"] != x["role"] for e, x in zip(en, xx)):
        return "turn_role_mismatch"
    return None


def build_corpus(pairs: Iterator[Pair], cfg: Config, rejects: QuarantineLog) -> Iterator[dict]:
    """Filter each pair once, then yield it in every configured direction."""
    from hala_exp.translation.gates import script_ratio

    seen: set[bytes] = set()
    code = cfg.language.code
    for n, pair in enumerate(pairs, start=1):
        reason = pair_rejection(pair.en, pair.xx, cfg.filter, cfg.language.script, script_ratio)
        if reason is None and cfg.filter.dedup:
            key = hashlib.sha256(json.dumps([pair.en.strip(), pair.xx.strip()], ensure_ascii=False).encode())
            digest = key.digest()[:16]  # a set of 16-byte digests: collisions are out of reach at corpus sizes
            reason = "duplicate" if digest in seen else None
            seen.add(digest)
        if reason:
            raw = json.dumps({"id": pair.id, "en": pair.en, code: pair.xx}, ensure_ascii=False)
            rejects.add(Quarantined(pair.source, n, reason, raw))
            continue
        for direction in cfg.directions:
            source_text, target_text = (pair.en, pair.xx) if direction == "en-xx" else (pair.xx, pair.en)
            label = f"en-{code}" if direction == "en-xx" else f"{code}-en"
            yield {
                "id": f"{pair.id}:{label}",
                "source": pair.source,
                "direction": label,
                "messages": _prompt_messages(source_text, cfg.prompt, cfg.language, direction)
                + [{"role": "assistant", "content": target_text}],
            }


def _counted(rows: Iterator[dict], counts: dict[str, dict[str, int]]) -> Iterator[dict]:
    for row in rows:
        per = counts.setdefault(row["source"], {})
        per[row["direction"]] = per.get(row["direction"], 0) + 1
        yield row


def _corpus_schema() -> pa.Schema:
    import pyarrow as pa

    fields = [("id", pa.string()), ("source", pa.string()), ("direction", pa.string()), ("messages", turns_type())]
    return pa.schema(fields)


def _write_corpus(unshuffled: Path, out: Path, rows: int, cfg: Config) -> None:
    """Copy the kept rows, in the seeded shuffle's order, into corpus.arrow and corpus.jsonl."""
    import datasets
    import numpy as np

    order = np.arange(rows)
    if cfg.shuffle:
        # the permutation random.shuffle gives a list of that length (it only swaps items by index)
        _rng(cfg.seed).shuffle(order)  # type: ignore[arg-type]
    ds = datasets.Dataset.from_file(str(unshuffled)).with_format("arrow")

    def batches():
        for start in range(0, rows, BATCH_ROWS):
            yield from ds.select(order[start : start + BATCH_ROWS])[:].to_batches()

    def jsonl_mirror(batches):
        with open(jsonl_tmp, "w", encoding="utf-8") as fh:
            for batch in batches:
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in batch.to_pylist())
                yield batch

    jsonl_tmp = out / f".{CORPUS}.tmp"
    try:
        write_batches(out / CORPUS_ARROW, _corpus_schema(), jsonl_mirror(batches()))
        jsonl_tmp.replace(out / CORPUS)
    finally:
        jsonl_tmp.unlink(missing_ok=True)


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
