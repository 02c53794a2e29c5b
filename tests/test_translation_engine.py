"""Engine options for a base model on a few-shot plain-text prompt: generation stops at a line break (on
segments cut at every line break)."""

from __future__ import annotations

import pytest
from test_translation_support import LANGUAGE, PROMPT, arabize, install_fake, tiny_model

from hala_exp.core.schema import build
from hala_exp.translation.cache import SegmentCache
from hala_exp.translation.config import EngineConfig, LanguageConfig, PromptConfig
from hala_exp.translation.engine import Translator


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("models"))


def engine(**options) -> EngineConfig:
    options["runtime"] = {"progress": False, "device": "cpu", **options.get("runtime", {})}
    return build(EngineConfig, {"dtype": "float32", **options}, "translate.engine")


def translator(model_dir, tmp_path, **options) -> Translator:
    prompt, language = build(PromptConfig, PROMPT, "prompt"), build(LanguageConfig, LANGUAGE, "language")
    return Translator(str(model_dir), prompt, language, "en-xx", engine(**options), work_dir=tmp_path)


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

