"""Golden-label tests: which tokens carry labels under each masking strategy (tiny ChatML tokenizer)."""

from __future__ import annotations

import pytest

from hala_exp.training.chat import (
    IGNORE_INDEX,
    NAMED_TEMPLATES,
    ChatTemplateError,
    malformed_reason,
    resolve_template,
    tokenize_chat,
)

CHAT = [
    {"role": "system", "content": "You translate."},
    {"role": "user", "content": "Translate: good morning"},
    {"role": "assistant", "content": "صباح الخير"},
    {"role": "user", "content": "And: thank you"},
    {"role": "assistant", "content": "شكرا لك"},
]


@pytest.fixture(scope="module")
def tokenizer():
    from hala_exp.core.model_dirs import build_tokenizer, embedded_texts

    return build_tokenizer(embedded_texts())


def trained_text(tok, chat) -> list[str]:
    """The decoded runs of consecutive labelled tokens."""
    runs, cur = [], []
    for t, lab in zip(chat.input_ids, chat.labels):
        if lab != IGNORE_INDEX:
            assert lab == t  # labels are the tokens themselves (the shift happens in the loss)
            cur.append(t)
        elif cur:
            runs.append(tok.decode(cur)), cur.clear()
    if cur:
        runs.append(tok.decode(cur))
    return runs


def test_assistant_turns_trains_each_answer_and_its_end_of_turn(tokenizer):
    template = resolve_template(tokenizer, None)
    chat = tokenize_chat(tokenizer, template, CHAT, "assistant_turns")
    assert trained_text(tokenizer, chat) == ["صباح الخير<|im_end|>", "شكرا لك<|im_end|>"]
    # exact count: the answer tokens plus one end-of-turn token each, nothing of the headers
    expected = sum(
        len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) + 1
        for m in CHAT
        if m["role"] == "assistant"
    )
    assert chat.trainable == expected
    # the text is exactly what the chat template renders
    assert tokenizer.decode(chat.input_ids) == tokenizer.apply_chat_template(CHAT, tokenize=False)


def test_last_assistant_turn_only(tokenizer):
    chat = tokenize_chat(tokenizer, resolve_template(tokenizer, None), CHAT, "last_assistant_turn")
    assert trained_text(tokenizer, chat) == ["شكرا لك<|im_end|>"]


def test_all_tokens_trains_everything(tokenizer):
    chat = tokenize_chat(tokenizer, resolve_template(tokenizer, None), CHAT, "all_tokens")
    assert chat.labels == chat.input_ids
    assert chat.input_ids[-2] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_template_without_end_of_turn_gets_a_trained_eos(tokenizer):
    bare = (
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    chat = tokenize_chat(tokenizer, bare, CHAT[:3], "assistant_turns")
    assert chat.input_ids[-1] == tokenizer.eos_token_id and chat.labels[-1] == tokenizer.eos_token_id
    assert trained_text(tokenizer, chat)[0].strip().startswith("صباح الخير")


def test_named_template_and_missing_template(tokenizer):
    assert resolve_template(tokenizer, "chatml") == NAMED_TEMPLATES["chatml"]
    saved, tokenizer.chat_template = tokenizer.chat_template, None
    try:
        with pytest.raises(ChatTemplateError, match="train.chat_template"):
            resolve_template(tokenizer, None)
    finally:
        tokenizer.chat_template = saved
    with pytest.raises(ChatTemplateError, match="neither a named template"):
        resolve_template(tokenizer, "no_such_template")


def test_template_that_cannot_render_names_the_example(tokenizer):
    strict = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}"
        "{% endif %}{{ m['content'] }}{% endfor %}"
    )
    with pytest.raises(ChatTemplateError, match="example ex42.*no system role"):
        tokenize_chat(tokenizer, strict, CHAT, "assistant_turns", example_id="ex42")


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"id": "a"}, "missing_messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "unknown_role"),
        ({"messages": [{"role": "user", "content": 3}]}, "content_not_string"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "no_assistant_turn"),
        ({"messages": CHAT}, None),
    ],
)
def test_malformed_rows_have_reasons(row, reason):
    assert malformed_reason(row) == reason
