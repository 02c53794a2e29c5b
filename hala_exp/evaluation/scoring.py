"""Corpus BLEU and chrF++ with sacrebleu, saved so that the ``sacrebleu`` CLI reproduces every number.

For each test set the stage writes ``source.txt``, ``hypotheses.txt``, ``references.txt`` (one segment per
line; newlines inside a segment become spaces, and that flattened text is exactly what is scored) and
``metrics.json`` with the scores, their signatures and the command that recomputes them.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass
class TranslationScores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    segments: int


def one_line(text: str) -> str:
    """A segment on one line: sacrebleu's files are line-aligned."""
    return " ".join(text.replace("\r", "\n").split("\n")).strip()


def score(
    hypotheses: list[str], references: list[str], tokenize: str = "13a", chrf_word_order: int = 2
) -> TranslationScores:
    """Corpus BLEU and chrF (chrF++ when ``chrf_word_order`` = 2) of one reference stream."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    hyps = [one_line(h) for h in hypotheses]
    refs = [one_line(r) for r in references]
    bleu, chrf = BLEU(tokenize=tokenize), CHRF(word_order=chrf_word_order)
    b, c = bleu.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])
    return TranslationScores(b.score, c.score, str(bleu.get_signature()), str(chrf.get_signature()), len(hyps))


def cli_command(directory: Path, tokenize: str, chrf_word_order: int) -> str:
    """The sacrebleu command that prints the same BLEU and chrF++ from the saved files."""
    return (
        f"sacrebleu {shlex.quote(str(directory / 'references.txt'))} -i "
        f"{shlex.quote(str(directory / 'hypotheses.txt'))} -m bleu chrf --tokenize {tokenize} "
        f"--chrf-word-order {chrf_word_order} -b -w 4 -f text"
    )


def save_and_score(
    directory: Path,
    sources: list[str],
    hypotheses: list[str],
    references: list[str],
    tokenize: str = "13a",
    chrf_word_order: int = 2,
    extra: dict | None = None,
) -> TranslationScores:
    directory.mkdir(parents=True, exist_ok=True)
    for name, lines in (("source.txt", sources), ("hypotheses.txt", hypotheses), ("references.txt", references)):
        (directory / name).write_text("".join(one_line(x) + "\n" for x in lines), encoding="utf-8")
    result = score(hypotheses, references, tokenize, chrf_word_order)
    (directory / "metrics.json").write_text(
        json.dumps(
            {
                "bleu": result.bleu,
                "chrf": result.chrf,
                "segments": result.segments,
                "bleu_signature": result.bleu_signature,
                "chrf_signature": result.chrf_signature,
                "reproduce": cli_command(directory, tokenize, chrf_word_order),
                **(extra or {}),
            },
            indent=2,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return result
