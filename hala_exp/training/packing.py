"""Packing several examples into one row, and the architectures where that would change the loss.

A packed row carries per-example position ids (restarting at 0) and no attention mask: transformers then
builds a block-diagonal causal mask from the position ids, so attention never crosses an example
boundary. Layers that are not attention (LFM2's short convolutions, state-space layers) do not read
position ids; transformers' CPU fallback for LFM2's convolution ignores ``seq_idx`` and carries state from
one example into the next (measured on a 30 M-parameter LFM2: logits of a packed example moved by up to 0.24;
tests/test_train_packing.py shows it on a tiny LFM2). Such models are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ATTENTION_LAYER_TYPES = {"full_attention", "sliding_attention", "attention", "chunked_attention"}


def packing_refusal(model) -> str | None:
    """Why packing would leak across examples for this model (None when it is exact)."""
    import torch.nn as nn

    config = model.config
    layer_types = getattr(config, "layer_types", None) or []
    other = sorted({t for t in layer_types if t not in ATTENTION_LAYER_TYPES})
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv1d)]
    if other or convs:
        what = f"layer types {other}" if other else f"convolution modules (e.g. {convs[0]})"
        return (
            f"packing refused for {type(model).__name__} ({config.model_type}): its {what} carry state "
            "across packed example boundaries, so an example's loss would depend on its neighbours. "
            "Set train.packing=false (length-grouped batching keeps padding low)."
        )
    return None


def pack_rows(lengths: Sequence[int] | np.ndarray, max_length: int) -> list[list[int]]:
    """First-fit decreasing: example indices per row, each row's total length <= max_length. Deterministic."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(max_length - n)
    return rows
