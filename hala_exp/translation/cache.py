"""The segment cache: every generated segment on disk, so identical segments are translated once and a run
killed mid-shard keeps what it generated.

One sqlite file per writer (``<dir>/<owner>.sqlite``, WAL): a job only ever writes its own file, so no two
processes write one database; it reads every file in the directory (its own first), so a rerun or a
concurrent job reuses what others generated. Lookups go to sqlite's index: memory does not grow with the
number of segments. Each write of a batch of generations also records what it cost (``spend``), in the
same transaction, so the ledger of attempts is exactly what was generated, kills and concurrent jobs included.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import uuid
from array import array
from pathlib import Path

from hala_exp.translation.ledger import Ledger

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (key TEXT PRIMARY KEY, token_ids BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY, segments INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    seconds REAL, engine_starts INTEGER, startup_seconds REAL
);
"""


def owner_id() -> str:
    """A name no other attempt shares: host, pid and a random part (pids are reused across hosts and time)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class SegmentCache:
    def __init__(self, directory: str | Path, owner: str | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.own_path = self.dir / f"{owner or owner_id()}.sqlite"
        self.own = _connect(self.own_path)
        self.own.executescript(_SCHEMA)
        self.others: dict[Path, sqlite3.Connection] = {}
        self.refresh()

    def refresh(self) -> None:
        """Open the files other writers created since the last call."""
        for path in sorted(self.dir.glob("*.sqlite")):
            if path == self.own_path or path in self.others:
                continue
            try:
                conn = _connect(path)
                conn.execute("SELECT 1 FROM segments LIMIT 1")
            except sqlite3.DatabaseError as e:  # a file another job is creating this instant, or a broken one
                log.debug("segment cache %s not readable yet: %s", path, e)
                continue
            self.others[path] = conn

    def get(self, key: str) -> list[int] | None:
        for conn in (self.own, *self.others.values()):
            try:
                row = conn.execute("SELECT token_ids FROM segments WHERE key = ?", (key,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                return array("i", row[0]).tolist()
        return None

    def __contains__(self, key: str) -> bool:
        for conn in (self.own, *self.others.values()):
            try:
                if conn.execute("SELECT 1 FROM segments WHERE key = ?", (key,)).fetchone() is not None:
                    return True
            except sqlite3.DatabaseError:
                continue
        return False

    def add(self, records: list[tuple[str, list[int]]], spent: Ledger) -> None:
        """Store generated segments and what generating them cost, atomically (one transaction)."""
        with self.own:
            self.own.executemany(
                "INSERT OR IGNORE INTO segments VALUES (?, ?)", [(k, array("i", ids).tobytes()) for k, ids in records]
            )
            self._spend(spent)

    def record(self, spent: Ledger) -> None:
        """Cost without segments (an engine start-up)."""
        with self.own:
            self._spend(spent)

    def _spend(self, s: Ledger) -> None:
        self.own.execute(
            "INSERT INTO spend (segments, input_tokens, output_tokens, seconds, engine_starts, startup_seconds) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (s.segments, s.input_tokens, s.output_tokens, s.seconds, s.engine_starts, s.startup_seconds),
        )

    def close(self) -> None:
        for conn in (self.own, *self.others.values()):
            conn.close()
        self.others = {}


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level="DEFERRED", check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")  # readers in other jobs never block this job's writes
    conn.execute("PRAGMA synchronous=NORMAL")  # a committed batch survives kill -9 (not power loss)
    return conn


def total_spent(directory: str | Path) -> Ledger:
    """The ledger of attempts of a directory's segment caches, read without creating a file."""
    total = Ledger()
    for path in sorted(Path(directory).glob("*.sqlite")):
        try:
            conn = _connect(path)
        except sqlite3.DatabaseError:
            continue
        try:
            row = conn.execute(
                "SELECT COUNT(*), SUM(segments), SUM(input_tokens), SUM(output_tokens), SUM(seconds), "
                "SUM(engine_starts), SUM(startup_seconds) FROM spend"
            ).fetchone()
        except sqlite3.DatabaseError:
            continue
        finally:
            conn.close()
        if row[0]:
            total.add(Ledger(0, row[1], 0, row[2], row[3], row[4], row[5], row[6]))
    return total
