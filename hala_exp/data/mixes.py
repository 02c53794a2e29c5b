"""Seeded mixes of several sources, built as a memory-mapped Arrow dataset.

``build_mix(mix, out_dir)`` streams each source through its adapter (``hala_exp.data.sources``) into an Arrow
file of its valid rows, samples row *indices* from it, and writes the selected rows, source after source, into
``out_dir/mix.arrow``, opened as a ``datasets.Dataset`` (memory-mapped: rows are read when indexed). What is
held in memory: the ids seen so far (a set, for duplicates across sources), one source's sampled indices
(a numpy array) and one batch of rows. Quarantined rows go to ``out_dir/rejects.jsonl`` as they are met.

Sampling is today's, on indices: ``fraction`` (a float) or ``count`` (an int) rows of each source's valid rows;
more than the source holds takes whole copies and then a seeded sample of the rest; copies get ids
``<id>#r<k>`` so ids stay unique (stages key exactly-once work by id). The seed is per (mix seed, source
name) through SHA-256, so a mix is the same in every process (Python's ``hash()`` is salted per process).
A sample keeps file order; sources keep the config's order.

``out_dir`` belongs to the mix: a rebuild with the same config reuses a finished ``mix.arrow`` (callers give
a directory inside a content-addressed stage artifact, whose fingerprint covers the source files). Jobs that
share the directory take turns on a file lock (``filelock``), so the first builds and the others reuse.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hala_exp.data.arrow import BATCH_ROWS, turns_type, write_batches, write_rows
from hala_exp.data.jsonl import Quarantined, QuarantineLog
from hala_exp.data.sources import MixConfig, SourceConfig, adapted_rows, as_mix

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

log = logging.getLogger(__name__)

MIX_FILE = "mix.arrow"
REJECTS_FILE = "rejects.jsonl"
SUMMARY_FILE = "mix.json"  # written last: its presence marks a finished build
FORMAT = 1  # bump when the bytes of mix.arrow change for the same config


@dataclass
class MixBuild:
    dataset: datasets.Dataset  # id, source, messages (+ messages_en, language for parallel sources)
    per_source: dict[str, int]  # rows selected per source
    rejects: dict[str, dict[str, int]]  # source -> reason -> count
    rejects_path: Path  # rejects.jsonl: source, line, reason, bounded raw prefix, sha256, chars

    def rows(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts, without the null extras of sources that have none (a parallel column in a mix of
        instruction and parallel sources)."""
        for row in self.dataset:
            yield {k: v for k, v in row.items() if v is not None}


def build_mix(
    mix: MixConfig | dict, out_dir: Path, target_language: str | None = None, *, require_rows: bool = True
) -> MixBuild:
    """Read, adapt, quarantine and sample every source of a mix into ``out_dir`` (see the module docstring).
    ``target_language`` names the target column of parallel sources that do not set ``target``. A source
    that selects no row is an error naming it, unless ``require_rows=False`` (a caller with its own check)."""
    from filelock import FileLock

    mix = as_mix(mix)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Jobs that share a stage directory build its mix once: the others wait here, then reuse it.
    with FileLock(str(out_dir / ".build.lock")):
        return _build(mix, out_dir, target_language, require_rows)


def _build(mix: MixConfig, out_dir: Path, target_language: str | None, require_rows: bool) -> MixBuild:
    key = {"format": FORMAT, "mix": asdict(mix), "target_language": target_language}
    summary_path = out_dir / SUMMARY_FILE
    if summary_path.is_file() and (out_dir / MIX_FILE).is_file():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if summary.get("key") == key:
            log.info("mix: reusing %s", out_dir / MIX_FILE)
            return _opened(out_dir, summary)
    summary_path.unlink(missing_ok=True)  # a crash below must not leave an older summary beside new files

    schema = _schema(any(s.adapter == "parallel" for s in mix.sources))
    scratch = out_dir / f".adapted-{os.getpid()}"
    scratch.mkdir(exist_ok=True)
    per_source: dict[str, int] = {}
    seen: set[str] = set()
    try:
        with QuarantineLog(out_dir / REJECTS_FILE) as quarantine:
            adapted = []
            for k, src in enumerate(mix.sources):
                path = scratch / f"{k}.arrow"
                valid = write_rows(path, schema, _valid(src, target_language, mix.max_chars, seen, quarantine))
                copies, sample = sample_plan(valid, src, mix.seed)
                per_source[src.name] = copies * valid + len(sample)
                bad = sum(quarantine.counts.get(src.name, {}).values())
                log.info("source %s: %d valid, %d quarantined, %d selected", src.name, valid, bad, per_source[src.name])
                if not per_source[src.name] and require_rows:
                    quarantine.close()  # kept for inspection
                    raise ValueError(
                        f"source {src.name!r}: no row selected ({valid} valid, {bad} quarantined: "
                        f"{quarantine.counts.get(src.name, {})}; see {quarantine.path})"
                    )
                adapted.append((path, copies, sample))
            write_batches(out_dir / MIX_FILE, schema, _selected(adapted))
        summary = {"key": key, "per_source": per_source, "rejects": quarantine.counts}
        tmp = summary_path.with_name(f".{SUMMARY_FILE}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, summary_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _opened(out_dir, summary)


def _opened(out_dir: Path, summary: dict) -> MixBuild:
    import datasets

    return MixBuild(
        dataset=datasets.Dataset.from_file(str(out_dir / MIX_FILE)),
        per_source=summary["per_source"],
        rejects=summary["rejects"],
        rejects_path=out_dir / REJECTS_FILE,
    )


# ---------------------------------------------------------------------------------------------------- sampling


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big"))


def sample_plan(size: int, src: SourceConfig, seed: int) -> tuple[int, np.ndarray]:
    """(whole copies, sorted indices of the seeded sample on top) for ``size`` valid rows of a source."""
    if size == 0:
        return 0, np.empty(0, dtype=np.int64)
    if src.count is not None:
        n = int(src.count)
    else:
        assert src.fraction is not None  # check(): exactly one of fraction, count
        n = round(src.fraction * size)
    copies, rest = divmod(n, size)
    sample = np.fromiter(_rng(seed, src.name).sample(range(size), rest), dtype=np.int64, count=rest)
    sample.sort()
    return copies, sample


# ---------------------------------------------------------------------------------------------------- Arrow


def _schema(with_parallel: bool) -> pa.Schema:
    import pyarrow as pa

    turns = turns_type()
    fields = [("id", pa.string()), ("source", pa.string()), ("messages", turns)]
    if with_parallel:
        fields += [("messages_en", turns), ("language", pa.string())]
    return pa.schema(fields)


def _valid(src, target_language, max_chars, seen, quarantine: QuarantineLog) -> Iterator[dict]:
    for item in adapted_rows(src, target_language, max_chars, seen):
        if isinstance(item, Quarantined):
            quarantine.add(item)
        else:
            yield item


def _selected(adapted: list[tuple[Path, int, np.ndarray]]) -> Iterator[pa.RecordBatch]:
    """The mix's rows as record batches: per source, its whole copies, then its sample, each in file order;
    copy ``k`` >= 1 of a row gets the id ``<id>#r<k>``."""
    import datasets
    import pyarrow as pa

    for path, copies, sample in adapted:
        ds = datasets.Dataset.from_file(str(path)).with_format("arrow")
        size = len(ds)
        for repeat in range(copies + 1):
            indices = np.arange(size) if repeat < copies else sample
            for start in range(0, len(indices), BATCH_ROWS):
                table = ds.select(indices[start : start + BATCH_ROWS])[:]
                if repeat:
                    ids = pa.array([f"{i}#r{repeat}" for i in table.column("id").to_pylist()], pa.string())
                    table = table.set_column(0, "id", ids)
                yield from table.to_batches()
