"""Content-addressed stage artifacts: ``<cache>/<kind>/<fingerprint>/``.

The fingerprint is a stable hash of the stage kind and format version, its typed config (fields marked
``NOT_FINGERPRINTED`` in ``hala_exp.core.schema`` left out: they change speed or presentation, not results),
its inputs' fingerprints, the content of its local input files and the versions of the libraries that change
its result. A finished stage writes
``manifest.json`` and then the completion marker ``COMPLETE`` (both via rename, so readers never see half a
file). A directory without the marker is an interrupted attempt: it is redone, and the stage may reuse the
partial work it finds there (translation shards, training checkpoints). A file lock (``filelock``: an OS lock,
released by the kernel when its holder dies, so a killed job never blocks a rerun) makes two processes that
need the same stage compute it once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
MANIFEST = "manifest.json"
# Bump when the meaning of a fingerprint changes. 2: the typed config's field metadata decides what is left
# out (was: keys named runtime/comment), and every stage's FORMAT_VERSION is part of it.
FINGERPRINT_VERSION = 2


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprinted(obj: Any) -> Any:
    """The part of a typed config that can change a stage's result, as plain data: at any depth, dataclass
    fields whose metadata is ``NOT_FINGERPRINTED`` (``{"fingerprint": False}``) are left out."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: fingerprinted(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("fingerprint", True)
        }
    if isinstance(obj, dict):
        return {str(k): fingerprinted(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [fingerprinted(v) for v in obj]
    return obj


def library_versions(names: Iterable[str]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def file_digest(path: str | Path) -> str:
    """Content hash of a file, or of every file under a directory (relative names included)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"input not found: {path}")
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def fingerprint(
    kind: str,
    format_version: int,
    config: Any,
    inputs: dict[str, str],
    versions: dict[str, str],
    files: dict[str, str],
) -> str:
    """``config`` is the stage's typed Config (see ``fingerprinted``); ``format_version`` its FORMAT_VERSION."""
    payload = {
        "v": FINGERPRINT_VERSION,
        "kind": kind,
        "format": format_version,
        "config": fingerprinted(config),
        "inputs": inputs,
        "versions": versions,
        "files": files,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers see the old file or the new one, and a failed write
    (disk full, read-only file system) leaves neither a half file nor its temporary behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@dataclass
class Artifact:
    kind: str
    fingerprint: str
    path: Path

    @property
    def complete(self) -> bool:
        return (self.path / MARKER).exists()

    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())

    def outputs(self) -> dict[str, str]:
        """Output names -> absolute paths (or hub ids, kept as they are)."""
        resolved = {}
        for name, value in self.manifest()["outputs"].items():
            candidate = self.path / value
            resolved[name] = str(candidate) if not os.path.isabs(value) and candidate.exists() else value
        return resolved

    def finish(self, manifest: dict) -> None:
        atomic_write_text(self.path / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False, default=str))
        atomic_write_text(self.path / MARKER, time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def scratch_root(self) -> Path:
        """Caches that stages key by content themselves (e.g. tokenized examples), beside the artifacts."""
        return self.root / "scratch"

    def artifact(self, kind: str, fp: str) -> Artifact:
        return Artifact(kind, fp, self.root / kind / fp)

    @contextlib.contextmanager
    def claim(self, artifact: Artifact) -> Iterator[Artifact]:
        """Hold the artifact's lock: whoever holds it either finds it complete or builds it."""
        from filelock import FileLock, Timeout

        artifact.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.lock_path(artifact))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("waiting for another job that is building %s", artifact.path)
            lock.acquire()
        try:
            artifact.path.mkdir(exist_ok=True)
            yield artifact
        finally:
            lock.release()

    @staticmethod
    def lock_path(artifact: Artifact) -> Path:
        return artifact.path.with_name(artifact.path.name + ".lock")
