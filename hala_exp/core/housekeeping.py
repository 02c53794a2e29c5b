"""Cache housekeeping: which stage artifacts exist, how big they are, which runs use them; prune the rest.

A run uses the artifacts its ``summary.json`` names (``stages.*.artifact``) and, through their manifests'
``inputs``, everything upstream of them (steps taken from the cache without being selected included).
An entry no kept run uses is prunable, except an unfinished one that may be in progress: one whose lock a
live process holds, or that was touched within the grace period.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from hala_exp.core.store import MANIFEST, MARKER


@dataclass
class Entry:
    kind: str
    fingerprint: str
    path: Path
    size: int
    complete: bool
    modified: float
    inputs: list[str] = field(default_factory=list)  # fingerprints of the entries it was built from
    runs: list[str] = field(default_factory=list)  # run directories that use it


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed while we walk (a job finishing or cleaning up)
                pass
    return total


def _latest_mtime(path: Path) -> float:
    latest = path.stat().st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                latest = max(latest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass
    return latest


def scan_cache(cache_dir: Path) -> dict[str, Entry]:
    """Every ``<kind>/<fingerprint>/`` entry, keyed by fingerprint."""
    entries: dict[str, Entry] = {}
    if not cache_dir.is_dir():
        return entries
    for kind_dir in sorted(p for p in cache_dir.iterdir() if p.is_dir()):
        for path in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
            complete = (path / MARKER).exists()
            inputs = []
            if complete and (path / MANIFEST).is_file():
                try:
                    manifest = json.loads((path / MANIFEST).read_text())
                    inputs = [i["fingerprint"] for i in (manifest.get("inputs") or {}).values()]
                except (OSError, ValueError, KeyError, TypeError):
                    inputs = []
            entries[path.name] = Entry(
                kind_dir.name, path.name, path, tree_size(path), complete, _latest_mtime(path), inputs
            )
    return entries


def find_runs(output_dir: Path) -> list[Path]:
    """Run directories (with a summary.json) under ``runs/`` and ``multirun/``."""
    found = []
    for sub in ("runs", "multirun"):
        root = output_dir / sub
        if root.is_dir():
            found += [p.parent for p in root.rglob("summary.json")]
    return sorted(found)


def _run_artifacts(run_dir: Path) -> list[str]:
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return []
    return [
        st["fingerprint"]
        for st in (summary.get("stages") or {}).values()
        if isinstance(st, dict) and st.get("fingerprint")
    ]


def attribute(entries: dict[str, Entry], runs: list[Path]) -> None:
    """Fill ``Entry.runs``: each run's stages and, transitively, their inputs."""
    for run in runs:
        todo, seen = _run_artifacts(run), set()
        while todo:
            fp = todo.pop()
            if fp in seen or fp not in entries:
                continue
            seen.add(fp)
            entries[fp].runs.append(str(run))
            todo.extend(entries[fp].inputs)


def _lock_held(entry: Entry) -> bool:
    from filelock import FileLock, Timeout

    lock_path = entry.path.with_name(entry.path.name + ".lock")
    if not lock_path.exists():
        return False
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def prunable(entries: dict[str, Entry], grace_seconds: float, now: float | None = None) -> list[Entry]:
    now = time.time() if now is None else now
    out = []
    for e in entries.values():
        if e.runs:
            continue
        if not e.complete and (now - e.modified < grace_seconds or _lock_held(e)):
            continue  # maybe a job at work right now
        out.append(e)
    return out


def delete(entry: Entry) -> None:
    # The marker goes first: a reader that races the deletion sees an unfinished entry, never a partial one.
    (entry.path / MARKER).unlink(missing_ok=True)
    shutil.rmtree(entry.path)
    entry.path.with_name(entry.path.name + ".lock").unlink(missing_ok=True)


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
