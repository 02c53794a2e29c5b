"""Render chats with a chat template and label exactly the tokens a masking strategy trains.

How the mask is found: message ``i`` owns the characters that rendering ``messages[:i+1]`` adds to the
rendering of ``messages[:i]``. For an assistant message the header the template writes before it (what
``add_generation_prompt=True`` adds) is prompt, not target; the trained span runs from the end of that
header through the message's end-of-turn token (the tokenizer's EOS unless ``end_of_turn`` names another),
and the whitespace a template writes after that token is not trained. A final assistant turn whose
template writes no end-of-turn token gets the EOS appended (trained), so a tuned model learns to stop.

The template must be prefix-stable (rendering a longer chat extends the shorter one): templates that are
not (some inject a date or rewrite earlier turns) are refused with the offending example, since their
masks cannot be located reliably.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hala_exp.data.messages import problem

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips

MASKING_STRATEGIES = ("assistant_turns", "last_assistant_turn", "all_tokens")

# Templates a config can name when a tokenizer has none (our choice: ChatML, the LFM2/SmolLM2 format).
NAMED_TEMPLATES = {
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
}


class ChatTemplateError(ValueError):
    """The chat template cannot render an example (the message names the example)."""


@dataclass
class TokenizedChat:
    input_ids: list[int]
    labels: list[int]

    @property
    def trainable(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def resolve_template(tokenizer, chat_template: str | None) -> str:
    """The template to train with: a named one, a literal Jinja string, or the tokenizer's own."""
    if chat_template is None:
        if not getattr(tokenizer, "chat_template", None):
            raise ChatTemplateError(
                "the tokenizer has no chat template; set train.chat_template to one of "
                f"{sorted(NAMED_TEMPLATES)} or to a Jinja template string"
            )
        return tokenizer.chat_template
    if chat_template in NAMED_TEMPLATES:
        return NAMED_TEMPLATES[chat_template]
    if "{%" in chat_template or "{{" in chat_template:
        return chat_template
    raise ChatTemplateError(
        f"chat_template: {chat_template!r} is neither a named template ({sorted(NAMED_TEMPLATES)}) nor a Jinja template"
    )


def malformed_reason(row: Any) -> str | None:
    """Why a row cannot be a chat example (None when it can): the quarantine reason."""
    if reason := problem(row, None, require_id=False):
        return reason
    if not any(m["role"] == "assistant" for m in row["messages"]):
        return "no_assistant_turn"
    return None


def _render(tokenizer, template: str, messages: Sequence[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        chat_template=template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )


def _render_prefix(tokenizer, template: str, messages: Sequence[dict]) -> str:
    """The chat so far plus the header of the next assistant turn."""
    if messages:
        return _render(tokenizer, template, messages, True)
    try:  # some templates cannot render an empty chat; the header is then unknown and not trained anyway
        return _render(tokenizer, template, [], True)
    except Exception:
        return ""


def trained_char_spans(
    tokenizer, template: str, messages: Sequence[dict], masking: str, end_of_turn: str, example_id: str = "?"
) -> tuple[str, list[tuple[int, int]], bool]:
    """The rendered text, the character spans that carry labels, and whether an EOS must be appended."""
    if masking not in MASKING_STRATEGIES:
        raise ValueError(f"masking: {masking!r} is not allowed; allowed values: {list(MASKING_STRATEGIES)}")
    try:
        text = _render(tokenizer, template, messages, False)
        if masking == "all_tokens":
            append_eos = not text.rstrip().endswith(end_of_turn)
            return text, [(0, len(text))], append_eos
        assistant_idx = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if masking == "last_assistant_turn":
            assistant_idx = assistant_idx[-1:]
        spans: list[tuple[int, int]] = []
        append_eos = False
        for i in assistant_idx:
            before = _render_prefix(tokenizer, template, messages[:i])
            through = _render(tokenizer, template, messages[: i + 1], False)
            if not (through.startswith(before) and text.startswith(through)):
                raise ChatTemplateError(
                    f"example {example_id}: the chat template is not prefix-stable at message {i} "
                    "(rendering a longer chat does not extend the shorter one), so the assistant tokens "
                    "cannot be located"
                )
            start, end = len(before), len(through)
            cut = through.rfind(end_of_turn, start, end)
            if cut >= 0:
                end = cut + len(end_of_turn)
            elif i == len(messages) - 1:
                append_eos = True
            spans.append((start, end))
    except ChatTemplateError:
        raise
    except Exception as e:  # jinja errors, raise_exception() in templates, missing keys
        raise ChatTemplateError(
            f"example {example_id}: the chat template cannot render it: {type(e).__name__}: {e}"
        ) from e
    return text, spans, append_eos


def tokenize_chat(
    tokenizer,
    template: str,
    messages: Sequence[dict],
    masking: str = "assistant_turns",
    end_of_turn: str | None = None,
    example_id: str = "?",
) -> TokenizedChat:
    """Token ids and labels (``IGNORE_INDEX`` where not trained) for one chat."""
    eot = end_of_turn or tokenizer.eos_token
    if not eot:
        raise ChatTemplateError("the tokenizer has no EOS token; set train.end_of_turn")
    text, spans, append_eos = trained_char_spans(tokenizer, template, messages, masking, eot, example_id)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [IGNORE_INDEX] * len(ids)
    for k, (start, end) in enumerate(enc["offset_mapping"]):
        # A token that overlaps a trained span is trained: a token merging the header's last space with
        # the answer's first word (byte-level BPE) is what the model must emit after the header.
        if any(start < e and end > s for s, e in spans):
            labels[k] = ids[k]
    if append_eos:
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    return TokenizedChat(ids, labels)
