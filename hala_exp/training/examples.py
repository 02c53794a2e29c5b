"""From chat data (messages schema: an Arrow file or dataset, or a JSONL file) to tokenized examples on Arrow.

Tokenization runs through ``datasets.Dataset.map(batched=True, num_proc=...)`` and lands as Arrow
sequences (``input_ids``, ``labels``) with ``length`` and ``trainable`` (token counts) columns, memory-mapped
when read back: training reads one example at a time, and batch plans read only the two count columns
(as numpy arrays). Nothing here holds the dataset as Python objects.

Malformed rows are quarantined with their line (JSONL) or row index (Arrow) and reason; an example longer
than ``max_length`` is truncated or dropped (config), counted either way; an example left with no trainable
token is dropped and counted. A template that cannot render an example raises ``ChatTemplateError``
naming it, before any training.

The cache: ``<cache_dir>/<key>/`` where the key hashes the data, the tokenizer (vocabulary, merges, special
tokens), the chat template and every setting that changes the result. An entry is built in a private
``.partial`` directory and renamed into place with a ``COMPLETE`` marker written last, so a process killed
while tokenizing leaves nothing a later run trusts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hala_exp.core.store import file_digest
from hala_exp.data.jsonl import Quarantined, write_quarantine
from hala_exp.training.chat import IGNORE_INDEX, malformed_reason, tokenize_chat

log = logging.getLogger(__name__)
CACHE_FORMAT = 2  # bump when the tokenization code changes its output (2: Arrow columns)
COMPLETE = "COMPLETE"
KEPT = "ok"  # status of an example that is trained on as it is


@dataclass
class Examples:
    """Tokenized examples, memory-mapped: ``example(i)`` reads one row; counts describe what was skipped."""

    dataset: Any  # datasets.Dataset with columns id, input_ids, labels, length, trainable
    counts: dict[str, int] = field(default_factory=dict)  # rows, examples, dropped/<why>, truncated, quarantined/<why>
    path: Path | None = None  # the cache entry the dataset is mapped from (a worker process reopens it)

    def __len__(self) -> int:
        return self.dataset.num_rows

    def lengths(self):
        """Tokens per example (numpy int array), read from the ``length`` column only."""
        return self.dataset.data.column("length").to_numpy()

    def trainable_counts(self):
        """Trained-on tokens per example (numpy), the first token excluded: it is never predicted."""
        return self.dataset.data.column("trainable").to_numpy()

    def example(self, index: int):
        """(input_ids, labels) of one example as numpy views of the memory-mapped Arrow columns (no copy)."""
        table, i = self.dataset.data, int(index)
        return table.column("input_ids")[i].values.to_numpy(), table.column("labels")[i].values.to_numpy()


def load_examples(path: str | Path) -> Examples:
    """Reopen a cache entry written by ``prepare_examples`` (memory-mapped)."""
    import datasets

    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise FileNotFoundError(f"{path}: not a complete tokenized-examples entry (no {COMPLETE} marker)")
    counts = json.loads((path / "counts.json").read_text())
    return Examples(datasets.load_from_disk(str(path / "dataset")), counts, path)


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


def data_digest(data_path: str | Path) -> str:
    """Content hash of a JSONL file or of every file of an Arrow dataset directory."""
    path = Path(data_path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return hashlib.sha256("".join(f"{p.relative_to(path)}:{file_digest(p)};" for p in files).encode()).hexdigest()
    return file_digest(path)


def cache_key(data_path: str | Path, tokenizer, template: str, settings: dict) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "data": data_digest(data_path),
        "tokenizer": tokenizer_digest(tokenizer),
        "template": template,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def prepare_examples(
    data_path: str | Path,
    tokenizer,
    template: str,
    *,
    masking: str,
    max_length: int,
    too_long: str,
    end_of_turn: str | None,
    cache_dir: Path,
    quarantine_path: Path | None,
    num_proc: int = 1,
) -> Examples:
    """Tokenized examples of ``data_path`` (an Arrow file or dataset directory, or JSONL), from the cache if present."""
    settings = {"masking": masking, "max_length": max_length, "too_long": too_long, "end_of_turn": end_of_turn}
    entry = Path(cache_dir) / cache_key(data_path, tokenizer, template, settings)
    if (entry / COMPLETE).is_file():
        log.info("tokenized examples from cache %s", entry)
    else:
        _build_entry(entry, data_path, tokenizer, template, settings, num_proc)
    examples = load_examples(entry)
    if quarantine_path is not None and (entry / "quarantine.jsonl").is_file():
        shutil.copyfile(entry / "quarantine.jsonl", quarantine_path)
    return examples


def _build_entry(entry: Path, data_path, tokenizer, template: str, settings: dict, num_proc: int) -> None:
    if entry.exists():  # a directory without its marker: left by a killed run, never trusted
        log.warning("%s is incomplete (no %s marker): tokenizing again", entry, COMPLETE)
        shutil.rmtree(entry, ignore_errors=True)
    _remove_dead_partials(entry)
    partial = entry.with_name(f"{entry.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    rejects: list[Quarantined] = []
    source = read_chats(data_path, rejects, partial / "source")
    dataset, counts = tokenize_dataset(
        source,
        tokenizer,
        template,
        num_proc=num_proc,
        work_dir=partial / "work",
        source_name=str(data_path),
        **settings,
    )
    counts["rows"] += len(rejects)  # lines that never became rows (not JSON objects)
    rejects += _quarantined_rows(dataset, str(data_path))
    dataset = dataset.filter(
        _is_kept,
        input_columns="status",
        batched=True,
        num_proc=num_proc if num_proc > 1 else None,  # every serial step caps what more processes can gain
        cache_file_name=str(partial / "work" / "kept.arrow"),
    ).select_columns(["id", "input_ids", "labels", "length", "trainable"])
    for q in rejects:
        key = f"quarantined/{q.reason.split(':')[0]}"
        counts[key] = counts.get(key, 0) + 1
    dataset.save_to_disk(str(partial / "dataset"), num_proc=num_proc if num_proc > 1 else None)
    del dataset, source
    shutil.rmtree(partial / "work", ignore_errors=True)
    shutil.rmtree(partial / "source", ignore_errors=True)
    if rejects:
        write_quarantine(partial / "quarantine.jsonl", rejects)
    (partial / "counts.json").write_text(json.dumps(counts, indent=1, sort_keys=True))
    (partial / COMPLETE).write_text("")
    try:
        os.replace(partial, entry)
    except OSError:  # another job finished the same entry first: theirs is as good as ours
        if not (entry / COMPLETE).is_file():
            raise
        shutil.rmtree(partial, ignore_errors=True)


def _remove_dead_partials(entry: Path) -> None:
    for stale in entry.parent.glob(f"{entry.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_chats(data_path: str | Path, rejects: list[Quarantined], work_dir: Path):
    """The chat rows as a dataset with columns ``line`` (1-based line or row index), ``id`` and ``messages``.

    An Arrow file (what the data stages write) or directory (``datasets.save_to_disk``) is read
    memory-mapped as it is. JSONL is streamed into an
    Arrow file line by line; lines that are not JSON objects go to ``rejects`` with their line number. Messages
    from JSONL stay JSON strings so that every row keeps exactly its own keys.
    """
    import datasets

    path = Path(data_path)
    if path.is_dir() or path.suffix == ".arrow":
        ds = datasets.load_from_disk(str(path)) if path.is_dir() else datasets.Dataset.from_file(str(path))
        ds = ds.add_column("line", range(1, ds.num_rows + 1)) if "line" not in ds.column_names else ds
        return ds.select_columns([c for c in ("line", "id", "messages") if c in ds.column_names])
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    features = datasets.Features(
        {"line": datasets.Value("int64"), "id": datasets.Value("string"), "messages": datasets.Value("string")}
    )
    return datasets.Dataset.from_generator(
        _jsonl_chats,
        # wrapped: datasets would split a list-valued generator argument into shards
        gen_kwargs={"path": str(path), "rejects": _Sink(rejects)},
        features=features,
        cache_dir=str(work_dir),
    )


class _Sink:
    def __init__(self, items: list):
        self.append = items.append


def _jsonl_chats(path: str, rejects: _Sink):
    from hala_exp.data.jsonl import iter_jsonl

    for lineno, row in iter_jsonl(path):
        if isinstance(row, Quarantined):  # not UTF-8 or not JSON
            rejects.append(row)
            continue
        if not isinstance(row, dict):
            rejects.append(Quarantined(path, lineno, "not_an_object", json.dumps(row, ensure_ascii=False)))
            continue
        example_id = row.get("id")
        yield {
            "line": lineno,
            "id": None if example_id is None else str(example_id),
            "messages": json.dumps(row.get("messages"), ensure_ascii=False),
        }


def tokenize_dataset(
    source,
    tokenizer,
    template: str,
    *,
    masking: str,
    max_length: int,
    too_long: str,
    end_of_turn: str | None,
    num_proc: int = 1,
    work_dir: Path | None = None,
    source_name: str = "data",
):
    """Tokenize a chat dataset (columns ``messages``, optional ``id``/``line``) with ``Dataset.map``.

    Returns ``(dataset, counts)``: every source row with ``status`` (``ok``, ``dropped/<why>`` or
    ``quarantined/<why>``), ``truncated``, ``input_ids``, ``labels``, ``length`` and ``trainable``.
    ``num_proc`` changes only the speed: rows and order are the same for any value.
    """
    import pyarrow.compute as pc

    if "line" not in source.column_names:
        source = source.add_column("line", range(1, source.num_rows + 1))
    if "id" not in source.column_names:
        source = source.add_column("id", [None] * source.num_rows)
    fn = functools.partial(
        _tokenize_batch,
        tokenizer=tokenizer,
        template=template,
        masking=masking,
        max_length=max_length,
        too_long=too_long,
        end_of_turn=end_of_turn,
    )
    settings = json.dumps([tokenizer_digest(tokenizer), template, masking, max_length, too_long, end_of_turn])
    kwargs: dict[str, Any] = {}
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        kwargs["cache_file_name"] = str(Path(work_dir) / "tokenized.arrow")
    dataset = source.map(
        fn,
        batched=True,
        features=_tokenized_features(),
        batch_size=256,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=[c for c in source.column_names if c not in ("line", "id")],
        # the settings name the result: datasets need not hash the tokenizer object
        new_fingerprint=hashlib.sha256(f"{source._fingerprint}{settings}".encode()).hexdigest()[:16],
        desc=f"tokenizing {source_name}",
        **kwargs,
    )
    counts = {"rows": dataset.num_rows, "dropped/too_long": 0, "dropped/no_trainable_tokens": 0, "examples": 0}
    for item in pc.value_counts(dataset.data.column("status")).to_pylist():
        status, n = item["values"], item["counts"]
        if status == KEPT:
            counts["examples"] = n
        elif status.startswith("dropped/"):
            counts[status] = n
    counts["truncated"] = int(pc.sum(dataset.data.column("truncated")).as_py() or 0)
    return dataset, counts


def _tokenized_features():
    import datasets

    ints, tokens = datasets.Value("int32"), datasets.List(datasets.Value("int32"))
    return datasets.Features(
        {
            "line": datasets.Value("int64"),
            "id": datasets.Value("string"),
            "status": datasets.Value("string"),
            "truncated": datasets.Value("bool"),
            "input_ids": tokens,
            "labels": tokens,
            "length": ints,
            "trainable": ints,
            "raw": datasets.Value("string"),
        }
    )


def _is_kept(status: list[str]) -> list[bool]:
    return [s == KEPT for s in status]


def _quarantined_rows(dataset, source_name: str) -> list[Quarantined]:
    """The rows the map marked malformed (few: only they are read back as Python objects)."""
    import pyarrow.compute as pc

    where = pc.indices_nonzero(pc.starts_with(dataset.data.column("status"), "quarantined/")).to_pylist()
    out = []
    for i in where:
        row = dataset[i]
        out.append(Quarantined(source_name, row["line"], row["status"].split("/", 1)[1], row["raw"] or ""))
    return out


def _tokenize_batch(batch, *, tokenizer, template, masking, max_length, too_long, end_of_turn):
    out: dict[str, list] = {k: [] for k in ("status", "truncated", "input_ids", "labels", "length", "trainable", "raw")}
    for line, example_id, messages in zip(batch["line"], batch["id"], batch["messages"]):
        row = {"messages": json.loads(messages) if isinstance(messages, str) else messages}
        reason = malformed_reason(row)
        ids: list[int] = []
        labels: list[int] = []
        status, truncated, raw = KEPT, False, None
        if reason is not None:
            status, raw = f"quarantined/{reason}", json.dumps({"id": example_id, **row}, ensure_ascii=False)
        else:
            name = example_id if example_id is not None else f"line{line}"
            chat = tokenize_chat(tokenizer, template, row["messages"], masking, end_of_turn, name)
            ids, labels = chat.input_ids, chat.labels
            if len(ids) > max_length:
                if too_long == "drop":
                    status = "dropped/too_long"
                else:
                    ids, labels, truncated = ids[:max_length], labels[:max_length], True
            if status == KEPT and not any(t != IGNORE_INDEX for t in labels[1:]):
                status = "dropped/no_trainable_tokens"
        if status != KEPT:
            ids, labels = [], []  # not trained on: keep the cache small
        out["status"].append(status)
        out["truncated"].append(truncated)
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["length"].append(len(ids))
        out["trainable"].append(sum(1 for t in labels[1:] if t != IGNORE_INDEX))
        out["raw"].append(raw)
    return out
