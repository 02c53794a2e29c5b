"""Reading and writing the JSONL files stages exchange. Bad rows are quarantined, counted, never dropped silently.

A quarantine entry keeps the row's position (file line or row number), the reason, the first ``RAW_PREFIX``
characters of the raw row, and the whole row's SHA-256 and length: enough to find and recognise it, never a
5 MB row copied whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RAW_PREFIX = 2000  # characters of a rejected row kept for inspection (our choice)


@dataclass
class Quarantined:
    source: str
    line: int
    reason: str
    raw: str  # bounded to RAW_PREFIX characters on construction
    sha256: str = ""  # of the whole raw text (UTF-8)
    chars: int = -1  # length of the whole raw text

    def __post_init__(self) -> None:
        if not self.sha256:  # first construction (dataclasses.replace passes the digest on)
            self.sha256 = hashlib.sha256(self.raw.encode("utf-8", "surrogatepass")).hexdigest()
            self.chars = len(self.raw)
            self.raw = self.raw[:RAW_PREFIX]

    def entry(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "reason": self.reason,
            "raw": self.raw,
            "sha256": self.sha256,
            "chars": self.chars,
        }


def bounded_row(row: Any) -> dict[str, Any]:
    """A rejected row as a stage keeps it: the first ``RAW_PREFIX`` characters of its JSON, its SHA-256 and length."""
    q = Quarantined("", 0, "", json.dumps(row, ensure_ascii=False, default=str))
    return {"raw": q.raw, "sha256": q.sha256, "chars": q.chars}


@dataclass
class Rows:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Quarantined] = field(default_factory=list)

    def reject_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for q in self.rejects:
            counts[q.reason] = counts.get(q.reason, 0) + 1
        return counts


def iter_jsonl(path: str | Path, source: str | None = None) -> Iterator[tuple[int, Any]]:
    """Stream a JSONL file: (line number, parsed value) per non-blank line, or (line number, Quarantined)
    for a line that is not UTF-8 or not JSON. Memory is one line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    name = str(path) if source is None else source
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield lineno, Quarantined(name, lineno, "invalid_utf8", raw.decode("utf-8", "replace"))
                continue
            try:
                yield lineno, json.loads(text)
            except json.JSONDecodeError as e:
                yield lineno, Quarantined(name, lineno, f"invalid_json: {e.msg}", text.rstrip("\n"))


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> Rows:
    """Read a small JSONL file into memory; rows that are not objects or lack a required string field are
    quarantined with their line number and reason. A missing file raises with its path."""
    out = Rows()
    required = tuple(required)
    for lineno, row in iter_jsonl(path):
        if isinstance(row, Quarantined):
            out.rejects.append(row)
            continue
        reason = None if isinstance(row, dict) else "not_an_object"
        if reason is None:
            for key in required:
                value = row.get(key)
                if not isinstance(value, str):
                    reason = f"missing_or_not_string:{key}"
                    break
                if not value.strip():
                    reason = f"empty:{key}"
                    break
        if reason is None:
            out.rows.append(row)
        else:
            out.rejects.append(Quarantined(str(path), lineno, reason, json.dumps(row, ensure_ascii=False)))
    return out


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write atomically (temp file + rename) so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def write_quarantine(path: str | Path, rejects: Iterable[Quarantined]) -> int:
    return write_jsonl(path, (q.entry() for q in rejects))


class QuarantineLog:
    """Quarantine entries streamed to a JSONL file as they come (atomic on close), counted per source and
    reason: memory is the counts, not the entries."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._fh = open(self._tmp, "w", encoding="utf-8")
        self.counts: dict[str, dict[str, int]] = {}
        self.total = 0

    def add(self, q: Quarantined) -> None:
        self._fh.write(json.dumps(q.entry(), ensure_ascii=False) + "\n")
        per = self.counts.setdefault(q.source, {})
        per[q.reason] = per.get(q.reason, 0) + 1
        self.total += 1

    def add_file(self, path: str | Path) -> None:
        """Append the entries of another quarantine file (e.g. a mix's), counting them."""
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                entry = json.loads(line)
                self._fh.write(line)
                per = self.counts.setdefault(entry["source"], {})
                per[entry["reason"]] = per.get(entry["reason"], 0) + 1
                self.total += 1

    def reasons(self) -> dict[str, int]:
        """reason -> count over every source."""
        out: dict[str, int] = {}
        for per in self.counts.values():
            for reason, n in per.items():
                out[reason] = out.get(reason, 0) + n
        return out

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
            os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> QuarantineLog:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.abort() if exc_type else self.close()
