"""From a messages-schema JSONL file to tokenized training examples, with every rejected row counted.

Malformed rows are quarantined with their reason (side file in the stage directory); an example longer
than ``max_length`` is truncated or dropped (config), counted either way; an example left with no
trainable token is dropped and counted. A template that cannot render an example raises
``ChatTemplateError`` naming it, before any training.

Tokenization is cached in ``<cache_dir>/<key>.npz``; the key hashes the data file, the tokenizer (its
vocabulary, merges and special tokens), the chat template and every setting that changes the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from hala_exp.core.store import file_digest
from hala_exp.data.jsonl import Quarantined, read_jsonl, write_quarantine
from hala_exp.training.chat import IGNORE_INDEX, malformed_reason, tokenize_chat

log = logging.getLogger(__name__)
CACHE_FORMAT = 1  # bump when the tokenization code changes its output


@dataclass
class Examples:
    input_ids: list[list[int]]
    labels: list[list[int]]
    ids: list[str]
    counts: dict[str, int] = field(default_factory=dict)  # examples, dropped/<reason>, truncated, quarantined/<reason>

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]

    def trainable_counts(self) -> list[int]:
        return [sum(1 for t in lab[1:] if t != IGNORE_INDEX) for lab in self.labels]


def tokenizer_digest(tokenizer) -> str:
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update((backend.to_str() if backend is not None else repr(tokenizer.get_vocab())).encode())
    h.update(
        json.dumps(
            {"special": tokenizer.special_tokens_map, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id},
            sort_keys=True,
            default=str,
        ).encode()
    )
    return h.hexdigest()


def cache_key(data_path: str, tokenizer, template: str, settings: dict) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "data": file_digest(data_path),
        "tokenizer": tokenizer_digest(tokenizer),
        "template": template,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def prepare_examples(
    data_path: str,
    tokenizer,
    template: str,
    *,
    masking: str,
    max_length: int,
    too_long: str,
    end_of_turn: str | None,
    cache_dir: Path | None,
    quarantine_path: Path | None,
) -> Examples:
    rows = read_jsonl(data_path)
    rejects: list[Quarantined] = list(rows.rejects)
    valid = []
    for n, row in enumerate(rows.rows):
        reason = malformed_reason(row)
        if reason is None:
            valid.append(row)
        else:
            rejects.append(Quarantined(str(data_path), n + 1, reason, json.dumps(row, ensure_ascii=False)))
    settings = {"masking": masking, "max_length": max_length, "too_long": too_long, "end_of_turn": end_of_turn}
    cached = cache_dir / f"{cache_key(data_path, tokenizer, template, settings)}.npz" if cache_dir else None
    if cached is not None and cached.is_file():
        log.info("tokenized examples from cache %s", cached)
        examples = _load(cached)
    else:
        examples = _tokenize(valid, tokenizer, template, masking, max_length, too_long, end_of_turn)
        if cached is not None:
            _save(cached, examples)
    for q in rejects:
        key = f"quarantined/{q.reason.split(':')[0]}"
        examples.counts[key] = examples.counts.get(key, 0) + 1
    examples.counts["rows"] = len(rows.rows) + len(rows.rejects)
    if quarantine_path is not None and rejects:
        write_quarantine(quarantine_path, rejects)
    return examples


def _tokenize(rows, tokenizer, template, masking, max_length, too_long, end_of_turn) -> Examples:
    out = Examples([], [], [])
    counts = {"truncated": 0, "dropped/too_long": 0, "dropped/no_trainable_tokens": 0}
    for n, row in enumerate(rows):
        example_id = str(row.get("id", f"row{n}"))
        chat = tokenize_chat(tokenizer, template, row["messages"], masking, end_of_turn, example_id)
        ids, labels = chat.input_ids, chat.labels
        if len(ids) > max_length:
            if too_long == "drop":
                counts["dropped/too_long"] += 1
                continue
            ids, labels = ids[:max_length], labels[:max_length]
            counts["truncated"] += 1
        if not any(t != IGNORE_INDEX for t in labels[1:]):
            counts["dropped/no_trainable_tokens"] += 1
            continue
        out.input_ids.append(ids)
        out.labels.append(labels)
        out.ids.append(example_id)
    counts["examples"] = len(out.input_ids)
    out.counts = counts
    return out


def _save(path: Path, ex: Examples) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(x) for x in ex.input_ids], dtype=np.int64)
    flat_ids = np.array([t for x in ex.input_ids for t in x], dtype=np.int64)
    flat_labels = np.array([t for x in ex.labels for t in x], dtype=np.int64)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
    np.savez(
        tmp,
        lengths=lengths,
        input_ids=flat_ids,
        labels=flat_labels,
        ids=np.array(json.dumps(ex.ids)),
        counts=np.array(json.dumps(ex.counts)),
    )
    os.replace(tmp, path)


def _load(path: Path) -> Examples:
    import numpy as np

    z = np.load(path)
    bounds = np.concatenate([[0], np.cumsum(z["lengths"])])
    ids, labels = z["input_ids"].tolist(), z["labels"].tolist()
    return Examples(
        [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
        [labels[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
        json.loads(str(z["ids"])),
        json.loads(str(z["counts"])),
    )
