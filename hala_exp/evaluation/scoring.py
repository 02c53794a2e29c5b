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

# Test sets up to this many segments get bootstrap 95 % confidence intervals (our choice: on a 16-pair held-out
# set a BLEU difference of several points can be noise; FLORES-sized sets are read without them).
BOOTSTRAP_MAX_SEGMENTS = 2000
BOOTSTRAP_RESAMPLES = 1000  # sacrebleu's default for --confidence; its resampling seed is fixed (SACREBLEU_SEED)


@dataclass
class TranslationScores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    segments: int
    bleu_ci: float | None = None  # half-width of the bootstrap 95 % interval around the score (small sets)
    chrf_ci: float | None = None


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
    result = TranslationScores(b.score, c.score, str(bleu.get_signature()), str(chrf.get_signature()), len(hyps))
    if 1 < len(hyps) <= BOOTSTRAP_MAX_SEGMENTS:
        # sacrebleu's own bootstrap (the CLI's --confidence): the point score stays the plain corpus score.
        n = BOOTSTRAP_RESAMPLES
        result.bleu_ci = float(bleu.corpus_score(hyps, [refs], n_bootstrap=n)._ci)
        result.chrf_ci = float(chrf.corpus_score(hyps, [refs], n_bootstrap=n)._ci)
    return result


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
                "bleu_ci95": result.bleu_ci,
                "chrf_ci95": result.chrf_ci,
                "reproduce": cli_command(directory, tokenize, chrf_word_order),
                **(extra or {}),
            },
            indent=2,
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return result
