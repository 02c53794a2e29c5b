"""Data sources: read instruction sets and parallel text in their own schemas and turn each row into the
messages schema every stage exchanges (``hala_exp.data.messages``). Seeded sampling into a mix lives in
``hala_exp.data.mixes``.

Parallel sources (``adapter: parallel``) give a one-turn row whose ``messages`` hold the target-language side
and ``messages_en`` the English side: the same shape the translate stage writes, so the bilingual stage
treats a parallel pair and a translated turn alike.

Paths follow ``hala_exp.data.paths``: absolute, relative to the project root, or
``package://<python package>/<path inside it>`` (what the embedded configs use).

Rows are streamed from the file (memory is one row). Bad rows (missing or wrong-typed fields, empty strings,
unknown roles, a non-string id, absurd length, duplicate ids) are quarantined with a reason and their line,
never dropped silently and never repaired: an id that is not a string (an integer id becomes its decimal
string) is refused, not replaced by a hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hala_exp.core.schema import NOT_FINGERPRINTED, ConfigError, build
from hala_exp.data.jsonl import Quarantined, iter_jsonl
from hala_exp.data.messages import MAX_CHARS, ROLES, problem
from hala_exp.data.parallel import read_aligned
from hala_exp.data.paths import resolve

log = logging.getLogger(__name__)

Adapter = Literal[
    "open_orca", "sharegpt", "tulu", "messages", "alpaca", "lamini", "pairwise", "single_turn", "parallel"
]
# ShareGPT speaker names -> our roles. Hermes-3 uses system/human/gpt; other dumps use user/assistant.
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
}
# Column names of the single-turn schemas (override per source with `columns:`).
SINGLE_TURN_COLUMNS = {
    "open_orca": {"system": "system_prompt", "user": "question", "assistant": "response"},  # Open-Orca/OpenOrca
    "alpaca": {"user": "instruction", "input": "input", "assistant": "output"},  # Alpaca; ReAlign-Alpaca
    "lamini": {"user": "instruction", "assistant": "response"},  # MBZUAI/LaMini-instruction
    "pairwise": {"user": "prompt", "assistant": "chosen"},  # Dahoas/synthetic-instruct-gptj-pairwise
    "single_turn": {},  # every column named in `columns:`
}
LOCAL_DATASET_BUILDERS = {".json": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}


@dataclass
class SourceConfig:
    """One source of a mix. Exactly one of ``fraction`` (a float: 0.5, 1.0, 2.0) or ``count`` (an int)."""

    name: str  # short, unique in the mix; becomes each row's "source"
    adapter: Adapter
    path: str | None = None  # local .jsonl/.json/.parquet/.csv file or a directory of them
    hub: str | None = None  # Hugging Face dataset id, read with datasets.load_dataset
    subset: str | None = None  # hub config name
    split: str = "train"
    revision: str | None = None
    text_files: dict[str, str] | None = None  # line-aligned plain text per language: {en: f.en, ar: f.ar}
    # int before float on purpose: config_check then keeps `1` an int, and check() can refuse it.
    fraction: int | float | None = None
    count: int | float | None = None
    columns: dict[str, str] = field(default_factory=dict)  # role or input -> column name
    target: str | None = None  # parallel: the target-language column (default: the mix's target language)
    where: dict[str, list[str]] = field(default_factory=dict)  # keep rows whose column value is listed
    max_code_fraction: float | None = None  # drop rows whose text is more than this share code (None: keep)
    comment: str | None = field(default=None, metadata=NOT_FINGERPRINTED)  # size, licence, why: documentation only

    def check(self) -> None:
        src = f"(source {self.name!r})"
        given = [k for k in ("path", "hub", "text_files") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(f"path: give exactly one of path, hub or text_files {src}; got {given or 'none'}")
        if self.text_files is not None and self.adapter != "parallel":
            raise ConfigError(f"text_files: only for adapter=parallel {src}")
        if (self.fraction is None) == (self.count is None):
            raise ConfigError(f"fraction: give exactly one of fraction (a float, e.g. 1.0) or count (an int) {src}")
        if self.fraction is not None:
            if isinstance(self.fraction, bool) or not isinstance(self.fraction, float):
                raise ConfigError(
                    f"fraction: {self.fraction!r} is a bare integer, which is ambiguous {src}; write "
                    f"fraction: {float(self.fraction)!r} for that share of the source, or count: {self.fraction} "
                    "for that many rows"
                )
            if self.fraction <= 0:
                raise ConfigError(f"fraction: {self.fraction} must be > 0 (above 1.0 up-samples) {src}")
        if self.count is not None:
            if isinstance(self.count, bool) or not isinstance(self.count, int):
                raise ConfigError(
                    f"count: {self.count!r} must be an integer number of rows {src}; "
                    "use fraction: for a share of the source"
                )
            if self.count <= 0:
                raise ConfigError(f"count: {self.count} must be > 0 {src}")
        if self.adapter == "single_turn" and not {"user", "assistant"} <= set(self.columns):
            raise ConfigError(f"columns: adapter=single_turn needs columns for user and assistant {src}")
        allowed = {"system", "user", "assistant", "input", "id", "conversations", "messages", "en"}
        if unknown := sorted(set(self.columns) - allowed):
            raise ConfigError(f"columns: unknown key(s) {unknown} {src}; allowed: {sorted(allowed)}")
        if self.max_code_fraction is not None and not 0.0 <= self.max_code_fraction <= 1.0:
            raise ConfigError(f"max_code_fraction: {self.max_code_fraction} is outside [0, 1] {src}")


@dataclass
class MixConfig:
    """A seeded mix of sources. Rows keep the sources' order; each source's sample keeps its file order."""

    sources: list[SourceConfig]
    seed: int = 0
    max_chars: int = MAX_CHARS  # a row longer than this (all turns) is quarantined as too_long

    def check(self) -> None:
        if not self.sources:
            raise ConfigError("sources: a mix needs at least one source")
        names = [s.name for s in self.sources]
        if dups := sorted({n for n in names if names.count(n) > 1}):
            raise ConfigError(f"sources: duplicate source name(s) {dups}; names must be unique")
        if self.max_chars <= 0:
            raise ConfigError(f"max_chars: {self.max_chars} must be > 0")


class BadRow(ValueError):
    """A row an adapter cannot turn into messages; the message is the quarantine reason."""


# ---------------------------------------------------------------------------------------------------- planning


def input_files(mix: MixConfig | dict) -> list[str]:
    """Local files and directories a mix reads (hub sources excluded): for stage fingerprints. Called when the
    pipeline plans, so it also refuses, before any compute, a local source that is empty or of which the
    configured fraction selects no row (``ConfigError`` naming the source and file)."""
    mix = as_mix(mix)
    paths: list[str] = []
    for src in mix.sources:
        files = [src.path] if src.path is not None else list((src.text_files or {}).values())
        for p in files:
            path = resolve(p)
            if not path.exists():
                raise FileNotFoundError(f"source {src.name!r}: {path} not found")
            _check_not_empty(src, path)
            paths.append(str(path.resolve()))
    return paths


def _check_not_empty(src: SourceConfig, path: Path) -> None:
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    if not any(f.stat().st_size for f in files):
        raise ConfigError(f"source {src.name!r}: {path} is empty: a mix source needs at least one row")
    if src.text_files is None and (path.is_dir() or path.suffix != ".jsonl"):
        return  # parquet, csv, a directory: the build counts their rows
    # Count rows (JSONL: non-blank lines; text: every line) only as far as the check needs: one row for a
    # count, else the fewest rows of which the fraction selects one (round(fraction * rows) >= 1).
    needed = 1
    if src.fraction is not None:
        needed = max(1, int(0.5 / src.fraction))
        while round(src.fraction * needed) < 1:  # a step or two past 0.5 / fraction (round half to even)
            needed += 1
    rows = 0
    with open(path, "rb") as fh:
        for raw in fh:
            rows += 1 if src.text_files is not None else bool(raw.strip())
            if rows >= needed:
                return
    if rows == 0:
        raise ConfigError(f"source {src.name!r}: {path} is empty: a mix source needs at least one row")
    raise ConfigError(
        f"source {src.name!r}: fraction {src.fraction} of the {rows} row(s) in {path} selects no row; "
        "raise the fraction or give a count"
    )


def as_mix(mix: MixConfig | dict, where: str = "mix") -> MixConfig:
    """Accept a MixConfig or a plain mapping (e.g. a resolved Hydra node); validate either way."""
    if isinstance(mix, MixConfig):
        return build(MixConfig, dataclasses.asdict(mix), where)
    return build(MixConfig, mix, where)


# ---------------------------------------------------------------------------------------------------- reading


def read_source(src: SourceConfig) -> Iterator[tuple[int, Any]]:
    """Raw rows of a source as (1-based line or row number, row), streamed: JSONL and text files a line at
    a time, hub and other ``datasets`` sources row by row from their memory-mapped Arrow files. A JSONL line
    that cannot be parsed comes as (line, Quarantined)."""
    if src.text_files is not None:
        yield from read_aligned(src.text_files, f"source {src.name!r}")
        return
    if src.hub is not None:
        import datasets

        yield from enumerate(datasets.load_dataset(src.hub, src.subset, split=src.split, revision=src.revision), 1)
        return
    assert src.path is not None  # check(): exactly one of path, hub, text_files
    path = resolve(src.path)
    if not path.exists():
        raise FileNotFoundError(f"source {src.name!r}: {path} not found")
    if path.is_file() and path.suffix == ".jsonl":
        yield from iter_jsonl(path, src.name)
        return
    yield from enumerate(_load_with_datasets(src, path), start=1)


def _load_with_datasets(src: SourceConfig, path: Path):
    import datasets

    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    suffixes = {".jsonl": "json", **LOCAL_DATASET_BUILDERS}
    builders = {suffixes[p.suffix] for p in files if p.suffix in suffixes}
    if len(builders) != 1:
        raise ValueError(
            f"source {src.name!r}: {path} must hold files of one format among "
            f"{sorted(suffixes)}; found {sorted({p.suffix for p in files})}"
        )
    (builder,) = builders
    data_files = [str(p) for p in files if suffixes.get(p.suffix) == builder]
    try:
        return datasets.load_dataset(builder, data_files=data_files, split="train")
    except Exception as e:  # datasets wraps parse errors in many types; keep the path in the message
        raise ValueError(f"source {src.name!r}: cannot read {path}: {e}") from e


# ---------------------------------------------------------------------------------------------------- adapters


def _optional_text(row: dict, column: str) -> str | None:
    """The column's text, or None when it is absent, null or blank."""
    value = row.get(column)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRow(f"not_string:{column}")
    return value if value.strip() else None


def _text(row: dict, column: str) -> str:
    """The column's text; absent, null, blank or not a string is a BadRow naming the column."""
    if row.get(column) is None:
        raise BadRow(f"missing:{column}")
    if (value := _optional_text(row, column)) is None:
        raise BadRow(f"empty:{column}")
    return value


def _single_turn(row: dict, columns: dict[str, str]) -> list[dict]:
    messages = []
    if "system" in columns and (system := _optional_text(row, columns["system"])):
        messages.append({"role": "system", "content": system})
    user = _text(row, columns["user"])
    if "input" in columns and (extra := _optional_text(row, columns["input"])):
        user = f"{user}\n\n{extra}"  # Alpaca's input is the instruction's context (our choice: blank line)
    messages.append({"role": "user", "content": user})
    messages.append({"role": "assistant", "content": _text(row, columns["assistant"])})
    return messages


def _turns(row: dict, column: str, role_key: str, content_key: str, roles: dict[str, str]) -> list[dict]:
    turns = row.get(column)
    if turns is None:
        raise BadRow(f"missing:{column}")
    if not isinstance(turns, list) or not turns:
        raise BadRow(f"not_a_list:{column}" if not isinstance(turns, list) else f"empty:{column}")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise BadRow(f"not_an_object:{column}[{i}]")
        speaker = turn.get(role_key)
        if not isinstance(speaker, str) or speaker.lower() not in roles:
            raise BadRow(f"unknown_role:{speaker}")
        content = turn.get(content_key)
        if not isinstance(content, str):
            raise BadRow(f"not_string:{column}[{i}].{content_key}")
        if not content.strip():
            raise BadRow(f"empty:{column}[{i}].{content_key}")
        messages.append({"role": roles[speaker.lower()], "content": content})
    if not any(m["role"] == "user" for m in messages):
        raise BadRow("no_user_turn")
    return messages


def adapt(row: dict, src: SourceConfig, target_language: str | None = None) -> dict:
    """One source row -> a messages-schema row without id/source (raises BadRow with the reason)."""
    kind = src.adapter
    if kind in SINGLE_TURN_COLUMNS:
        return {"messages": _single_turn(row, {**SINGLE_TURN_COLUMNS[kind], **src.columns})}
    if kind == "sharegpt":
        return {
            "messages": _turns(row, src.columns.get("conversations", "conversations"), "from", "value", SHAREGPT_ROLES)
        }
    if kind in ("tulu", "messages"):
        return {
            "messages": _turns(row, src.columns.get("messages", "messages"), "role", "content", {r: r for r in ROLES})
        }
    if kind == "parallel":
        return _parallel(row, src, target_language)
    raise BadRow(f"unknown_adapter:{kind}")  # unreachable after config validation


def _parallel(row: dict, src: SourceConfig, target_language: str | None) -> dict:
    # OPUS-100 on the hub nests both sides: {"translation": {"en": ..., "ar": ...}}.
    pair = row["translation"] if isinstance(row.get("translation"), dict) else row
    en_key = src.columns.get("en", "en")
    target = src.target or target_language
    if target is None:
        others = [k for k, v in pair.items() if k not in (en_key, "id") and isinstance(v, str)]
        if len(others) != 1:
            raise BadRow("ambiguous_target_column")
        target = others[0]
    en, xx = _text(pair, en_key), _text(pair, target)
    return {
        "messages": [{"role": "user", "content": xx}],
        "messages_en": [{"role": "user", "content": en}],
        "language": target,
    }


# ---------------------------------------------------------------------------------------------------- code filter

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |#include|public |private |function |const |let |var |return\b|"
    r"for\s*\(|while\s*\(|if\s*\(|SELECT |<\w+[^>]*>|[{}]\s*$|.*;\s*$|\s{4,}\S)"
)


def code_fraction(messages: Iterable[dict]) -> float:
    """Share of characters that are code: fenced blocks, plus unfenced lines that look like code.
    A heuristic (our choice) for the paper's "Hermes-3 without code" ([S] reviews)."""
    total = code = 0
    for m in messages:
        text = m["content"]
        total += len(text)
        code += sum(len(b) for b in _FENCE.findall(text))
        rest = _FENCE.sub("", text)
        code += sum(len(line) for line in rest.splitlines() if _CODE_LINE.match(line))
    return code / total if total else 0.0


# ---------------------------------------------------------------------------------------------------- rows


def content_id(source: str, messages: list[dict]) -> str:
    payload = json.dumps([source, messages], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _filtered_column(raw: dict, where: dict[str, list[str]]) -> str | None:
    for column, allowed in where.items():
        if raw.get(column) not in allowed:
            return column
    return None


def _row_id(raw: dict, src: SourceConfig, turns: list[dict]) -> Any:
    """The source's id (an integer id as its decimal string), or a content hash when the row has none. Any
    other value is kept as it is, so that the messages validator quarantines it rather than replacing it."""
    given = raw.get(src.columns.get("id", "id"))
    if given is None:
        return content_id(src.name, turns)
    if isinstance(given, int) and not isinstance(given, bool):
        return str(given)
    return given


def adapted_rows(
    src: SourceConfig, target_language: str | None, max_chars: int, seen_ids: set[str]
) -> Iterator[dict | Quarantined]:
    """Every row of one source in the messages schema, in file order, or its quarantine entry. ``seen_ids``
    is shared by the sources of a mix: an id met before is a duplicate."""
    keys = ("messages", "messages_en") if src.adapter == "parallel" else ("messages",)
    for pos, raw in read_source(src):
        if isinstance(raw, Quarantined):
            yield raw
            continue
        try:
            if not isinstance(raw, dict):
                raise BadRow("not_an_object")
            if (column := _filtered_column(raw, src.where)) is not None:
                # a deliberate filter, not bad data: counted, and only the value is kept as "raw"
                yield Quarantined(src.name, pos, f"filtered:{column}", str(raw.get(column)))
                continue
            adapted = adapt(raw, src, target_language)
            row = {"id": _row_id(raw, src, [m for k in keys for m in adapted[k]]), "source": src.name, **adapted}
            if reason := problem(row, max_chars, keys=keys):
                raise BadRow(reason)
            if src.max_code_fraction is not None and code_fraction(row["messages"]) > src.max_code_fraction:
                raise BadRow("code_heavy")
            if row["id"] in seen_ids:
                raise BadRow("duplicate_id")
            seen_ids.add(row["id"])
        except BadRow as e:
            yield Quarantined(src.name, pos, str(e), json.dumps(raw, ensure_ascii=False, default=str))
            continue
        yield row


def load_mix(
    mix: MixConfig | dict, target_language: str | None = None
) -> tuple[list[dict], list[Quarantined], dict[str, int]]:
    """A small mix as Python lists: (rows, quarantined rows, rows selected per source). Only for mixes that
    fit in memory (a held-out set); stages read ``hala_exp.data.mixes.build_mix``'s Arrow dataset. Kept while
    the translate and quantize stages still call it; as before, a source may select no row (callers check)."""
    import tempfile

    from hala_exp.data.mixes import build_mix

    with tempfile.TemporaryDirectory(prefix="hala-mix-") as tmp:
        built = build_mix(mix, Path(tmp), target_language, require_rows=False)
        rows = list(built.rows())
        rejects = [Quarantined(**entry) for _, entry in iter_jsonl(built.rejects_path)]
        return rows, rejects, built.per_source


def reject_counts(rejects: Iterable[Quarantined]) -> dict[str, dict[str, int]]:
    """source -> reason -> count: for manifests and summaries."""
    out: dict[str, dict[str, int]] = {}
    for q in rejects:
        per = out.setdefault(q.source, {})
        per[q.reason] = per.get(q.reason, 0) + 1
    return out
