"""The train step's loss and optimizer: logits only at trained positions, no column fed after the last trained
target, and the fused AdamW give the textbook path's loss, gradients and weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _batch_and_model(architecture: str, packed: bool = False, split_saving: float = 1.0):
    from hala_exp.core.model_dirs import build_model, build_tokenizer, embedded_texts
    from hala_exp.training.batches import collate
    from hala_exp.training.chat import IGNORE_INDEX

    tok = build_tokenizer(embedded_texts()[:200], vocab_size=400)
    model = build_model(architecture, tok, seed=0).train()
    g = torch.Generator().manual_seed(0)
    lengths, prompts = [7, 12, 5, 9], [3, 8, 1, 4]
    ids = [torch.randint(10, len(tok), (n,), generator=g).tolist() for n in lengths]
    labels = [[IGNORE_INDEX] * p + s[p:] for s, p in zip(ids, prompts)]
    examples = list(zip(ids, labels))
    rows = [examples[:2], examples[2:]] if packed else [[e] for e in examples]
    return model, collate(rows, tok.pad_token_id, packing=packed, split_saving=split_saving)


def _reference_loss(model, batch):
    """The textbook form: the full logits tensor, shifted, upcast, masked by ignore_index."""
    from hala_exp.training.chat import IGNORE_INDEX

    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch.get("attention_mask"),
        position_ids=batch["position_ids"],
        use_cache=False,
    )
    logits, targets = out.logits[:, :-1].float(), batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )


@pytest.mark.parametrize(
    "architecture,packed,split",
    [("lfm2", False, False), ("llama", False, False), ("llama", True, False), ("lfm2", True, False),
     ("lfm2", False, True), ("llama", False, True)],
)  # fmt: skip
def test_target_loss_matches_full_logits_loss_and_gradients(architecture, packed, split):
    from hala_exp.core.model_dirs import TINY_SHAPES
    from hala_exp.training.module import _plain_head, target_loss

    if architecture not in TINY_SHAPES:
        pytest.skip(f"no tiny {architecture} shape")
    model, batch = _batch_and_model(architecture, packed, split_saving=0.0 if split else 1.0)
    assert len(batch["pieces"]) == (2 if split else 1)
    assert _plain_head(model, model.get_output_embeddings())  # the fast path is the one under test
    ref = _reference_loss(model, batch)
    ref_grads = torch.autograd.grad(ref, list(model.parameters()), allow_unused=True)
    loss, n = target_loss(model, batch)
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    assert n == int((batch["labels"][:, 1:] != -100).sum()) == 4 + 4 + 4 + 5  # len - prompt per example
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, ref_grads):
        if b is None:
            assert a is None or not a.abs().any()
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_models_that_rescale_logits_take_the_full_forward():
    from hala_exp.training.module import _plain_head, target_loss

    model, batch = _batch_and_model("lfm2")
    model.config.final_logit_softcapping = 30.0  # as Gemma 2 declares; LFM2 ignores it, the guard must not
    assert not _plain_head(model, model.get_output_embeddings())
    loss, _ = target_loss(model, batch)
    torch.testing.assert_close(loss, _reference_loss(model, batch), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("architecture", ["lfm2", "llama"])
def test_the_model_is_not_fed_the_columns_after_the_last_trained_target(architecture):
    """Their outputs would predict nothing: with every example's last token trained that is the last column; an
    untrained end of turn (chatml's "\\n" after <|im_end|>) on the longest example is one column more. The loss
    still matches the full forward."""
    from hala_exp.training.batches import collate
    from hala_exp.training.chat import IGNORE_INDEX
    from hala_exp.training.module import target_loss

    model, batch = _batch_and_model(architecture)
    widths = []
    model.get_input_embeddings().register_forward_hook(lambda _m, args, _out: widths.append(args[0].shape[1]))
    target_loss(model, batch)
    assert widths == [batch["input_ids"].shape[1] - 1]

    ids, labels = batch["input_ids"], batch["labels"]
    rows = [[(ids[k, :n].tolist(), labels[k, :n].tolist())] for k, n in enumerate([12, 9, 7, 5])]  # longest first
    rows[0][0][1][-1] = IGNORE_INDEX  # the longest example (12 tokens) ends with an untrained token
    untrained_end = collate(rows, pad_id=0, packing=False)
    assert untrained_end["pieces"][0]["feed_width"] == 10
    aligned = collate(rows, pad_id=0, packing=False, pad_to_multiple_of=8)
    assert aligned["pieces"][0]["feed_width"] == 16  # aligned, <= width
    widths.clear()
    loss, n = target_loss(model, untrained_end)
    assert widths == [10] and n == 4 + 3 + 4 + 5
    torch.testing.assert_close(loss, _reference_loss(model, untrained_end), rtol=1e-5, atol=1e-5)


def test_a_batch_with_an_outlier_row_is_fed_as_two_narrower_pieces():
    """Rows of 12, 9, 7 and 5 tokens: 48 padded tokens as one piece, 38 as (12, 9) and (7, 5), a 21 % cut.
    Split at a 20 % threshold, not at 25 %; either way the loss is the same and each piece is only as wide as its
    own last trained target."""
    from hala_exp.training.module import target_loss

    model, whole = _batch_and_model("lfm2", split_saving=0.25)
    _, split = _batch_and_model("lfm2", split_saving=0.2)
    assert [p["rows"] for p in whole["pieces"]] == [(0, 4)] and whole["padded_tokens"] == 48
    assert [p["rows"] for p in split["pieces"]] == [(0, 2), (2, 4)] and split["padded_tokens"] == 2 * 12 + 2 * 7
    assert split["attention_mask"].sum(1).tolist() == [12, 9, 7, 5]  # longest first
    assert split["real_tokens"] == whole["real_tokens"] == 33 and split["n_target"] == whole["n_target"]
    widths = []
    model.get_input_embeddings().register_forward_hook(lambda _m, args, _out: widths.append(args[0].shape))
    torch.testing.assert_close(target_loss(model, split)[0], target_loss(model, whole)[0], rtol=1e-5, atol=1e-5)
    assert widths == [(2, 11), (2, 6), (4, 11)]


@pytest.mark.parametrize("packed", [False, True])
def test_right_padded_rows_go_without_a_padding_mask(packed):
    """A causal model's trained positions never read the padding after them (the loss matches the masked
    reference above); packed rows keep their per-example position ids, a non-causal model its mask."""
    from hala_exp.training.module import target_loss

    model, batch = _batch_and_model("llama", packed)
    seen = []
    model.model.register_forward_pre_hook(lambda _m, _args, kwargs: seen.append(sorted(kwargs)), with_kwargs=True)
    target_loss(model, batch)
    model.config.is_causal = False
    target_loss(model, batch)
    if packed:
        assert seen == [["input_ids", "position_ids", "use_cache"]] * 2
    else:
        assert seen == [["input_ids", "use_cache"], ["attention_mask", "input_ids", "use_cache"]]


def test_cpu_optimizer_is_the_fused_adamw_and_trains_like_the_reference_loop():
    import copy

    from hala_exp.training.batches import DataPosition
    from hala_exp.training.config import OptimizerConfig
    from hala_exp.training.module import CausalLMModule, target_loss

    model, batch = _batch_and_model("lfm2")
    reference, start = copy.deepcopy(model), copy.deepcopy(model)
    optim = OptimizerConfig(lr=1e-2, weight_decay=0.1, warmup_steps=0, schedule="constant")
    fused = CausalLMModule(model, optim, 5, 1, 1, DataPosition()).configure_optimizers()["optimizer"]
    assert fused.defaults["fused"] is True
    # the same groups (decay / no decay) over the reference copy, stepped by the per-parameter loop
    by_id = {id(p): q for p, q in zip(model.parameters(), reference.parameters())}
    loop = torch.optim.AdamW(
        [
            {**g, "params": [by_id[id(p)] for p in g["params"]], "fused": None, "foreach": False}
            for g in fused.param_groups
        ]
    )
    for _ in range(5):
        for m, opt in ((model, fused), (reference, loop)):
            loss, n = target_loss(m, batch)
            (loss / n).backward()
            opt.step()
            opt.zero_grad()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)  # rounding-level: a step moves weights by ~lr=1e-2
    assert max(float((p - p0).abs().max()) for p, p0 in zip(model.parameters(), start.parameters())) > 1e-3
