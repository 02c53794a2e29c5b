"""Parallel test sets for BLEU / chrF++: line-aligned text files, JSONL pairs, or a hub dataset.

FLORES-200 devtest, Tatoeba and TICO-19 ship as line-aligned text files (one file per language), so
``text_pair`` reads two files; the embedded held-out set is JSONL ``{en, ar}``. A test set whose two sides
differ in length is refused naming both files; pairs with an empty side are quarantined and counted.
``limit`` keeps the first N pairs (deterministic), which is how CPU runs stay quick. ``paired`` joins two
datasets on a key the config names (``hala_exp.evaluation.paired``: the EN->AR MMLU set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeVar

from hala_exp.core.schema import NOT_FINGERPRINTED, ConfigError
from hala_exp.data.jsonl import read_jsonl
from hala_exp.data.parallel import read_aligned
from hala_exp.data.paths import resolve
from hala_exp.evaluation.paired import PairedSide

_T = TypeVar("_T")


@dataclass
class TestSetConfig:
    format: Literal["text_pair", "jsonl", "hub", "paired"]
    direction: Literal["en-xx", "xx-en"] = "en-xx"  # en-xx: English source, target-language reference
    source_file: str | None = None  # text_pair: one sentence per line
    reference_file: str | None = None
    path: str | None = None  # jsonl
    source_field: str | None = None  # jsonl / hub: the column of each side
    reference_field: str | None = None
    hub_id: str | None = None  # hub: dataset id; sides may live in two configs (FLORES+: one per language)
    source_config: str | None = None
    reference_config: str | None = None
    split: str = "devtest"
    revision: str | None = None
    source: PairedSide | None = None  # paired: the English side and the reference side, joined on `key`
    reference: PairedSide | None = None
    key: list[str] = field(default_factory=list)  # paired: columns, _config (hub config) and/or _index
    agree_fields: list[str] = field(default_factory=list)  # paired: columns both sides must share per pair
    max_disagreement: float = 0.0  # paired: share of pairs that may disagree (quarantined) before it fails
    limit: int | None = None  # first N pairs
    comment: str = field(default="", metadata=NOT_FINGERPRINTED)

    def check(self) -> None:
        need = {
            "text_pair": ["source_file", "reference_file"],
            "jsonl": ["path", "source_field", "reference_field"],
            "hub": ["hub_id", "source_field", "reference_field"],
            "paired": ["source", "reference", "key"],
        }[self.format]
        for key in need:
            if not getattr(self, key):
                raise ConfigError(f"{key}: required when format={self.format}")
        if self.format == "paired":
            from hala_exp.evaluation.paired import check_key

            check_key(self.key)
            if not 0.0 <= self.max_disagreement < 1.0:
                raise ConfigError(f"max_disagreement: {self.max_disagreement} must be in [0, 1)")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit: {self.limit} must be >= 1 (or null for all pairs)")

    def local_files(self) -> list[str]:
        if self.format == "paired":
            return (
                _given(self, "source", self.source).local_files()
                + _given(self, "reference", self.reference).local_files()
            )
        files = [self.source_file, self.reference_file] if self.format == "text_pair" else [self.path]
        return [str(resolve(f)) for f in files if f]


def _given(cfg: TestSetConfig, key: str, value: _T | None) -> _T:
    """``value``, a field that ``check()`` requires for ``cfg.format``: a config made without ``build()``
    (so never checked) fails here naming the field rather than deep inside a reader."""
    if value is None:
        raise ConfigError(f"{key}: required when format={cfg.format}")
    return value


@dataclass
class ParallelText:
    name: str
    direction: str
    sources: list[str]
    references: list[str]
    origin: str  # where the pairs came from, for messages and manifests
    rejects: dict[str, int] = field(default_factory=dict)


def load_testset(name: str, cfg: TestSetConfig) -> ParallelText:
    if cfg.format == "text_pair":
        src_path = resolve(_given(cfg, "source_file", cfg.source_file))
        ref_path = resolve(_given(cfg, "reference_file", cfg.reference_file))
        lines = read_aligned({"source": src_path, "reference": ref_path}, f"test set {name!r}")
        origin = f"{src_path} | {ref_path}"
        pairs, rejects = _drop_empty((r["source"], r["reference"]) for _, r in lines)
    elif cfg.format == "jsonl":
        path = resolve(_given(cfg, "path", cfg.path))
        src_field = _given(cfg, "source_field", cfg.source_field)
        ref_field = _given(cfg, "reference_field", cfg.reference_field)
        rows = read_jsonl(path, required=[src_field, ref_field])
        pairs = [(r[src_field], r[ref_field]) for r in rows.rows]
        origin, rejects = str(path), rows.reject_counts()
    elif cfg.format == "paired":
        from hala_exp.evaluation.paired import align, load_side

        source, reference = _given(cfg, "source", cfg.source), _given(cfg, "reference", cfg.reference)
        src = load_side(source, cfg.key, f"test set {name!r} source", cfg.agree_fields)
        ref = load_side(reference, cfg.key, f"test set {name!r} reference", cfg.agree_fields)
        pairs, rejects = align(name, cfg.key, src, ref, cfg.agree_fields, cfg.max_disagreement)
        origin = f"{source.describe()} | {reference.describe()} on {cfg.key}"
    else:
        pairs, rejects = _drop_empty(_hub_pairs(name, cfg))
        origin = f"hub:{cfg.hub_id}"
    if cfg.limit is not None:
        pairs = pairs[: cfg.limit]
    if not pairs:
        raise ValueError(f"test set {name!r}: no usable pairs in {origin} (quarantined: {rejects})")
    return ParallelText(name, cfg.direction, [s for s, _ in pairs], [r for _, r in pairs], origin, rejects)


def _drop_empty(pairs) -> tuple[list[tuple[str, str]], dict[str, int]]:
    kept, empty = [], 0
    for s, r in pairs:
        if s.strip() and r.strip():
            kept.append((s, r))
        else:
            empty += 1
    return kept, ({"empty_side": empty} if empty else {})


def _hub_pairs(name: str, cfg: TestSetConfig) -> list[tuple[str, str]]:
    """Sides in one config (columns) or two configs aligned by their ``id`` column (FLORES+)."""
    from datasets import load_dataset

    src = load_dataset(cfg.hub_id, cfg.source_config, split=cfg.split, revision=cfg.revision)
    if cfg.reference_config in (None, cfg.source_config):
        return [(row[cfg.source_field], row[cfg.reference_field]) for row in src]
    ref = load_dataset(cfg.hub_id, cfg.reference_config, split=cfg.split, revision=cfg.revision)
    if len(src) != len(ref):
        raise ValueError(
            f"test set {name!r}: {cfg.hub_id} {cfg.source_config} has {len(src)} rows but "
            f"{cfg.reference_config} has {len(ref)}"
        )
    if "id" in src.column_names and "id" in ref.column_names:
        by_id = {row["id"]: row[cfg.reference_field] for row in ref}
        return [(row[cfg.source_field], by_id[row["id"]]) for row in src]
    return [(a[cfg.source_field], b[cfg.reference_field]) for a, b in zip(src, ref)]
