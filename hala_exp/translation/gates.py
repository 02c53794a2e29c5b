"""Quality gates on a translated turn: each returns a reason to reject, or None.

All gates look at prose only (protected spans removed from both sides), so a code-heavy turn is judged on
its words. Thresholds live in ``GateConfig`` (our choice; the paper does not publish its filters).

Most gates judge one turn alone (``check``). Two judge whether an output belongs to its source: ``numbers``
(the source's numbers are in the output) in ``check``, and ``collapsed`` (one output given for many distinct
sources), which needs the other translations of a shard: ``collapsed_outputs`` finds those outputs once per
shard and ``check(..., collapsed=...)`` rejects a turn whose output is one of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache

from hala_exp.translation.config import GateConfig

# English refusals a chat model writes instead of translating (our choice of phrases).
ENGLISH_REFUSALS = [
    r"\bI(?:'m| am) sorry,? (?:but )?I (?:can(?:'|no)t|am unable|won't)",
    r"\bI (?:can(?:'|no)t|won't|am unable to) (?:help|assist|translate|comply|provide)",
    r"\bAs an AI(?: language model)?\b",
]
_LOOP = re.compile(r"(.{1,40}?)\1+", re.S)
_SPACES = re.compile(r"\s+")
# A digit group separator between digits (",", Arabic thousands separator U+066C) and the Arabic decimal
# separator (U+066B); a number, not followed by an ordinal or decade suffix ("21st", "1990s").
_GROUPING = re.compile(r"(?<=\d)[,\u066c](?=\d{3}(?!\d))")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?!\d|\.\d|st\b|nd\b|rd\b|th\b|s\b)", re.I)


@lru_cache(maxsize=65536)
def char_script(ch: str) -> str:
    """The script of a letter from its Unicode name: 'ARABIC LETTER ALEF' -> 'ARABIC'; CJK -> 'HAN'."""
    name = unicodedata.name(ch, "")
    first = name.split(" ", 1)[0]
    return "HAN" if first == "CJK" else first


def script_ratio(text: str, script: str) -> float | None:
    """Share of letters in ``script``; None when the text has no letters."""
    # Per distinct character (a text has a few dozen), not per character: this runs on every translated turn.
    want, letters, hits = script.upper(), 0, 0
    for ch, n in Counter(text).items():
        if ch.isalpha():
            letters += n
            hits += n if char_script(ch) == want else 0
    return hits / letters if letters else None


def longest_loop(text: str) -> int:
    """Most consecutive repeats of any unit of 1-40 characters covering at least 12 characters."""
    best = 1
    for m in _LOOP.finditer(text):
        unit = m.group(1)
        count = len(m.group(0)) // len(unit)
        if len(m.group(0)) >= 12 and unit.strip():
            best = max(best, count)
    return best


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def numbers(text: str) -> set[str]:
    """The numbers of two or more digits in ``text``, written in ASCII digits: "١٬٢٠٠" and "1,200" -> {"1200"}."""
    digits = "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text).replace("\u066b", ".")
    return {n for n in _NUMBER.findall(_GROUPING.sub("", digits)) if sum(c.isdigit() for c in n) >= 2}


def collapsed_outputs(pairs: Iterable[tuple[str, str]], cfg: GateConfig) -> frozenset[str]:
    """The outputs (normalised) that ``cfg.collapse_min_sources`` or more distinct sources were translated to.

    ``pairs`` are the (source, output) turns of one shard. Only sources of at least ``cfg.min_chars_for_ratio``
    characters count: short ones ("Thanks!", "Thank you.") share a translation legitimately."""
    if not cfg.enabled or cfg.collapse_min_sources is None:
        return frozenset()
    sources_of: dict[str, set[str]] = {}
    for source, output in pairs:
        src, out = _norm(source), _norm(output)
        if out and len(src) >= cfg.min_chars_for_ratio:
            sources_of.setdefault(out, set()).add(src.rstrip(" .!?؟"))
    return frozenset(out for out, srcs in sources_of.items() if len(srcs) >= cfg.collapse_min_sources)


def check(
    source: str,
    output: str,
    target_script: str,
    cfg: GateConfig,
    refusal_patterns: Sequence[str] = (),
    collapsed: Collection[str] = frozenset(),
) -> str | None:
    """The first gate ``output`` fails (empty, refusal, copy, script, length, loop, numbers, collapsed), or
    None. ``collapsed``: ``collapsed_outputs`` of the turns translated beside this one."""
    if not cfg.enabled:
        return None
    src, out = _norm(source), _norm(output)
    src_letters = sum(n for ch, n in Counter(src).items() if ch.isalpha())
    if not out:
        return "empty" if src else None
    if cfg.refusal:
        patterns = [re.compile(p, re.I) for p in (*ENGLISH_REFUSALS, *refusal_patterns)]
        # A refusal in the source (in either language) is text to translate, not a refusal.
        if any(rx.search(output) for rx in patterns) and not any(rx.search(source) for rx in patterns):
            return "refusal"
    if src_letters and len(src) >= cfg.min_chars_for_ratio and out == src:
        return "copy"
    ratio = script_ratio(out, target_script)
    if src_letters >= 3 and (ratio is None or ratio < cfg.min_target_script_ratio):
        return "script"
    if len(src) >= cfg.min_chars_for_ratio:
        r = len(out) / len(src)
        if not cfg.min_length_ratio <= r <= cfg.max_length_ratio:
            return "length_ratio"
    loops = longest_loop(out)
    if loops >= cfg.max_repeats and loops > longest_loop(src):
        return "repetition"
    if cfg.numbers and not numbers(source) <= numbers(output):
        return "numbers"
    if out in collapsed:
        return "collapsed"
    return None
