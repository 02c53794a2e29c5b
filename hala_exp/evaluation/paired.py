"""Paired test sets: the source text from one dataset, the reference from another, joined on a key.

The Hala report's translator test set is an "EN->AR MMLU translation" set ([S], ../shared/PAPER.md): English
MMLU questions (``cais/mmlu``) against their human Arabic translation (``MBZUAI/human_translated_arabic_mmlu``).
The two datasets share no id column, so a pair is defined by a key the config names: columns of each row,
plus two computed parts, ``_config`` (the hub config, or the local file's ``name``, a row came from) and
``_index`` (the row's position among the rows that share the key's other parts, in file order). MMLU's key is
``[_config, _index]``: the subject config and the row number inside it.

Alignment is checked, not assumed: both sides must hold exactly the same keys, each once; otherwise the
load fails naming the first key that is on one side only (or repeated), so a truncated translation is found
before any model runs. A key made of positions cannot see rows reordered inside a subject, so
``agree_fields`` names columns both sides share (MMLU's ``answer`` index): a pair whose values differ is
quarantined, and more than ``max_disagreement`` of them fails the load naming the first such key. Rows that
cannot be read or have an empty text still count for ``_index`` (positions stay aligned) and their pair is
quarantined and counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hala_exp.core.schema import ConfigError
from hala_exp.data.paths import resolve

COMPUTED = ("_config", "_index")


@dataclass
class PairedSide:
    """One side of a paired test set: rows from hub configs or local JSONL files, and the text to use."""

    text_fields: list[str]  # joined with a newline; a list-valued field (e.g. MMLU choices) joins its items
    hub_id: str | None = None
    configs: list[str] = field(default_factory=list)  # hub configs (e.g. MMLU subjects); empty: the default
    split: str = "test"
    revision: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # local: name (the row's _config) -> JSONL path

    def check(self) -> None:
        if bool(self.hub_id) == bool(self.files):
            raise ConfigError("hub_id / files: set exactly one (a hub dataset or local JSONL files)")
        if not self.text_fields:
            raise ConfigError("text_fields: at least one field is needed")

    def local_files(self) -> list[str]:
        return [str(resolve(p)) for p in self.files.values()]

    def describe(self) -> str:
        return f"hub:{self.hub_id}" if self.hub_id else ", ".join(str(resolve(p)) for p in self.files.values())


@dataclass
class PairedRows:
    keys: list[tuple]
    texts: dict[tuple, str | None]  # None: unreadable row or empty text
    agree: dict[tuple, tuple] = field(default_factory=dict)  # key -> values of the agree_fields


def check_key(key: list[str]) -> None:
    if not key:
        raise ConfigError("key: name at least one column (or _config / _index) to align the two sides on")
    if len(set(key)) != len(key):
        raise ConfigError(f"key: {key} repeats a part")


def load_side(side: PairedSide, key: list[str], what: str, agree_fields: Sequence[str] = ()) -> PairedRows:
    """Every row's key (in order), text and agree_fields values; a key that repeats on one side raises."""
    counters: dict[tuple, int] = {}
    out = PairedRows([], {})
    for config, origin, row in _rows(side):
        parts: list[object] = []  # one per key part; _index is a placeholder until the group is known
        for name in key:
            if name == "_config":
                parts.append(config)
            elif name == "_index":
                parts.append(None)  # filled below, once the other parts are known
            elif row is None:
                parts.append(f"<unreadable {origin}>")
            elif name not in row:
                raise ValueError(f"{what}: {origin} has no key column {name!r} (columns: {sorted(row)})")
            else:
                parts.append(row[name])
        if "_index" in key:
            group = tuple(p for n, p in zip(key, parts) if n != "_index")
            parts[key.index("_index")] = counters.get(group, 0)
            counters[group] = counters.get(group, 0) + 1
        k = tuple(parts)
        if k in out.texts:
            raise ValueError(f"{what}: key {_show(key, k)} occurs twice ({origin}); the key must name one row")
        out.keys.append(k)
        out.texts[k] = None if row is None else _text(row, side.text_fields, origin, what)
        if row is not None and agree_fields:
            absent = [f for f in agree_fields if f not in row]
            if absent:
                raise ValueError(f"{what}: {origin} has no agree field(s) {absent} (columns: {sorted(row)})")
            out.agree[k] = tuple(row[f] for f in agree_fields)
    return out


def align(
    name: str,
    key: list[str],
    source: PairedRows,
    reference: PairedRows,
    agree_fields: Sequence[str] = (),
    max_disagreement: float = 0.0,
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(pairs in source order, rejects): raises at the first key present on one side only, or at the first
    disagreeing pair when more than ``max_disagreement`` of the pairs disagree on ``agree_fields``."""
    where = _first_misaligned(key, source, reference)
    if where is not None:
        raise ValueError(
            f"test set {name!r}: the two sides are not aligned on key {key}: first misaligned key {where} "
            f"(source {len(source.keys)} rows, reference {len(reference.keys)})"
        )
    pairs: list[tuple[str, str]] = []
    rejects: dict[str, int] = {}
    disagreeing: list[tuple] = []
    for k in source.keys:
        s, r = source.texts[k], reference.texts[k]
        if s is None or r is None or not s.strip() or not r.strip():
            rejects["empty_or_unreadable_side"] = rejects.get("empty_or_unreadable_side", 0) + 1
        elif agree_fields and source.agree.get(k) != reference.agree.get(k):
            disagreeing.append(k)
        else:
            pairs.append((s, r))
    if disagreeing:
        k = disagreeing[0]
        if len(disagreeing) > max_disagreement * len(source.keys):
            raise ValueError(
                f"test set {name!r}: {len(disagreeing)} of {len(source.keys)} pairs disagree on {agree_fields} "
                f"(allowed: {max_disagreement:.1%}); first misaligned key {_show(key, k)}: source "
                f"{source.agree.get(k)}, reference {reference.agree.get(k)}"
            )
        rejects["agree_fields_differ"] = len(disagreeing)
    return pairs, rejects


def _first_misaligned(key: list[str], source: PairedRows, reference: PairedRows) -> str | None:
    """The first key on one side only (source side first), worded for the error; None when aligned."""
    missing = next((k for k in source.keys if k not in reference.texts), None)
    if missing is not None:
        return f"{_show(key, missing)} is in the source but not in the reference"
    extra = next((k for k in reference.keys if k not in source.texts), None)
    if extra is not None:
        return f"{_show(key, extra)} is in the reference but not in the source"
    return None


def _show(key: list[str], k: tuple) -> str:
    return "(" + ", ".join(f"{n}={v!r}" for n, v in zip(key, k)) + ")"


def _text(row: dict, fields: list[str], origin: str, what: str) -> str:
    parts: list[str] = []
    for f in fields:
        if f not in row:
            raise ValueError(f"{what}: {origin} has no text field {f!r} (columns: {sorted(row)})")
        value = row[f]
        if isinstance(value, (list, tuple)):
            parts.extend(str(v) for v in value)
        else:
            parts.append(str(value or ""))
    return "\n".join(parts)


def _rows(side: PairedSide) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """(config name, 'file:line' or 'hub:config[i]', row or None when unreadable) in file order."""
    if side.files:
        for name, path in side.files.items():
            p = resolve(path)
            if not p.is_file():
                raise FileNotFoundError(f"test set file not found: {p}")
            with open(p, encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        row = None
                    yield name, f"{p}:{lineno}", row if isinstance(row, dict) else None
        return
    from datasets import load_dataset

    configs: Sequence[str | None] = side.configs or [None]  # None: the dataset's default config
    for config in configs:
        data = load_dataset(side.hub_id, config, split=side.split, revision=side.revision)
        for i, row in enumerate(data):
            yield config or "default", f"hub:{side.hub_id}/{config}[{i}]", row
