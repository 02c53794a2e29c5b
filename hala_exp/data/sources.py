"""Data sources and mixes: read English instruction sets in their own schemas and turn them into the
messages schema every stage exchanges, then sample a seeded mix of several sources.

Messages schema (one row per example)::

    {"id": str, "source": str, "messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}

Parallel sources (``adapter: parallel``) give a one-turn row whose ``messages`` hold the target-language side
and ``messages_en`` the English side: the same shape the translate stage writes, so the bilingual stage
treats a parallel pair and a translated turn alike.

Paths: absolute, relative to the current directory, or ``package://<python package>/<path inside it>`` for
files shipped with an installed package (``package://hala_exp/assets/embedded/sft_en.jsonl``). The package
form works from any working directory and needs no Hydra resolver, so the embedded configs use it.

Bad rows (missing or wrong-typed fields, empty strings, unknown roles, absurd length, duplicate ids) are
quarantined with a reason and counted, never dropped silently. Sampling is seeded per (mix seed, source
name) through SHA-256, so a mix is the same in every process (Python's ``hash()`` is salted per process).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hala_exp.core.schema import ConfigError, build
from hala_exp.data.jsonl import Quarantined, read_jsonl

log = logging.getLogger(__name__)

Adapter = Literal[
    "open_orca", "sharegpt", "tulu", "messages", "alpaca", "lamini", "pairwise", "single_turn", "parallel"
]
ROLES = ("system", "user", "assistant")
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
PACKAGE_SCHEME = "package://"


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
    comment: str | None = None  # size, licence, why: documentation only

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
    max_chars: int = 200_000  # a row longer than this (all turns) is quarantined as absurd (our choice)

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


# ---------------------------------------------------------------------------------------------------- paths


def resolve_path(path: str) -> Path:
    """``package://pkg/rel/path`` -> the file inside the installed package; other paths as given (``~`` expanded)."""
    if path.startswith(PACKAGE_SCHEME):
        package, _, rel = path[len(PACKAGE_SCHEME) :].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{path}: package {package!r} is not installed")
        return Path(list(spec.submodule_search_locations)[0]) / rel
    return Path(path).expanduser()


def input_files(mix: MixConfig | dict) -> list[str]:
    """Local files and directories a mix reads (hub sources excluded): for stage fingerprints."""
    mix = as_mix(mix)
    paths: list[str] = []
    for src in mix.sources:
        if src.path is not None:
            paths.append(str(resolve_path(src.path).resolve()))
        for p in (src.text_files or {}).values():
            paths.append(str(resolve_path(p).resolve()))
    return paths


def as_mix(mix: MixConfig | dict, where: str = "mix") -> MixConfig:
    """Accept a MixConfig or a plain mapping (e.g. a resolved Hydra node); validate either way."""
    if isinstance(mix, MixConfig):
        return build(MixConfig, dataclasses.asdict(mix), where)
    return build(MixConfig, mix, where)


# ---------------------------------------------------------------------------------------------------- reading


def read_source(src: SourceConfig) -> tuple[Iterable[tuple[int, dict]], list[Quarantined]]:
    """Raw rows of a source as (1-based position, row); unreadable JSONL lines come back quarantined.
    Hub and other ``datasets`` sources are iterated lazily (Arrow-backed), not copied into Python lists."""
    if src.text_files is not None:
        return _read_text_files(src), []
    if src.hub is not None:
        import datasets

        ds = datasets.load_dataset(src.hub, src.subset, split=src.split, revision=src.revision)
        return enumerate(ds, start=1), []
    path = resolve_path(src.path)
    if not path.exists():
        raise FileNotFoundError(f"source {src.name!r}: {path} not found")
    if path.is_file() and path.suffix == ".jsonl":
        got = read_jsonl(path)
        return _with_line_numbers(path, got.rows, {q.line for q in got.rejects}), [
            dataclasses.replace(q, source=src.name) for q in got.rejects
        ]
    return _read_with_datasets(src, path), []


def _with_line_numbers(path: Path, rows: list[dict], rejected_lines: set[int]) -> list[tuple[int, dict]]:
    """read_jsonl keeps good rows in file order but not their line numbers: recover them (blank lines and
    quarantined lines are the ones without a row), so every quarantine entry points at its file line."""
    with open(path, "rb") as fh:
        lines = [n for n, raw in enumerate(fh, start=1) if raw.strip() and n not in rejected_lines]
    if len(lines) != len(rows):  # the file changed under us; positions are then only an index
        return list(enumerate(rows, start=1))
    return list(zip(lines, rows))


def _read_with_datasets(src: SourceConfig, path: Path) -> Iterable[tuple[int, dict]]:
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
        ds = datasets.load_dataset(builder, data_files=data_files, split="train")
    except Exception as e:  # datasets wraps parse errors in many types; keep the path in the message
        raise ValueError(f"source {src.name!r}: cannot read {path}: {e}") from e
    return enumerate(ds, start=1)


def _read_text_files(src: SourceConfig) -> list[tuple[int, dict]]:
    columns: dict[str, list[str]] = {}
    for lang, p in src.text_files.items():
        path = resolve_path(p)
        if not path.is_file():
            raise FileNotFoundError(f"source {src.name!r}: text file for {lang!r} not found: {path}")
        # split on "\n" only: str.splitlines would also break at U+2028 and friends inside a sentence
        lines = path.read_text(encoding="utf-8").split("\n")
        columns[lang] = lines[:-1] if lines and lines[-1] == "" else lines
    lengths = {lang: len(lines) for lang, lines in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"source {src.name!r}: text files are not line-aligned: {lengths}")
    langs = list(columns)
    return [(i, {lang: columns[lang][i - 1] for lang in langs}) for i in range(1, next(iter(lengths.values())) + 1)]


# ---------------------------------------------------------------------------------------------------- adapters


def _text(row: dict, column: str, required: bool = True) -> str | None:
    if column not in row or row[column] is None:
        if required:
            raise BadRow(f"missing:{column}")
        return None
    value = row[column]
    if not isinstance(value, str):
        raise BadRow(f"not_string:{column}")
    if not value.strip():
        if required:
            raise BadRow(f"empty:{column}")
        return None
    return value


def _single_turn(row: dict, columns: dict[str, str]) -> list[dict]:
    messages = []
    if "system" in columns and (system := _text(row, columns["system"], required=False)):
        messages.append({"role": "system", "content": system})
    user = _text(row, columns["user"])
    if "input" in columns and (extra := _text(row, columns["input"], required=False)):
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


# ---------------------------------------------------------------------------------------------------- ids, sampling


def content_id(source: str, messages: list[dict]) -> str:
    payload = json.dumps([source, messages], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big"))


def sample_indices(size: int, src: SourceConfig, seed: int) -> list[tuple[int, int]]:
    """(index, repeat) pairs: whole copies when asked for more rows than there are, then a seeded sample."""
    if size == 0:
        return []
    n = src.count if src.count is not None else round(src.fraction * size)
    copies, rest = divmod(n, size)
    rng = _rng(seed, src.name)
    picked = [(i, r) for r in range(copies) for i in range(size)]
    picked += [(i, copies) for i in sorted(rng.sample(range(size), rest))]
    return picked


def _filtered_column(raw: dict, where: dict[str, list[str]]) -> str | None:
    for column, allowed in where.items():
        if raw.get(column) not in allowed:
            return column
    return None


def adapt_source(
    src: SourceConfig, target_language: str | None = None, max_chars: int = 200_000, seen_ids: set[str] | None = None
) -> tuple[list[dict], list[Quarantined]]:
    """Every valid row of one source in the messages schema, and the quarantined ones with reasons."""
    raw_rows, rejects = read_source(src)
    seen = set() if seen_ids is None else seen_ids
    rows = []
    for pos, raw in raw_rows:
        try:
            if not isinstance(raw, dict):
                raise BadRow("not_an_object")
            if (column := _filtered_column(raw, src.where)) is not None:
                # a deliberate filter, not bad data: counted, and only the value is kept as "raw"
                rejects.append(Quarantined(src.name, pos, f"filtered:{column}", str(raw.get(column))))
                continue
            row = adapt(raw, src, target_language)
            chars = sum(len(m["content"]) for m in row["messages"] + row.get("messages_en", []))
            if chars > max_chars:
                raise BadRow("too_long")
            if src.max_code_fraction is not None and code_fraction(row["messages"]) > src.max_code_fraction:
                raise BadRow("code_heavy")
            given = raw.get(src.columns.get("id", "id"))
            if isinstance(given, (str, int)) and not isinstance(given, bool) and str(given).strip():
                row_id = str(given)
            else:
                row_id = content_id(src.name, row["messages"] + row.get("messages_en", []))
            if row_id in seen:
                raise BadRow("duplicate_id")
            seen.add(row_id)
        except BadRow as e:
            rejects.append(Quarantined(src.name, pos, str(e), json.dumps(raw, ensure_ascii=False, default=str)))
            continue
        rows.append({"id": row_id, "source": src.name, **row})
    return rows, rejects


def load_mix(
    mix: MixConfig | dict,
    target_language: str | None = None,
) -> tuple[list[dict], list[Quarantined], dict[str, int]]:
    """Read, adapt, quarantine and sample every source of a mix.

    Returns (rows, rejects, rows selected per source). Up-sampled copies get ids ``<id>#r<k>`` so that ids
    stay unique (stages key exactly-once work by id). ``target_language`` names the target column of
    parallel sources that do not set ``target``.
    """
    mix = as_mix(mix)
    rows: list[dict] = []
    rejects: list[Quarantined] = []
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for src in mix.sources:
        valid, bad = adapt_source(src, target_language, mix.max_chars, seen)
        rejects.extend(bad)
        picked = sample_indices(len(valid), src, mix.seed)
        for i, repeat in picked:
            row = valid[i] if repeat == 0 else {**valid[i], "id": f"{valid[i]['id']}#r{repeat}"}
            rows.append(row)
        counts[src.name] = len(picked)
        log.info("source %s: %d valid, %d quarantined, %d selected", src.name, len(valid), len(bad), len(picked))
    return rows, rejects, counts


def reject_counts(rejects: Iterable[Quarantined]) -> dict[str, dict[str, int]]:
    """source -> reason -> count: for manifests and summaries."""
    out: dict[str, dict[str, int]] = {}
    for q in rejects:
        per = out.setdefault(q.source, {})
        per[q.reason] = per.get(q.reason, 0) + 1
    return out
