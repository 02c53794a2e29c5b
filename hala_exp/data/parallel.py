"""The one reader of parallel text: line-aligned plain-text files, one per language (FLORES-200, Tatoeba,
TICO-19 ship this way). Used by the ``parallel`` mix adapter (hence the bilingual stage) and by the
evaluation test sets.

Lines are split at ``\\n`` (``\\r\\n`` and a lone ``\\r`` too: universal newlines), never at U+2028 and the
other separators ``str.splitlines`` knows, which occur inside sentences. Files are streamed: memory is one
line per language. Sides of different length are an error naming every file and its line count.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

from hala_exp.data.paths import resolve


class NotAligned(ValueError):
    """The files of a parallel text have different line counts."""


def read_aligned(files: Mapping[str, str | Path], what: str = "parallel text") -> Iterator[tuple[int, dict[str, str]]]:
    """(1-based line number, {language: line}) for every line of line-aligned files ``{language: path}``."""
    paths = {lang: resolve(p) for lang, p in files.items()}
    for lang, path in paths.items():
        if not path.is_file():
            raise FileNotFoundError(f"{what}: file for {lang!r} not found: {path}")
    langs = list(paths)
    with ExitStack() as stack:
        handles = [stack.enter_context(open(paths[lang], encoding="utf-8")) for lang in langs]
        n = 0
        while True:
            lines = [fh.readline() for fh in handles]
            ended = [line == "" for line in lines]
            if all(ended):
                return
            if any(ended):
                raise NotAligned(_mismatch(what, paths, n))
            n += 1
            yield n, {lang: line[:-1] if line.endswith("\n") else line for lang, line in zip(langs, lines)}


def read_lines(path: str | Path, what: str = "text file") -> list[str]:
    """Every line of one file (a test set side): small files only."""
    return [row["text"] for _, row in read_aligned({"text": path}, what)]


def line_count(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for _ in fh)


def _mismatch(what: str, paths: dict[str, Path], at: int) -> str:
    counts = ", ".join(f"{p} has {line_count(p)} lines" for p in paths.values())
    return f"{what}: the files are not line-aligned ({counts}); every side must have one line per sentence"
