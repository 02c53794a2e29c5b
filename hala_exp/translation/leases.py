"""Lease files: which live job works on which shard, without ``flock`` (unreliable on NFS and Lustre).

A lease is a file created with ``O_CREAT | O_EXCL`` (atomic on local file systems and NFSv3+): whoever creates
it owns the shard. The owner renews it (``utime``) every ``heartbeat_s`` from a background thread; a lease not
renewed for ``stale_s`` belongs to a dead job (kill -9, a lost node) and is taken over: renamed aside (only
one job's rename succeeds), checked to still be the stale one, then created anew. A lease written on this
host by a process that no longer exists is taken over at once. Ages are measured on the
file system's clock (the mtime of a file this job just touched), so clock skew between nodes does not matter.

Why not an engine: datatrove (per-rank completion markers checked once at start, ranks fixed per executor),
Ray Data (one driver owns the plan) and submitit (array index = fixed task) all assign work to a task up
front; none lets N independently started jobs take whichever shard is free. README, "Architecture".
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


class Leases:
    def __init__(self, directory: str | Path, owner: str, heartbeat_s: float, stale_s: float):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.owner, self.heartbeat_s, self.stale_s = owner, heartbeat_s, stale_s
        self.held: dict[str, str] = {}  # name -> token written in the lease
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.lease"

    # ---------------------------------------------------------------- claiming
    def acquire(self, name: str) -> bool:
        """Own ``name`` if nobody live does; False when a live job holds it."""
        path = self.path(name)
        for _ in range(3):
            token = f"{self.owner} {uuid.uuid4().hex}"
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._take_over_if_stale(name):
                    return False
                continue
            try:
                os.write(fd, token.encode())
            finally:
                os.close(fd)
            with self._lock:
                self.held[name] = token
            return True
        return False

    def _take_over_if_stale(self, name: str) -> bool:
        path = self.path(name)
        if self.fresh(path):
            return False
        aside = self.dir / f".{name}.stale-{self.owner}"
        try:
            os.rename(path, aside)  # one job wins; the others see FileNotFoundError
        except FileNotFoundError:
            return True  # released meanwhile (or another job took it over): try to create it
        try:
            if self.fresh(aside):  # a fresh lease slipped in between our look and the rename: give it back
                try:
                    os.link(aside, path)
                except FileExistsError:
                    pass
                return False
            age = self.fs_now() - aside.stat().st_mtime
            log.warning("lease %s was stale (%.0f s without a heartbeat): its job is gone; taking it over", name, age)
            return True
        finally:
            aside.unlink(missing_ok=True)

    def release(self, name: str) -> None:
        with self._lock:
            token = self.held.pop(name, None)
        if token is not None and self._reads(name) == token:
            self.path(name).unlink(missing_ok=True)

    def live(self, name: str) -> bool:
        """Someone (maybe this job) holds ``name``, renewed it recently and is not known to be dead."""
        return self.fresh(self.path(name))

    def fresh(self, path: Path, by_others: bool = False) -> bool:
        """``path`` (a lease, or a note written by ``note``) was written within ``stale_s`` by a job not known
        to be dead (``by_others``: and not by this process, whose earlier calls have returned)."""
        try:
            fresh = self.fs_now() - path.stat().st_mtime < self.stale_s
        except FileNotFoundError:
            return False
        token = _read(path)
        if by_others and token and _host_pid(token) == (socket.gethostname(), os.getpid()):
            return False
        return fresh and not _process_gone(token)

    def note(self, path: Path) -> None:
        """Write ``path`` with this job's name, for ``fresh`` to judge (a done-by note outliving a lease)."""
        tmp = path.with_name(f".{path.name}.tmp-{self.owner}")
        tmp.write_text(f"{self.owner} {uuid.uuid4().hex}")
        os.replace(tmp, path)

    def fs_now(self) -> float:
        clock = self.dir / f".clock-{self.owner}"
        clock.touch()
        os.utime(clock)
        return clock.stat().st_mtime

    def _reads(self, name: str) -> str | None:
        return _read(self.path(name))

    # ---------------------------------------------------------------- heartbeat
    def __enter__(self) -> Leases:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for name in list(self.held):
            self.release(name)
        (self.dir / f".clock-{self.owner}").unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                held = dict(self.held)
            for name, token in held.items():
                if self._reads(name) == token:
                    try:
                        os.utime(self.path(name))
                    except FileNotFoundError:
                        pass
                else:
                    log.warning("lease %s was taken over by another job (this job looked dead)", name)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _host_pid(token: str) -> tuple[str, int | None]:
    """The writer's host and pid from a token ``host-pid-random ...`` (``cache.owner_id``)."""
    owner = token.split(" ", 1)[0]
    host, _, pid = owner.rpartition("-")[0].rpartition("-")
    return host, int(pid) if pid.isdigit() else None


def _process_gone(token: str | None) -> bool:
    """The lease's writer ran on this host and its process no longer exists (a kill -9 here need not wait
    for the stale timeout). Other hosts: unknown."""
    if not token:
        return False
    host, pid = _host_pid(token)
    if host != socket.gethostname() or pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
