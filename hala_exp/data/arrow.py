"""Arrow files the data stages write: record batches streamed into an Arrow IPC stream file (the format
``datasets.Dataset.from_file`` memory-maps), atomically, so a reader never maps half a file.

Why not ``Dataset.from_generator``: it writes into the ``datasets`` cache under a key hashed from the
generator's code and arguments, not from the file it reads, so an edited source file at the same path can be
served from a stale cache; here the file lands in the stage's own content-addressed artifact directory."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 1000  # rows per record batch (our choice: ~1-10 MB of chat text)


def turns_type() -> pa.DataType:
    """A messages list: ``[{"role": str, "content": str}, ...]``."""
    import pyarrow as pa

    return pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def write_rows(path: Path, schema: pa.Schema, rows: Iterable[dict]) -> int:
    """Rows (dicts; a missing key is null) -> ``path``; returns the row count."""
    return write_batches(path, schema, _batched(rows, schema))


def write_batches(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """Record batches -> ``path`` (temp file, then rename); returns the row count."""
    import pyarrow as pa

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
                n += batch.num_rows
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def _batched(rows: Iterable[dict], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield pa.RecordBatch.from_pylist(batch, schema=schema)
            batch = []
    if batch:
        yield pa.RecordBatch.from_pylist(batch, schema=schema)
