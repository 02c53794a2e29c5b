"""translate stage: a mix of instruction data -> the same rows in the target language (messages schema).

Every turn is translated with roles and order kept; the original turns stay under ``messages_en``
(``messages_<code>`` for xx-en). Spans (code, math, URLs, ...) never reach the translator and come back
byte-exact; long turns are segmented; rows that fail span restoration or a quality gate are rejected with
their reason into ``rejects.jsonl``. Work is cut into shards of ``backend.shard_size`` rows that appear
atomically: a rerun after a crash skips finished shards, and reuses every segment generated before the crash.
``backend.runtime.shard_index/num_shards`` splits the shards between jobs sharing this directory; the job
that finds every shard finished assembles ``data.jsonl``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Literal

from hala_exp.core.stage import StageContext, StagePending, StageResult
from hala_exp.data.sources import MixConfig
from hala_exp.translation.config import BackendConfig, LanguageConfig, PromptConfig, target_script

log = logging.getLogger(__name__)

VERSIONS = ("transformers", "tokenizers", "torch", "vllm")
FORMAT_VERSION = 1  # bump when this stage's code changes the bytes it writes (part of the fingerprint)
CONCURRENT = True  # jobs split the shards (runtime.shard_index/num_shards) and share the directory


@dataclass
class Config:
    source: MixConfig
    prompt: PromptConfig
    language: LanguageConfig
    backend: BackendConfig
    direction: Literal["en-xx", "xx-en"] = "en-xx"


class ShardsPending(StagePending):
    """This job finished its shards; others' are still running (their last job assembles the output)."""


def input_files(config: Config) -> list[str]:
    from hala_exp.data.sources import input_files as mix_files

    return mix_files(config.source)


def original_key(cfg: Config) -> str:
    return "messages_en" if cfg.direction == "en-xx" else f"messages_{cfg.language.code}"


def run(ctx: StageContext) -> StageResult:
    from hala_exp.data.sources import load_mix

    cfg: Config = ctx.config
    rows, mix_rejects, per_source = load_mix(cfg.source, target_language=cfg.language.code)
    rows, input_rejects = validate_rows(rows, cfg.backend.max_row_chars)
    input_rejects = [
        {"id": None, "source": q.source, "reason": q.reason, "line": q.line, "raw": q.raw} for q in mix_rejects
    ] + input_rejects
    return translate_rows(ctx, rows, input_rejects, per_source)


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
                    "row": row,
                }
            )
    return good, bad


def _row_problem(row, max_chars: int) -> str | None:
    from hala_exp.data.messages import problem

    return problem(row, max_chars)


def translate_rows(
    ctx: StageContext, rows: list[dict], input_rejects: list[dict], per_source: dict[str, int] | None = None
) -> StageResult:
    """The stage's work on already loaded rows (separate from ``run`` so tests can feed rows directly)."""
    from hala_exp.translation.shards import SegmentCache, UnitStore

    cfg: Config = ctx.config
    rt = cfg.backend.runtime
    out = ctx.out_dir
    store = UnitStore(out)
    size = cfg.backend.shard_size
    units = [rows[i : i + size] for i in range(0, len(rows), size)]
    mine = [k for k in range(len(units)) if k % rt.num_shards == rt.shard_index and not store.done(k)]
    log.info(
        "translate: %d rows in %d shards; %d to do in job %d/%d",
        len(rows),
        len(units),
        len(mine),
        rt.shard_index,
        rt.num_shards,
    )
    translator = None
    if mine:
        from hala_exp.translation.engine import Translator

        translator = Translator(
            ctx.input("model", "model"), cfg.prompt, cfg.language, cfg.direction, cfg.backend, work_dir=out
        )
        cache = SegmentCache(out, job=f"{rt.shard_index}of{rt.num_shards}")
        for w in range(0, len(mine), rt.units_per_window):
            window = mine[w : w + rt.units_per_window]
            cache.refresh()  # segments other jobs finished meanwhile
            _translate_window(translator, cfg, cache, store, {k: units[k] for k in window})
    pending = [k for k in range(len(units)) if not store.done(k)]
    if pending:
        raise ShardsPending(
            f"job {rt.shard_index}/{rt.num_shards} finished its shards; {len(pending)} shard(s) "
            f"of other jobs are not done yet (e.g. {pending[:5]}); the job that finishes last "
            "assembles the output, or rerun with num_shards=1 to finish them here"
        )
    return _assemble(ctx, store, len(units), input_rejects, per_source, translator)


def _translate_window(tr, cfg: Config, cache, store, units: dict[int, list[dict]]) -> None:
    from hala_exp.translation import gates, spans
    from hala_exp.translation.ledger import Ledger

    before = Ledger(**asdict(tr.ledger))
    started = time.perf_counter()
    prepared: dict[str, object] = {}
    for rows in units.values():
        for row in rows:
            for m in row["messages"]:
                if m["content"] not in prepared:
                    prepared[m["content"]] = tr.prepare(m["content"])
    limit = cfg.backend.protect.max_protected_ratio
    code_heavy = {
        t for t, p in prepared.items() if limit is not None and t and p.protected.protected_chars / len(t) > limit
    }
    tr.generate_missing(
        (piece.text for t, p in prepared.items() if t not in code_heavy for piece in p.pieces if piece.translate),
        cache,
        progress=cfg.backend.runtime.progress,
    )
    delta = Ledger(**asdict(tr.ledger))
    delta.add(Ledger(**{k: -v for k, v in asdict(before).items()}))
    delta.seconds = time.perf_counter() - started
    n_rows = sum(len(r) for r in units.values())
    script = target_script(cfg.direction, cfg.language)
    key = original_key(cfg)
    for k, rows in units.items():
        good, bad = [], []
        for row in rows:
            translated, reason, turn, detail = [], None, None, None
            for j, m in enumerate(row["messages"]):
                p = prepared[m["content"]]
                if m["content"] in code_heavy:
                    reason, turn = "code_heavy", j
                    break
                marked, restored = tr.assemble(p, cache)
                if restored is None:
                    reason, turn, detail = "spans_not_restored", j, marked
                    break
                gate = gates.check(
                    spans.strip_markers(p.protected.text),
                    spans.strip_markers(marked),
                    script,
                    cfg.backend.gates,
                    cfg.language.refusal_patterns,
                )
                if gate is not None:
                    reason, turn, detail = f"gate_{gate}", j, restored
                    break
                translated.append({**m, "content": restored})
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
        share = len(rows) / max(n_rows, 1)  # the window's cost, split by rows
        ledger = {name: value * share for name, value in asdict(delta).items()}
        ledger["rows"] = len(rows)
        store.write(k, good, bad, ledger)


def _assemble(ctx: StageContext, store, n_units: int, input_rejects: list[dict], per_source, translator) -> StageResult:
    from hala_exp.data.jsonl import write_jsonl
    from hala_exp.translation.ledger import Ledger

    cfg: Config = ctx.config
    rows_out: list[dict] = []
    unit_rejects: list[dict] = []
    ledger = Ledger()
    for k in range(n_units):
        rows_out.extend(store.read(k))
        unit_rejects.extend(store.read(k, ".rejects"))
        for entry in store.read(k, ".ledger"):
            ledger.add(Ledger(**entry))
    rejects = input_rejects + unit_rejects
    ids = [r["id"] for r in rows_out] + [r["id"] for r in unit_rejects]
    if len(ids) != len(set(ids)):  # exactly once: every row is either translated or rejected, never twice
        dup = [i for i, c in Counter(ids).items() if c > 1][:5]
        raise RuntimeError(f"{store.dir}: row ids present more than once: {dup}")
    write_jsonl(ctx.out_dir / "data.jsonl", rows_out)
    write_jsonl(ctx.out_dir / "rejects.jsonl", rejects)
    reasons = Counter(r["reason"] for r in rejects)
    out_sources = Counter(r.get("source") for r in rows_out)
    devices = translator.devices if translator else cfg.backend.tensor_parallel_size * cfg.backend.data_parallel_size
    metrics: dict[str, float | int] = {"rows": len(rows_out), "rejected": len(rejects)}
    metrics.update({f"rejected/{_metric_name(r)}": n for r, n in reasons.items()})
    metrics.update(ledger.metrics(devices, cfg.backend.price_per_device_hour_usd))
    details = {
        "rejects_by_reason": dict(reasons),
        "rows_in_by_source": dict(per_source or {}),
        "rows_out_by_source": dict(out_sources),
        "shards": n_units,
        "ledger": asdict(ledger),
        "direction": cfg.direction,
        "language": cfg.language.code,
    }
    log.info("translate: %d rows out, %d rejected %s", len(rows_out), len(rejects), dict(reasons))
    return StageResult(outputs={"data": "data.jsonl", "rejects": "rejects.jsonl"}, metrics=metrics, details=details)


def _metric_name(reason: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", reason.split(":")[0]).strip("_")
