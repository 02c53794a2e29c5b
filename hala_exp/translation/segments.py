"""Split a (protected) text into pieces the translator can take, and rejoin them in order.

Paragraphs are the first cut; a paragraph over the token budget is cut at line and sentence ends and the
sentences are packed greedily under the budget; a sentence still over it is cut between words. With
``single_line`` (an engine that stops at a line break) every line is its own block, never packed with the next,
and only sentence and word cuts apply inside it. Whitespace between pieces (line breaks included), and pieces
with no letters (markers, numbers, punctuation), are kept verbatim, so the rejoined translation keeps the
source's layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_PARAGRAPH_BREAK = re.compile(r"(\n[ \t]*\n\s*)")
_LINE_BREAK = re.compile(r"(\n)")
# A sentence ends with . ! ? (and Arabic/CJK marks), maybe closing quotes/brackets, then whitespace.
_SENTENCE_END = re.compile(r"[.!?\u061f\u3002\u2026]+[\"'\u00bb\u201d)\]]*(\s+)")
_WORD_BREAK = re.compile(r"(\s+)")


@dataclass
class Piece:
    text: str
    translate: bool  # False: kept verbatim (whitespace, markers, numbers)


def has_letters(text: str) -> bool:
    return any(c.isalpha() for c in text)


def split(text: str, count_tokens: Callable[[str], int], budget: int, *, single_line: bool = False) -> list[Piece]:
    """``single_line``: no piece to translate holds a line break (an engine that stops at one would drop the
    lines after the first)."""
    pieces: list[Piece] = []
    for i, para in enumerate(_PARAGRAPH_BREAK.split(text)):
        if i % 2:
            pieces.append(Piece(para, False))
        else:
            for block, translate in _lines(para) if single_line else _letter_runs(para):
                if translate:
                    _split_block(block, count_tokens, budget, pieces, level=0)
                else:
                    pieces.append(Piece(block, False))
    return [p for p in pieces if p.text]


def _lines(para: str) -> list[tuple[str, bool]]:
    """Every line of a paragraph its own block; the line breaks between them stay verbatim."""
    return [(part, not i % 2) for i, part in enumerate(_cut(para, _LINE_BREAK))]


def _letter_runs(para: str) -> list[tuple[str, bool]]:
    """Cut a paragraph around lines with no letters (a code block's marker right under a sentence), so
    the translator sees fewer markers; newlines between runs stay verbatim."""
    parts = _cut(para, _LINE_BREAK)
    runs: list[tuple[str, bool | None]] = []  # None: a newline between runs
    for i, part in enumerate(parts):
        if i % 2:  # a newline: joins lines inside a run, separates runs
            runs.append((part, None))
            continue
        kind = has_letters(part)
        if len(runs) >= 2 and runs[-1][1] is None and runs[-2][1] == kind:
            sep = runs.pop()[0]
            runs[-1] = (runs[-1][0] + sep + part, kind)
        else:
            runs.append((part, kind))
    return [(text, bool(kind)) for text, kind in runs]


def join(pieces: list[str]) -> str:
    return "".join(pieces)


def _split_block(block: str, count_tokens, budget: int, out: list[Piece], level: int) -> None:
    core = block.strip()
    if not core:
        out.append(Piece(block, False))
        return
    lead, trail = block[: len(block) - len(block.lstrip())], block[len(block.rstrip()) :]
    out.append(Piece(lead, False))
    if not has_letters(core):
        out.append(Piece(core, False))
    elif _fits(core, count_tokens, budget) or level >= 3:
        out.append(Piece(core, True))
    else:
        parts = _cut(core, (_LINE_BREAK, _SENTENCE_END, _WORD_BREAK)[level])
        for chunk, sep in _pack(parts, count_tokens, budget):
            _split_block(chunk, count_tokens, budget, out, level + 1)
            out.append(Piece(sep, False))
    out.append(Piece(trail, False))


def _fits(text: str, count_tokens, budget: int) -> bool:
    # A tokenizer makes at most one token per UTF-8 byte, plus one (a word-start piece): most blocks are decided
    # without tokenizing them, and the decision is the exact count's whenever the bound fits. (A normalizer that
    # expands characters, NFKC on a ligature, can beat the bound: that segment then runs a little over budget.)
    return len(text.encode("utf-8")) + 1 <= budget or count_tokens(text) <= budget


def _cut(text: str, boundary: re.Pattern) -> list[str]:
    """[unit, sep, unit, sep, ..., unit]: the separator is the boundary's first group (whitespace)."""
    parts, pos = [], 0
    for m in boundary.finditer(text):
        parts += [text[pos : m.start(1)], m.group(1)]
        pos = m.end(1)
    return parts + [text[pos:]]


def _pack(parts: list[str], count_tokens, budget: int) -> list[tuple[str, str]]:
    """Greedily merge consecutive units under the budget; returns (chunk, separator that follows it)."""
    units, seps = parts[0::2], parts[1::2] + [""]
    chunks: list[tuple[str, str]] = []
    body, tokens, last_sep = "", 0, ""
    for unit, sep in zip(units, seps):
        n = count_tokens(unit)
        if body and tokens + n > budget:
            chunks.append((body, last_sep))
            body, tokens = "", 0
        body = body + last_sep + unit if body else unit
        tokens += n
        last_sep = sep
    if body:
        chunks.append((body, last_sep))
    return chunks
