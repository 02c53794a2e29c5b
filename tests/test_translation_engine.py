"""Engine options for a base model on a few-shot plain-text prompt: generation stops at a line break (on
segments cut at every line break), and a repetition penalty reaches transformers' ``generate`` without depending
on a row's batch neighbours."""

from __future__ import annotations

import pytest
from test_translation_support import LANGUAGE, PROMPT, arabize, install_fake, tiny_model

from hala_exp.core.model_dirs import load_tokenizer
from hala_exp.core.schema import build
from hala_exp.translation.backends import Request, TransformersBackend
from hala_exp.translation.cache import SegmentCache
from hala_exp.translation.config import EngineConfig, LanguageConfig, PromptConfig
from hala_exp.translation.engine import Translator


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("models"))


def engine(**options) -> EngineConfig:
    options["runtime"] = {"progress": False, "device": "cpu", **options.get("runtime", {})}
    return build(EngineConfig, {"dtype": "float32", **options}, "translate.engine")


def translator(model_dir, tmp_path, **prompt_options) -> Translator:
    prompt = build(PromptConfig, {**PROMPT, **prompt_options}, "prompt")
    language = build(LanguageConfig, LANGUAGE, "language")
    return Translator(str(model_dir), prompt, language, "en-xx", engine(), work_dir=tmp_path)


def test_stop_at_newline_ends_a_segment_at_a_line_break(model_dir, tmp_path, monkeypatch):
    plain = translator(model_dir, tmp_path)
    tr = translator(model_dir, tmp_path, stop_at_newline=True)
    newline = set(tr.tokenizer("\n", add_special_tokens=False)["input_ids"])
    words = set(tr.tokenizer("a line and another", add_special_tokens=False)["input_ids"])
    assert newline <= tr.eos_ids and not words & tr.eos_ids
    assert plain.eos_ids < tr.eos_ids and not newline & plain.eos_ids
    # A base model writes its answer, a line break, then the next few-shot example: only the answer is kept,
    # and each source line was its own segment, so the layout comes back whole.
    install_fake(monkeypatch, transform=lambda text: arabize(text) + "\nEnglish: next example")
    (out,), _ = tr.translate(["a line.\nanother line."], SegmentCache(tmp_path / "segments"))
    assert out.text == arabize("a line.") + "\n" + arabize("another line.")


def test_repetition_penalty_reaches_generate_and_ignores_left_padding(model_dir):
    tok = load_tokenizer(str(model_dir))
    short = Request("short", tok("Hello world.", add_special_tokens=False)["input_ids"], 12)
    text = "The weather is nice today and I like green tea."
    long = Request("long", tok(text, add_special_tokens=False)["input_ids"], 12)

    def greedy(penalty: float, requests: list[Request], pad_id: int) -> list[int]:
        backend = TransformersBackend(str(model_dir), engine(), {tok.eos_token_id}, pad_id, repetition_penalty=penalty)
        out: dict[str, list[int]] = {}
        backend.generate(requests, lambda gens: out.update((g.key, g.token_ids) for g in gens))
        return out["short"]

    alone = greedy(2.0, [short], tok.pad_token_id)
    assert alone != greedy(1.0, [short], tok.pad_token_id), "the penalty changes what greedy search picks"
    # Padded beside a longer prompt, the row must not see its padding as tokens it has written: with the pad id
    # set to the very token it picks first, transformers' own penalty would push that token down.
    assert greedy(2.0, [short, long], alone[0]) == alone


def _attention_only_model(root, architecture: str):
    """A tiny model whose cache is attention keys and values alone: Llama (full attention) or Gemma 3 (sliding
    window layers, with a window short enough that long answers would leave it)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from hala_exp.core.model_dirs import build_tokenizer, embedded_texts, save_model_dir

    tok = build_tokenizer(embedded_texts())
    shape = dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1
    )
    if architecture == "gemma3_text":
        shape.update(head_dim=32, sliding_window=96, layer_types=["sliding_attention", "full_attention"])
    config = AutoConfig.for_model(
        architecture, vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **shape
    )
    torch.manual_seed(0)
    return save_model_dir(AutoModelForCausalLM.from_config(config), tok, root / architecture)


@pytest.mark.parametrize("architecture", ["llama", "gemma3_text"])
@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_shared_prefix_cache_gives_the_tokens_of_plain_generation(tmp_path, architecture, penalty):
    path = _attention_only_model(tmp_path, architecture)
    tok = load_tokenizer(str(path))
    shots = "English: The cat sleeps on the mat.\nArabic: القط ينام على الحصيرة.\n\n" * 3
    sources = ["Hello.", "The weather is nice today and I like green tea.", "Good morning, friends!", "Yes."]
    requests = [
        Request(f"r{i}", tok(f"{shots}English: {s}\nArabic:", add_special_tokens=False)["input_ids"], 30 + 5 * i)
        for i, s in enumerate(sources)
    ]
    eos = {tok.eos_token_id}

    def run(prefix_cache: bool) -> tuple[dict[str, list[int]], TransformersBackend]:
        runtime = {"prefix_cache": prefix_cache, "generate_batch_size": 3}
        backend = TransformersBackend(str(path), engine(runtime=runtime), eos, tok.pad_token_id, penalty)
        out: dict[str, list[int]] = {}
        backend.generate(requests, lambda gens: out.update((g.key, g.token_ids) for g in gens))
        return out, backend

    plain, _ = run(False)
    cached, backend = run(True)
    prefix = backend._prefix
    assert prefix is not None and prefix.cache is not None, "the shots are shared: their cache is reused"
    assert len(prefix.ids) >= len(tok(shots, add_special_tokens=False)["input_ids"])
    assert cached == plain and all(len(ids) > 0 for ids in plain.values())
    if architecture == "gemma3_text":
        # Prompt (~70 tokens) plus answer outgrow the 96-token window: those rows were generated again without
        # the prefix, so the padding after it never shifts the window.
        assert prefix.window == 96 and max(len(r.prompt_ids) for r in requests) + 30 > 96


def test_shared_prefix_cache_is_not_used_for_a_convolution_state(model_dir):
    tok = load_tokenizer(str(model_dir))
    shared = tok("The weather is nice today and I like green tea. " * 4, add_special_tokens=False)["input_ids"]
    requests = [Request(k, shared + tok(k, add_special_tokens=False)["input_ids"], 4) for k in ("Hello.", "Yes.")]
    backend = TransformersBackend(str(model_dir), engine(), {tok.eos_token_id}, tok.pad_token_id)
    out: dict[str, list[int]] = {}
    backend.generate(requests, lambda gens: out.update((g.key, g.token_ids) for g in gens))
    assert set(out) == {"Hello.", "Yes."}
    # LFM2's short convolutions would read the padding after the prefix: its cache is never shared.
    assert backend._prefix is not None and backend._prefix.cache is None


def test_translators_of_one_model_share_its_tokenizer(model_dir, tmp_path):
    first, second = translator(model_dir, tmp_path), translator(model_dir, tmp_path, stop_at_newline=True)
    assert first.tokenizer is second.tokenizer  # loaded once per process (Gemma 3's takes seconds)
    assert first.tokenizer.padding_side == load_tokenizer(str(model_dir)).padding_side  # nothing changed it
