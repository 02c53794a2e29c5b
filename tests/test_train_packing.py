"""Packing: exact for attention-only models (loss of each example packed == alone), refused where it leaks."""

from __future__ import annotations

import pytest

from hala_exp.training.packing import pack_rows


@pytest.fixture(scope="module")
def tokenized():
    from train_helpers import chat_rows

    from hala_exp.core.model_dirs import build_tokenizer, embedded_texts
    from hala_exp.training.chat import resolve_template, tokenize_chat

    tok = build_tokenizer(embedded_texts())
    template = resolve_template(tok, None)
    chats = [tokenize_chat(tok, template, r["messages"]) for r in chat_rows(3)]
    return tok, chats


def per_example_losses(model, tok, chats, packed: bool) -> list[float]:
    import torch

    from hala_exp.training.batches import collate

    ids, labels = [c.input_ids for c in chats], [c.labels for c in chats]
    rows = [list(range(len(chats)))] if packed else [[i] for i in range(len(chats))]
    losses = []
    with torch.no_grad():
        for row in rows:
            b = collate([[(ids[i], labels[i]) for i in row]], tok.pad_token_id, packing=packed)
            logits = model(
                input_ids=b["input_ids"],
                attention_mask=b.get("attention_mask"),
                position_ids=b["position_ids"],
                use_cache=False,
            ).logits[0, :-1]
            targets = b["labels"][0, 1:]
            offset = 0
            for i in row:
                n = len(ids[i])
                seg_t, seg_l = targets[offset : offset + n - 1], logits[offset : offset + n - 1]
                keep = seg_t != -100
                losses.append(float(torch.nn.functional.cross_entropy(seg_l[keep], seg_t[keep])))
                offset += n
    return losses


@pytest.mark.parametrize("architecture", ["llama", "lfm2"])
def test_packed_loss_equals_alone_only_where_packing_is_allowed(tokenized, architecture):
    from hala_exp.core.model_dirs import build_model
    from hala_exp.training.packing import packing_refusal

    tok, chats = tokenized
    import torch

    model = build_model(architecture, tok, seed=1).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv1d):
            # Random init leaves the convolutions near zero; trained ones are not (the leak scales with them).
            torch.nn.init.normal_(m.weight, std=1.0, generator=torch.Generator().manual_seed(0))
    alone = per_example_losses(model, tok, chats, packed=False)
    packed = per_example_losses(model, tok, chats, packed=True)
    # The first example has no left neighbour: equal for every architecture.
    assert packed[0] == pytest.approx(alone[0], abs=1e-4)
    leak = max(abs(a - p) for a, p in zip(alone, packed))
    refusal = packing_refusal(model)
    if architecture == "llama":
        assert refusal is None
        assert leak < 1e-4
    else:
        # LFM2's convolution carries state across the boundary (transformers' CPU fallback ignores seq_idx):
        # packing would change the loss, so it must be refused.
        assert leak > 1e-3
        assert refusal is not None and "packing refused" in refusal and "train.packing=false" in refusal


def test_pack_rows_fits_and_keeps_every_example():
    lengths = [50, 120, 7, 256, 90, 33, 200, 1, 60]
    rows = pack_rows(lengths, 256)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 256 for r in rows)
    assert len(rows) < len(lengths)
    assert pack_rows(lengths, 256) == rows  # deterministic


def test_packed_batch_has_position_ids_per_example_and_no_mask():
    from hala_exp.training.batches import collate

    b = collate([[([5, 6, 7], [-100, 6, 7]), ([8, 9], [8, 9])]], pad_id=0, packing=True, pad_to_multiple_of=8)
    assert b["position_ids"][0].tolist()[:5] == [0, 1, 2, 0, 1]
    assert "attention_mask" not in b
    assert b["labels"][0].tolist()[:5] == [-100, 6, 7, -100, 9]  # an example's first token is never a target
    assert b["real_tokens"] == 5 and b["padded_tokens"] == 8
