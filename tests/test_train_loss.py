"""The train step's loss: computing logits only at trained positions gives the full forward's loss and grads."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _batch_and_model(architecture: str):
    from hala_exp.core.model_dirs import build_model, build_tokenizer, embedded_texts
    from hala_exp.training.batches import collate
    from hala_exp.training.chat import IGNORE_INDEX

    tok = build_tokenizer(embedded_texts()[:200], vocab_size=400)
    model = build_model(architecture, tok, seed=0).train()
    g = torch.Generator().manual_seed(0)
    lengths, prompts = [7, 12, 5, 9], [3, 8, 1, 4]
    ids = [torch.randint(10, len(tok), (n,), generator=g).tolist() for n in lengths]
    labels = [[IGNORE_INDEX] * p + s[p:] for s, p in zip(ids, prompts)]
    batch = collate([[(s, lab)] for s, lab in zip(ids, labels)], tok.pad_token_id, packing=False)
    return model, batch


def _reference_loss(model, batch):
    """The textbook form: the full logits tensor, shifted, upcast, masked by ignore_index."""
    from hala_exp.training.chat import IGNORE_INDEX

    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,
    )
    logits, targets = out.logits[:, :-1].float(), batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )


@pytest.mark.parametrize("architecture", ["lfm2", "llama"])
def test_target_loss_matches_full_logits_loss_and_gradients(architecture):
    from hala_exp.core.model_dirs import TINY_SHAPES
    from hala_exp.training.module import _plain_head, target_loss

    if architecture not in TINY_SHAPES:
        pytest.skip(f"no tiny {architecture} shape")
    model, batch = _batch_and_model(architecture)
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
