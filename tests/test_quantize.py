"""quantize stage: llmcompressor FP8_DYNAMIC on tiny models, per-architecture ignore lists, pass-through, validation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hala_exp.core.schema import ConfigError, build
from hala_exp.core.stage import StageContext
from hala_exp.stages import quantize

CONF = Path(__file__).resolve().parents[1] / "conf"
pytest.importorskip("llmcompressor", reason="llmcompressor is not installed (pip install 'hala_exp[quantize]')")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from hala_exp.core import model_dirs as models

    root = tmp_path_factory.mktemp("quantize-models")
    texts = models.embedded_texts()
    return {arch: str(models.build_tiny_model_dir(root / arch, texts, arch)) for arch in ("lfm2", "llama")}


def default_config(**overrides) -> dict:
    """conf/quantize/fp8_dynamic.yaml resolved against the language and translator groups it refers to."""
    root = OmegaConf.merge(
        {
            "seed": 0,
            "language": OmegaConf.load(CONF / "language" / "ar.yaml"),
            "translator": {"teacher_prompt": OmegaConf.load(CONF / "translator" / "embedded.yaml").teacher_prompt},
            "translate": OmegaConf.merge(
                OmegaConf.load(CONF / "translate" / "transformers.yaml"),
                {"engine": {"max_new_tokens": 8, "runtime": {"progress": False}}},  # short: random weights babble
            ),
            "data": {"heldout": OmegaConf.load(CONF / "data" / "embedded.yaml").heldout},
            "quantize": OmegaConf.load(CONF / "quantize" / "fp8_dynamic.yaml"),
        },
        {"quantize": overrides},
    )
    return OmegaConf.to_container(root, resolve=True)["quantize"]


def run_stage(model_dir: str, out: Path, config: dict):
    cfg = build(quantize.Config, config, "quantize")
    out.mkdir(parents=True, exist_ok=True)
    return quantize.run(StageContext("quantize", "quantize", cfg, {"model": {"model": model_dir}}, out))


def safetensors_dtypes(model_dir: Path) -> dict[str, str]:
    from safetensors import safe_open

    dtypes = {}
    for f in model_dir.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                dtypes[k] = str(st.get_slice(k).get_dtype())
    return dtypes


def test_lfm2_fp8_with_validation(tiny_models, tmp_path):
    result = run_stage(tiny_models["lfm2"], tmp_path, default_config())
    model_dir = tmp_path / result.outputs["model"]
    qcfg = json.loads((model_dir / "config.json").read_text())["quantization_config"]
    assert qcfg["quant_method"] == "compressed-tensors"
    assert qcfg["config_groups"]["group_0"]["input_activations"]["dynamic"] is True
    ignored = qcfg["ignore"]
    assert "lm_head" in ignored
    assert any(n.endswith("conv.in_proj") for n in ignored) and any(n.endswith("conv.out_proj") for n in ignored)

    dtypes = safetensors_dtypes(model_dir)
    fp8 = {k for k, v in dtypes.items() if v.startswith("F8")}  # safetensors names: F8_E4M3
    assert any("self_attn.q_proj" in k for k in fp8) and any("feed_forward.w1" in k for k in fp8)
    assert not any("conv.in_proj" in k or "lm_head" in k for k in fp8)

    m = result.metrics
    assert m["quantized_modules"] > 0 and m["unquantized_linears"] >= 1
    assert m["checkpoint_mb"] < m["base_checkpoint_mb"]
    # FP8 must change the logits a little, not a lot (random tiny weights: a loose bound, not a result).
    assert 0.0 < m["validation/max_logit_diff"] < 5.0 and math.isfinite(m["validation/mean_logit_diff"])
    for label in ("base", "fp8"):
        assert 0.0 <= m[f"validation/{label}/bleu"] <= 100.0 and 0.0 <= m[f"validation/{label}/chrf"] <= 100.0
        assert m[f"validation/{label}/tokens_per_s"] > 0
    assert m["validation/bleu_delta"] == pytest.approx(m["validation/fp8/bleu"] - m["validation/base/bleu"])
    assert m["validation/sentences"] == 4  # the default held-out count
    assert len(result.details["validation_samples"]) == 3

    # The reloaded checkpoint is what vLLM/transformers will read: it must load and produce finite logits.
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(model_dir)
    assert torch.isfinite(reloaded(torch.tensor([[5, 6, 7]])).logits).all()


def test_llama_ignores_only_lm_head_and_reuses_a_finished_checkpoint(tiny_models, tmp_path):
    config = default_config(validation={"enabled": False})
    first = run_stage(tiny_models["llama"], tmp_path, config)
    qcfg = json.loads((tmp_path / "model" / "config.json").read_text())["quantization_config"]
    assert qcfg["ignore"] == ["lm_head"]
    assert first.metrics["unquantized_linears"] == 1
    stamp = (tmp_path / "model" / "config.json").stat().st_mtime_ns
    again = run_stage(tiny_models["llama"], tmp_path, config)  # an interrupted attempt left the checkpoint
    assert "quantized_modules" not in again.metrics
    assert (tmp_path / "model" / "config.json").stat().st_mtime_ns == stamp


def test_none_passes_the_input_through(tiny_models, tmp_path):
    result = run_stage(tiny_models["llama"], tmp_path, {"method": "none"})
    assert result.outputs == {"model": tiny_models["llama"]}
    assert list(tmp_path.iterdir()) == []
    assert quantize.input_files(build(quantize.Config, {"method": "none"}, "quantize")) == []


def test_validation_settings_are_not_inputs_of_the_checkpoint():
    cfg = build(quantize.Config, default_config(), "quantize")
    assert cfg.validation.enabled and quantize.input_files(cfg) == [], "the held-out file only feeds the check"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"scheme": "FP8"}, "quantize.scheme: 'FP8' is not allowed"),
        ({"method": "int4"}, "quantize.method: 'int4' is not allowed"),
        ({"validation": {"heldout": None}}, "quantize.validation.heldout: required"),
        ({"targets": []}, "quantize.targets"),
    ],
)
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build(quantize.Config, default_config(**override), "quantize")


def test_ignore_list_per_model_type():
    cfg = build(quantize.Config, {"method": "fp8_dynamic", "ignore": {"default": ["gate"], "lfm2": ["re:x"]}}, "q")
    assert cfg.ignore_for("lfm2") == ["lm_head", "re:x"]
    assert cfg.ignore_for("cohere2") == ["lm_head", "gate"]


def test_heldout_without_the_target_language_fails_before_quantising(tiny_models, tmp_path):
    config = default_config(validation={"heldout": {"reference_field": "sw"}})  # the file has no 'sw' column
    with pytest.raises(ValueError, match=r"quantize\.validation\.heldout.*no usable pairs.*missing_or_not_string:sw"):
        run_stage(tiny_models["llama"], tmp_path, config)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("arch", ["lfm2", "llama"])
def test_teacher_forced_logits_are_those_that_predict_the_reference(tiny_models, arch):
    """The validation compares logits only where prompt + reference predict the reference; in a padded batch
    they must equal those of each sentence run alone."""
    import torch

    from hala_exp.core.model_dirs import load_model, load_tokenizer

    model, tok = load_model(tiny_models[arch]), load_tokenizer(tiny_models[arch])
    prompts = ["Translate: Hello", "Translate: The weather is nice today and I like"]
    references = [" world.", " green tea very much."]
    got = quantize._teacher_forced_logits(model, tok, prompts, references, "cpu", 8, add_special_tokens=True)
    for prompt, reference, logits in zip(prompts, references, got):
        ids = tok(prompt + reference)["input_ids"]
        start = len(tok(prompt)["input_ids"]) - 1  # the prompt's last token predicts the reference's first
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([ids])).logits[0]
        assert logits.shape[0] == len(ids) - start > 1
        torch.testing.assert_close(logits, alone[start:], atol=1e-4, rtol=1e-4)
