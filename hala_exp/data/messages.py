"""The messages schema every stage exchanges, and its one validator.

One row per example::

    {"id": str, "source": str, "messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}

plus what a stage adds (``messages_en`` beside a translation, ``direction`` in the bilingual corpus).
``problem`` is the one check of that shape: the mix builder, the translate stage, the chat tokenizer and the
bilingual stage all call it, so a row refused in one place is refused with the same reason everywhere.
Schema-specific checks (a ShareGPT speaker name, an empty Alpaca column) stay in the adapters that know the
schema; rules of one consumer (a chat needs an assistant turn) stay with that consumer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ROLES = ("system", "user", "assistant")
# The one row-length limit (all turns of a row, in characters): longer rows are quarantined as too_long.
# Our choice: ~50k tokens, far beyond any training context, so only absurd rows (dumps, base64) hit it.
MAX_CHARS = 200_000


def messages_problem(messages: Any, key: str = "messages") -> str | None:
    """Why ``messages`` is not a list of {role, content} turns (None when it is)."""
    if not isinstance(messages, list) or not messages:
        return f"missing_{key}"
    for m in messages:
        if not isinstance(m, dict):
            return "message_not_an_object"
        if m.get("role") not in ROLES:
            return "unknown_role"
        if not isinstance(m.get("content"), str):
            return "content_not_string"
    return None


def problem(
    row: Any, max_chars: int | None = MAX_CHARS, *, require_id: bool = True, keys: Iterable[str] = ("messages",)
) -> str | None:
    """The quarantine reason of a messages-schema row, or None when the row is valid.

    ``keys``: the message lists to check (``("messages", "messages_en")`` for a translated row); all of them
    count toward ``max_chars`` (None: no limit). ``require_id=False`` for consumers that key nothing by id.
    """
    if not isinstance(row, dict):
        return "not_an_object"
    if require_id:
        row_id = row.get("id")
        if row_id is None or row_id == "":
            return "missing_id"
        if not isinstance(row_id, str):
            return "id_not_string"
        if not row_id.strip():
            return "missing_id"
    for key in keys:
        if reason := messages_problem(row.get(key), key):
            return reason
    if max_chars is not None and chars(row, keys) > max_chars:
        return "too_long"
    return None


def chars(row: dict, keys: Iterable[str] = ("messages",)) -> int:
    """Characters of every turn's content under ``keys`` (rows already validated)."""
    return sum(len(m["content"]) for key in keys for m in row.get(key) or ())
