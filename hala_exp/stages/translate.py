"""translate stage: a mix of instruction data -> the same rows in the target language (messages schema).

Every turn is translated with roles and order kept; the original turns stay under ``messages_en``
(``messages_<code>`` for xx-en). Spans (code, math, URLs, ...) never reach the translator and come back
byte-exact; long turns are segmented; rows that fail span restoration or a quality gate are rejected with
their reason into ``rejects.jsonl``.

The source mix is built memory-mapped into ``source/`` (``data.mixes.build_mix``). Then, in three passes:

1. one job plans: every distinct segment of the rows to translate, on disk (``translation/plan.py``);
2. the plan is cut into segment shards of ``translate.shard_size`` segments, generated window by window
   (``runtime.window_shards`` at a time, one engine for the whole job) into the segment cache;
3. the rows are cut into row shards of ``shard_size`` rows, rebuilt from the cache, gated, and each committed
   as it finishes (``translation/shards.py``).

Memory is bounded by the window. Any number of jobs may run this stage in one directory at once: each takes
whichever shard has no live lease (``translation/leases.py``), so every distinct segment is generated once and
every row shard is written once, whichever job does it; a killed job's shards are taken over once its leases
go stale. The job that finds every row shard done assembles ``data.jsonl``/``rejects.jsonl`` and the Arrow
file ``data.arrow``; the others report pending (or, when another job is assembling, wait for it).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hala_exp.core.stage import StageContext, StagePending, StageResult
from hala_exp.data.jsonl import bounded_row
from hala_exp.data.sources import MixConfig
from hala_exp.translation.config import LanguageConfig, PromptConfig, TranslateConfig, target_script

if TYPE_CHECKING:
    from hala_exp.translation.cache import SegmentCache
    from hala_exp.translation.engine import Translator
    from hala_exp.translation.plan import Plan

log = logging.getLogger(__name__)

VERSIONS = ("transformers", "tokenizers", "torch", "vllm")
# 2: shards are lease-claimed directories with hashes (shards/part-k/), segments in sqlite, data.arrow added.
# 3: segments generated from a plan of distinct segments first; ledger cached_segments counts repeats too.
FORMAT_VERSION = 3  # bump when this stage's code changes the bytes it writes (part of the fingerprint)
CONCURRENT = True  # jobs share the directory and split the shards by leases
ASSEMBLY = "assemble"  # the lease of the job writing the final output
SOURCE = "source"  # the lease of the job building the source mix
PLAN = "plan"  # the lease of the job building the segment plan
# Written by the job that assembled, which then returns to its pipeline to mark the artifact complete: a job
# finding every shard done a moment later waits for that mark instead of assembling again.
ASSEMBLED_BY = "assembled-by"


@dataclass
class Config:
    source: MixConfig
    prompt: PromptConfig
    language: LanguageConfig
    translate: TranslateConfig
    direction: Literal["en-xx", "xx-en"] = "en-xx"


class ShardsPending(StagePending):
    """This job found no shard left to take; others' are still running (the last job assembles the output)."""


def input_files(config: Config) -> list[str]:
    from hala_exp.data.sources import input_files as mix_files

    return mix_files(config.source)


def original_key(cfg: Config) -> str:
    return "messages_en" if cfg.direction == "en-xx" else f"messages_{cfg.language.code}"


def run(ctx: StageContext) -> StageResult:
    return translate_dataset(ctx, _build_source)


def _build_source(ctx: StageContext, leases) -> tuple:
    """The source mix, memory-mapped (``data.mixes.build_mix`` in ``source/``): one job builds it while the
    others wait on its lease, then reuse the finished build."""
    from hala_exp.data.mixes import build_mix

    cfg: Config = ctx.config
    while not leases.acquire(SOURCE):
        time.sleep(min(1.0, leases.heartbeat_s))
    try:
        mix = build_mix(cfg.source, ctx.out_dir / "source", target_language=cfg.language.code)
    finally:
        leases.release(SOURCE)
    return mix.dataset, mix.rejects_path, mix.per_source


def validate_rows(rows: list[dict], max_chars: int) -> tuple[list[dict], list[dict]]:
    """Quarantine rows the engine cannot take: bad messages, duplicate ids, absurd length."""
    good, bad, seen = [], [], set()
    for row in rows:
        reason = _row_problem(row, max_chars)
        if reason is None and row["id"] in seen:
            reason = "duplicate_id"
        if reason is None:
            seen.add(row["id"])
            good.append(row)
        else:
            bad.append(
                {
                    "id": row.get("id") if isinstance(row, dict) else None,
                    "source": row.get("source") if isinstance(row, dict) else None,
                    "reason": reason,
                    **bounded_row(row),  # a malformed or huge row: prefix, hash and length, never copied whole
                }
            )
    return good, bad


def _row_problem(row, max_chars: int) -> str | None:
    from hala_exp.data.messages import problem

    return problem(row, max_chars)


def translate_rows(
    ctx: StageContext, rows: list[dict], input_rejects: list[dict], per_source: dict[str, int] | None = None
) -> StageResult:
    """The stage's work on rows already in memory (tests feed rows directly)."""

    def source(ctx, leases):
        from datasets import Dataset

        return Dataset.from_list(rows), input_rejects, per_source

    return translate_dataset(ctx, source)


def translate_dataset(ctx: StageContext, get_source) -> StageResult:
    """Run this job's share of the stage. ``get_source(ctx, leases) -> (dataset, input rejects (a list, or
    the path of a rejects JSONL), rows per source)`` is called while this job's leases are live."""
    from hala_exp.translation.cache import owner_id
    from hala_exp.translation.leases import Leases
    from hala_exp.translation.shards import CorruptShard, ShardStore

    cfg: Config = ctx.config
    rt = cfg.translate.runtime
    size = cfg.translate.shard_size
    owner = owner_id()
    store = ShardStore(ctx.out_dir, owner)
    store.sweep(older_than_s=rt.lease_stale_s)
    leases = Leases(ctx.out_dir / "leases", owner, rt.lease_heartbeat_s, rt.lease_stale_s)
    with leases:
        source, input_rejects, per_source = get_source(ctx, leases)
        n_shards = -(-len(source) // size)
        log.info("translate: %d rows in %d shards of %d (job %s)", len(source), n_shards, size, owner)
        work = _Work(ctx, source, store, leases, owner)
        try:
            plan = work.plan()
            work.generate_plan(plan)  # every distinct segment once, whichever job; then rows only read the cache
            while True:
                _check_done_shards(store, n_shards)
                work.take_and_translate(n_shards)
                pending = [k for k in range(n_shards) if not store.done(k)]
                if not pending:
                    if not leases.acquire(ASSEMBLY):
                        return _wait_for_assembly(ctx, leases)
                    if leases.fresh(ctx.out_dir / ASSEMBLED_BY, by_others=True):  # being marked complete
                        leases.release(ASSEMBLY)
                        return _wait_for_assembly(ctx, leases)
                    try:
                        result = _assemble(ctx, store, plan, n_shards, input_rejects, per_source, work.devices)
                        leases.note(ctx.out_dir / ASSEMBLED_BY)
                        return result
                    except CorruptShard as e:
                        store.set_aside(e.k, str(e))
                        continue  # redo it, then assemble again
                    finally:
                        leases.release(ASSEMBLY)
                if all(leases.live(f"part-{k:06d}") for k in pending):
                    raise ShardsPending(
                        f"this job found no shard left to take; {len(pending)} shard(s) are being translated by "
                        f"other jobs (e.g. {pending[:5]}); the job that finishes last assembles the output"
                    )
                # a shard whose job failed or died: take it on the next pass
        finally:
            work.close()


def _check_done_shards(store, n_shards: int) -> None:
    """Finished shards are checked against their hashes before anyone trusts them."""
    from hala_exp.translation.shards import CorruptShard

    for k in range(n_shards):
        if store.done(k):
            try:
                store.verify(k)
            except CorruptShard as e:
                store.set_aside(k, str(e))


def _wait_for_assembly(ctx: StageContext, leases) -> StageResult:
    """Another job is assembling: wait until its pipeline marks the artifact complete (this job then reads it
    from the cache), or give up when that job has stopped without finishing."""
    from hala_exp.core.store import MARKER

    while not (ctx.out_dir / MARKER).exists():
        if not leases.live(ASSEMBLY) and not leases.fresh(ctx.out_dir / ASSEMBLED_BY, by_others=True):
            raise ShardsPending("the job assembling the output stopped before it finished; rerun to assemble")
        time.sleep(min(1.0, leases.heartbeat_s))
    raise StagePending("another job assembled the output")


class _Work:
    """This job's share: claim free shards, translate them window by window with one engine, commit each."""

    def __init__(self, ctx: StageContext, source, store, leases, owner: str):
        self.ctx, self.cfg, self.source, self.store, self.leases, self.owner = (
            ctx,
            ctx.config,
            source,
            store,
            leases,
            owner,
        )
        self.translator: Translator | None = None
        self.plan_: Plan | None = None  # the segment plan once open
        self.cache: SegmentCache | None = None

    @property
    def devices(self) -> int:
        return self.translator.devices if self.translator else self.cfg.translate.engine.devices

    def take_and_translate(self, n_shards: int) -> None:
        self._claim_windows(n_shards, "part", self.store.done, self._translate_window)

    def _claim_windows(self, n: int, kind: str, done, work) -> None:
        """Claim shards ``kind-k`` no live job holds and that are not ``done(k)``, and hand them to ``work``
        ``runtime.window_shards`` at a time; their leases are released when ``work`` returns or fails."""

        def run(window: list[int]) -> None:
            try:
                work(window)
            finally:
                for k in window:
                    self.leases.release(f"{kind}-{k:06d}")

        window: list[int] = []
        for k in range(n):
            if done(k) or not self.leases.acquire(f"{kind}-{k:06d}"):
                continue
            if done(k):  # finished between our look and our claim
                self.leases.release(f"{kind}-{k:06d}")
                continue
            window.append(k)
            if len(window) == self.cfg.translate.runtime.window_shards:
                run(window)
                window = []
        if window:
            run(window)

    def _engine(self):
        if self.translator is None:
            from hala_exp.translation.cache import SegmentCache
            from hala_exp.translation.engine import Translator

            cfg = self.cfg
            self.translator = Translator(
                self.ctx.input("model", "model"),
                cfg.prompt,
                cfg.language,
                cfg.direction,
                cfg.translate.engine,
                protect=cfg.translate.protect,
                work_dir=self.ctx.out_dir,
            )
            self.cache = SegmentCache(self.ctx.out_dir / "segments", self.owner)
        return self.translator, self.cache

    # ------------------------------------------------------------ segments: the plan, then its shards
    def plan(self):
        """The stage's segment plan (``translation/plan.py``), built by one job from every row this stage
        translates (too-long rows and code-heavy turns excluded, as in ``_translate_window``)."""
        from hala_exp.translation import plan

        tr, _ = self._engine()
        size, limit = self.cfg.translate.shard_size, self.cfg.source.max_chars

        def segment_lists():
            for start in range(0, len(self.source), size):
                for row in self._rows(start, min(start + size, len(self.source))):
                    if _row_problem(row, limit) == "too_long":
                        continue
                    for m in row["messages"]:
                        yield [(tr.key(x), x) for x in tr.segments_of(m["content"])]

        self.plan_ = plan.open_or_build(self.ctx.out_dir, self.leases, PLAN, segment_lists, self.owner)
        return self.plan_

    def generate_plan(self, plan) -> None:
        """Claim free segment shards window by window until every one is done (a job that finds the rest held
        by live jobs waits for them: the row shards need every segment; a dead job's shards go stale and are
        taken over on a later pass)."""
        from hala_exp.translation.plan import DoneMarkers

        n, markers = -(-plan.segments // self.cfg.translate.shard_size), DoneMarkers(self.ctx.out_dir)
        while True:
            self._claim_windows(n, "seg", markers.done, lambda window: self._segment_window(plan, window, markers))
            if all(markers.done(k) for k in range(n)):
                return
            time.sleep(min(1.0, self.leases.heartbeat_s))

    def _segment_window(self, plan, shards: list[int], markers) -> None:
        size = self.cfg.translate.shard_size
        tr, cache = self._engine()
        cache.refresh()  # a rerun reuses what earlier attempts generated
        texts = {k: plan.texts(k * size, min((k + 1) * size, plan.segments)) for k in shards}
        spent = tr.generate((t for shard in texts.values() for t in shard), cache)
        total = max(sum(len(t) for t in texts.values()), 1)
        for k in shards:  # reuse of the cache, split over the window's shards by segments
            markers.mark(k, {"cached_segments": spent.cached_segments * len(texts[k]) / total})

    # ------------------------------------------------------------ rows
    def _rows(self, start: int, stop: int) -> list[dict]:
        # Without the null extras of sources that have none (a parallel column in a mixed mix).
        return [{k: v for k, v in row.items() if v is not None} for row in self.source.select(range(start, stop))]

    def _translate_window(self, shards: list[int]) -> None:
        from hala_exp.translation import gates, spans

        cfg = self.cfg
        size = cfg.translate.shard_size
        tr, cache = self._engine()
        cache.refresh()  # segments other jobs generated meanwhile
        units = {k: self._rows(k * size, min((k + 1) * size, len(self.source))) for k in shards}
        limit = cfg.source.max_chars  # the one row limit (rows fed directly skip build_mix's check)
        too_long = {row["id"] for rows in units.values() for row in rows if _row_problem(row, limit) == "too_long"}
        texts = list(
            dict.fromkeys(
                m["content"]
                for rows in units.values()
                for row in rows
                if row["id"] not in too_long
                for m in row["messages"]
            )
        )
        results, _ = tr.translate(texts, cache)  # every segment is in the cache: generate_plan ran first
        by_text = dict(zip(texts, results))
        script = target_script(cfg.direction, cfg.language)
        key = original_key(cfg)
        for k, rows in units.items():
            good, bad = [], []
            # One output for many distinct sources in this shard: a collapsed translator (the shard, not the
            # window, so the verdict does not depend on how many jobs share the stage).
            turns = (by_text[m["content"]] for row in rows if row["id"] not in too_long for m in row["messages"])
            collapsed = gates.collapsed_outputs(
                (
                    (spans.strip_markers(t.prose), spans.strip_markers(t.marked))
                    for t in turns
                    if not t.skipped and t.text is not None
                ),
                cfg.translate.gates,
            )
            for row in rows:
                translated, reason, turn, detail = [], None, None, None
                if row["id"] in too_long:
                    bad.append({"id": row["id"], "source": row.get("source"), "reason": "too_long", **bounded_row(row)})
                    continue
                for j, m in enumerate(row["messages"]):
                    t = by_text[m["content"]]
                    if t.skipped:
                        reason, turn = t.skipped, j
                        break
                    if t.text is None:
                        reason, turn, detail = "spans_not_restored", j, t.marked
                        break
                    gate = gates.check(
                        spans.strip_markers(t.prose),
                        spans.strip_markers(t.marked),
                        script,
                        cfg.translate.gates,
                        cfg.language.refusal_patterns,
                        collapsed,
                    )
                    if gate is not None:
                        reason, turn, detail = f"gate_{gate}", j, t.text
                        break
                    translated.append({**m, "content": t.text})
                if reason is None:
                    good.append({**row, "messages": translated, key: row["messages"]})
                else:
                    bad.append(
                        {
                            "id": row["id"],
                            "source": row.get("source"),
                            "reason": reason,
                            "turn": turn,
                            "output": detail,
                            "row": row,
                        }
                    )
            self.store.commit(k, good, bad, {"owner": self.owner})

    def close(self) -> None:
        if self.plan_ is not None:
            self.plan_.close()
        if self.translator is not None:
            self.translator.close()
        if self.cache is not None:
            self.cache.close()


def _assemble(
    ctx: StageContext, store, plan, n_shards: int, input_rejects: list[dict], per_source, devices
) -> StageResult:
    """Stream the shards into the outputs (each row once, checked by id) and sum the ledger of attempts."""
    from hala_exp.core.store import atomic_write_text
    from hala_exp.translation.cache import total_spent
    from hala_exp.translation.plan import DoneMarkers

    cfg: Config = ctx.config
    out = ctx.out_dir
    ledger = total_spent(out / "segments")
    markers = DoneMarkers(out)
    size = cfg.translate.shard_size
    # Segments not generated: repeats of a planned segment, plus planned ones an earlier attempt had cached.
    ledger.rows = 0
    ledger.cached_segments = round(
        plan.occurrences
        - plan.segments
        + sum(markers.facts(k).get("cached_segments", 0) for k in range(-(-plan.segments // size)))
    )
    seen: set[str] = set()
    reasons: Counter = Counter()
    out_sources: Counter = Counter()
    tmp_data, tmp_rejects = out / f".data.jsonl.tmp-{store.owner}", out / f".rejects.jsonl.tmp-{store.owner}"
    try:
        with open(tmp_data, "wb") as data, open(tmp_rejects, "wb") as rejects:
            lines = _reject_lines(input_rejects)
            for line in lines:
                reasons[json.loads(line)["reason"]] += 1
                rejects.write(line)
            for k in range(n_shards):
                meta = store.meta(k)
                ledger.rows += meta["rows"] + meta["rejected"]  # rows processed, kept or rejected
                for line in store.lines(k, "rows.jsonl"):
                    row = json.loads(line)
                    _once(row["id"], seen, store.dir)
                    out_sources[row.get("source")] += 1
                    data.write(line)
                for line in store.lines(k, "rejects.jsonl"):
                    rej = json.loads(line)
                    _once(rej["id"], seen, store.dir)
                    reasons[rej["reason"]] += 1
                    rejects.write(line)
        tmp_data.replace(out / "data.jsonl")
        tmp_rejects.replace(out / "rejects.jsonl")
    finally:
        tmp_data.unlink(missing_ok=True)
        tmp_rejects.unlink(missing_ok=True)
    _arrow(out)
    n_out = sum(out_sources.values())
    n_rejected = sum(reasons.values())
    metrics: dict[str, float | int] = {"rows": n_out, "rejected": n_rejected}
    metrics.update({f"rejected/{_metric_name(r)}": n for r, n in reasons.items()})
    metrics.update(ledger.metrics(devices, cfg.translate.price_per_device_hour_usd))
    details = {
        "rejects_by_reason": dict(reasons),
        "rows_in_by_source": dict(per_source or {}),
        "rows_out_by_source": dict(out_sources),
        "shards": n_shards,
        "ledger": asdict(ledger),
        "direction": cfg.direction,
        "language": cfg.language.code,
    }
    atomic_write_text(out / "ledger.json", json.dumps(asdict(ledger), indent=1))
    log.info("translate: %d rows out, %d rejected %s", n_out, n_rejected, dict(reasons))
    return StageResult(
        outputs={"data": "data.jsonl", "rejects": "rejects.jsonl", "arrow": "data.arrow"},
        metrics=metrics,
        details=details,
    )


def _reject_lines(input_rejects):
    """Quarantined input rows as JSONL lines: a list (rows fed directly) or the mix's rejects file, streamed."""
    if isinstance(input_rejects, list):
        for r in input_rejects:
            yield (json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8")
    elif Path(input_rejects).exists():
        with open(input_rejects, "rb") as fh:
            yield from fh


def _once(row_id: str, seen: set[str], where) -> None:
    # exactly once: every row is either translated or rejected, in one shard
    if row_id in seen:
        raise RuntimeError(f"{where}: row id {row_id!r} present more than once")
    seen.add(row_id)


def _arrow(out) -> None:
    """``data.arrow``: the translated rows as one Arrow stream file, memory-mapped by the next stages
    (``datasets.Dataset.from_file``); built by ``datasets``' JSON reader in bounded blocks. Past
    ``datasets.config.MAX_SHARD_SIZE`` (500 MB) that reader writes several files: their record batches are
    streamed into the one file."""
    import shutil

    import pyarrow as pa
    from datasets import Dataset

    from hala_exp.data.arrow import write_batches

    work = out / ".arrow-work"
    shutil.rmtree(work, ignore_errors=True)
    try:
        if (out / "data.jsonl").stat().st_size:
            ds = Dataset.from_json(str(out / "data.jsonl"), cache_dir=str(work))
            files = [f["filename"] for f in ds.cache_files]
            if len(files) == 1:
                os.replace(files[0], out / "data.arrow")
            else:
                write_batches(out / "data.arrow", ds.data.schema, _record_batches(files))
        else:  # no rows (all rejected): an empty stream that still loads
            with pa.OSFile(str(work.with_name(".data.arrow.tmp")), "wb") as fh:
                pa.ipc.new_stream(fh, pa.schema([("id", pa.string())])).close()
            os.replace(work.with_name(".data.arrow.tmp"), out / "data.arrow")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _record_batches(files: list[str]):
    import pyarrow as pa

    for name in files:
        with pa.memory_map(name) as source:
            yield from pa.ipc.open_stream(source)


def _metric_name(reason: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", reason.split(":")[0]).strip("_")
