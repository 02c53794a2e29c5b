"""Reading and writing the JSONL files stages exchange. Bad rows are quarantined, counted, never dropped silently."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Quarantined:
    source: str
    line: int
    reason: str
    raw: str


@dataclass
class Rows:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Quarantined] = field(default_factory=list)

    def reject_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for q in self.rejects:
            counts[q.reason] = counts.get(q.reason, 0) + 1
        return counts


def read_jsonl(path: str | Path, required: Iterable[str] = (), max_chars: int | None = None) -> Rows:
    """Read a JSONL file; rows that are not objects, lack a required string field or are absurdly long
    are quarantined with their line number and reason. A file that cannot be read raises with its path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    out = Rows()
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                out.rejects.append(Quarantined(str(path), lineno, "invalid_utf8", raw.decode("utf-8", "replace")))
                continue
            reason = None
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                row, reason = None, f"invalid_json: {e.msg}"
            if reason is None and not isinstance(row, dict):
                reason = "not_an_object"
            if reason is None:
                for key in required:
                    value = row.get(key)
                    if not isinstance(value, str):
                        reason = f"missing_or_not_string:{key}"
                        break
                    if not value.strip():
                        reason = f"empty:{key}"
                        break
            if reason is None and max_chars is not None and len(text) > max_chars:
                reason = "too_long"
            if reason is None:
                out.rows.append(row)
            else:
                out.rejects.append(Quarantined(str(path), lineno, reason, text.rstrip("\n")))
    return out


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write atomically (temp file + rename) so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def write_quarantine(path: str | Path, rejects: Iterable[Quarantined]) -> int:
    return write_jsonl(path, ({"source": q.source, "line": q.line, "reason": q.reason, "raw": q.raw} for q in rejects))
