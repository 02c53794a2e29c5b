"""Exactly-once bookkeeping in a stage's directory.

* Work units: rows are cut, in input order, into units of ``shard_size``; unit k is done when its shard
  ``shards/part-k.jsonl`` exists. Its rejects and ledger are written first, the shard last, each by rename, so
  a unit is either wholly there or redone. Job j of n takes the units with k % n == j.
* Segment cache: every generated segment is appended (one fsync'd write per batch) to the job's own
  ``segments/job-j.jsonl``; all jobs' files are read back, so identical segments are translated once and a
  run killed mid-unit keeps what it generated. A torn last line from a killed writer is cut off on reopen.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hala_exp.data.jsonl import write_jsonl


class UnitStore:
    def __init__(self, root: Path):
        self.dir = Path(root) / "shards"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, k: int, part: str = "") -> Path:
        return self.dir / f"part-{k:06d}{part}.jsonl"

    def done(self, k: int) -> bool:
        return self.path(k).exists()

    def write(self, k: int, rows: list[dict], rejects: list[dict], ledger: dict) -> None:
        write_jsonl(self.path(k, ".rejects"), rejects)
        write_jsonl(self.path(k, ".ledger"), [ledger])
        write_jsonl(self.path(k), rows)  # last: its presence means the unit is complete

    def read(self, k: int, part: str = "") -> list[dict]:
        with open(self.path(k, part), encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]


class SegmentCache:
    def __init__(self, root: Path, job: str):
        self.dir = Path(root) / "segments"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.own = self.dir / f"job-{job}.jsonl"
        _cut_torn_tail(self.own)
        self.entries: dict[str, list[int]] = {}
        self._offsets: dict[Path, int] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read what any job appended since the last call (complete lines only)."""
        for path in sorted(self.dir.glob("job-*.jsonl")):
            offset = self._offsets.get(path, 0)
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by a crash in another job's file
                self.entries[rec["key"]] = rec["token_ids"]
            self._offsets[path] = offset + end

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def get(self, key: str) -> list[int]:
        return self.entries[key]

    def add(self, records: list[tuple[str, list[int]]]) -> None:
        if not records:
            return
        data = "".join(json.dumps({"key": k, "token_ids": ids}) + "\n" for k, ids in records).encode()
        fd = os.open(self.own, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        for k, ids in records:
            self.entries[k] = ids


def _cut_torn_tail(path: Path) -> None:
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)
