"""Exactly-once shards in a stage's directory.

Rows are cut, in input order, into shards of ``shard_size``; shard k is done when ``shards/part-k/`` exists.
Its files (``rows.jsonl``, ``rejects.jsonl``) are written into a private temporary directory, fsync'd, and
described by ``meta.json`` (counts, the window's cached segments, a SHA-256 of each file); the directory is
then renamed into place: a shard is wholly there or not at all, and a rename onto a shard another job
committed first fails instead of overwriting it. A failed write (a full disk) removes its temporary
directory; one left by a killed job is ignored and swept. Every read checks the hashes: a shard damaged
after its commit is moved aside and redone, never read as data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

FILES = ("rows.jsonl", "rejects.jsonl")


class CorruptShard(Exception):
    def __init__(self, k: int, why: str):
        super().__init__(f"shard {k}: {why}")
        self.k = k


class ShardStore:
    def __init__(self, root: Path, owner: str):
        self.dir = Path(root) / "shards"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.owner = owner

    def path(self, k: int) -> Path:
        return self.dir / f"part-{k:06d}"

    def done(self, k: int) -> bool:
        return (self.path(k) / "meta.json").is_file()

    def meta(self, k: int) -> dict:
        try:
            return json.loads((self.path(k) / "meta.json").read_text())
        except (OSError, ValueError) as e:
            raise CorruptShard(k, f"unreadable meta.json ({e})") from None

    # ---------------------------------------------------------------- writing
    def commit(self, k: int, rows: list[dict], rejects: list[dict], extra: dict) -> bool:
        """Write shard k; False when another job committed it first (ours is dropped: same content)."""
        tmp = self.dir / f".tmp-{k:06d}-{self.owner}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            digests = {}
            for name, records in zip(FILES, (rows, rejects)):
                data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
                write_file(tmp / name, data)
                digests[name] = hashlib.sha256(data).hexdigest()
            meta = {"rows": len(rows), "rejected": len(rejects), "sha256": digests, **extra}
            write_file(tmp / "meta.json", json.dumps(meta).encode())
            try:
                os.rename(tmp, self.path(k))
            except OSError:  # ENOTEMPTY / EEXIST: another job's commit won
                if self.done(k):
                    return False
                raise
            return True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # ---------------------------------------------------------------- reading
    def lines(self, k: int, name: str) -> Iterator[bytes]:
        """The lines of one of shard k's files; raises CorruptShard (after the last line) on a hash mismatch."""
        want = self.meta(k).get("sha256", {}).get(name)
        h = hashlib.sha256()
        try:
            with open(self.path(k) / name, "rb") as fh:
                for line in fh:
                    h.update(line)
                    yield line
        except OSError as e:
            raise CorruptShard(k, f"{name}: {e}") from None
        if h.hexdigest() != want:
            raise CorruptShard(k, f"{name}: content does not match its recorded SHA-256")

    def verify(self, k: int) -> None:
        for name in FILES:
            for _ in self.lines(k, name):
                pass

    def set_aside(self, k: int, why: str) -> None:
        """Move a damaged shard out of the way so it is redone."""
        aside = self.dir / f".corrupt-{k:06d}-{time.time_ns()}"
        try:
            os.rename(self.path(k), aside)
            log.warning("shard %d is damaged (%s): moved to %s, it will be translated again", k, why, aside.name)
        except FileNotFoundError:
            pass

    def sweep(self, older_than_s: float) -> None:
        """Remove temporary directories of killed writers (older than any live write can be)."""
        now = time.time()
        for tmp in self.dir.glob(".tmp-*"):
            try:
                if now - tmp.stat().st_mtime > older_than_s:
                    shutil.rmtree(tmp, ignore_errors=True)
            except FileNotFoundError:
                pass


def write_file(path: Path, data: bytes) -> None:
    """Write and fsync (the one write layer of shards: faults are injected here in tests)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
