"""merge stage: slerp endpoints, per-layer gradients, refusals, tokenizer carried over, YAML written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hala_exp.core.schema import ConfigError, build
from hala_exp.core.stage import StageContext
from hala_exp.stages import merge


def _tensors(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def _merge(base: Path, other: Path, out: Path, **config):
    cfg = build(merge.Config, config, "merge")
    out.mkdir(parents=True, exist_ok=True)
    ctx = StageContext("merge", "merge", cfg, {"model": {"model": str(other)}, "base": {"model": str(base)}}, out)
    return merge.run(ctx)


@pytest.fixture(scope="module")
def other_lfm2_dir(tmp_path_factory, tiny_lfm2_dir) -> Path:
    """Same architecture and tokenizer as the base, different weights: stands in for the SFT model."""
    from hala_exp.core.model_dirs import build_tiny_model_dir, embedded_texts

    return build_tiny_model_dir(tmp_path_factory.mktemp("other_lfm2"), embedded_texts(), "lfm2", seed=1)


@pytest.mark.parametrize("t, expected", [(0.0, "base"), (1.0, "other")])
def test_endpoints_equal_base_and_other(tmp_path, tiny_lfm2_dir, other_lfm2_dir, t, expected):
    import torch

    result = _merge(tiny_lfm2_dir, other_lfm2_dir, tmp_path, t=t)
    merged = _tensors(tmp_path / result.outputs["model"])
    want = _tensors(tiny_lfm2_dir if expected == "base" else other_lfm2_dir)
    unwanted = _tensors(other_lfm2_dir if expected == "base" else tiny_lfm2_dir)
    assert set(merged) == set(want)
    for name, tensor in merged.items():
        assert torch.equal(tensor, want[name]), name
    assert any(not torch.equal(unwanted[n], want[n]) for n in want)  # the two inputs really differ


def test_gradient_per_layer_as_documented(tmp_path, tiny_lfm2_dir, other_lfm2_dir):
    """self_attn follows [0, 1] over the 4 layers (0, 1/3, 2/3, 1), conv follows [1, 0], the rest 0.5;
    tensors outside the layers take a gradient's first value."""
    import torch
    from mergekit.merge_methods.slerp import slerp

    config = dict(
        t=0.5, filters=[{"filter": "self_attn", "value": [0.0, 1.0]}, {"filter": "conv", "value": [1.0, 0.0]}]
    )
    result = _merge(tiny_lfm2_dir, other_lfm2_dir, tmp_path, **config)
    cfg = build(merge.Config, config, "merge")
    merged, base, other = (_tensors(p) for p in (tmp_path / "model", tiny_lfm2_dir, other_lfm2_dir))

    assert result.details["t_per_layer"]["self_attn"] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert result.details["t_per_layer"]["conv"] == pytest.approx([1, 2 / 3, 1 / 3, 0])
    # Endpoints of a gradient are exact copies: layer 1 is the first attention layer (t = 1/3) and
    # layer 3 the last (t = 1); layer 0 is a conv layer (conv gradient starts at 1 -> the other model).
    q3 = "model.layers.3.self_attn.q_proj.weight"
    assert torch.equal(merged[q3], other[q3])
    c0 = "model.layers.0.conv.in_proj.weight"
    assert torch.equal(merged[c0], other[c0])
    ff = "model.layers.2.feed_forward.w1.weight"
    assert not torch.equal(merged[ff], base[ff]) and not torch.equal(merged[ff], other[ff])
    # Every tensor is mergekit's slerp at the t our documented rule gives it.
    for name, tensor in merged.items():
        t = t_for_tensor(cfg, name, 4)
        # mergekit's kernel takes a batch of whole tensors (leading axis = one merged tensor each).
        want = slerp(torch.tensor([t]), base[name][None], other[name][None])[0].to(base[name].dtype)
        assert torch.allclose(tensor, want, atol=1e-6), (name, t)
    assert t_for_tensor(cfg, "model.embed_tokens.weight", 4) == 0.5
    assert t_for_tensor(build(merge.Config, {"t": [0.2, 0.8]}, "merge"), "model.embed_tokens.weight", 4) == 0.2


def test_tokenizer_chat_template_and_yaml_carried(tmp_path, tiny_lfm2_dir, other_lfm2_dir):
    import yaml
    from mergekit.config import MergeConfiguration
    from transformers import AutoTokenizer

    result = _merge(tiny_lfm2_dir, other_lfm2_dir, tmp_path, t=0.5)
    out = tmp_path / result.outputs["model"]
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (out / name).read_bytes() == (Path(tiny_lfm2_dir) / name).read_bytes(), name
    tok = AutoTokenizer.from_pretrained(out)
    text = tok.apply_chat_template([{"role": "user", "content": "مرحبا"}], tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>user") and text.endswith("<|im_start|>assistant\n")
    written = yaml.safe_load((tmp_path / result.outputs["mergekit_config"]).read_text())
    assert written["parameters"]["t"] == 0.5 and written["base_model"] == str(tiny_lfm2_dir)
    MergeConfiguration.model_validate(written)  # mergekit-yaml accepts the file as written


def test_unmatched_filter_refused_before_compute(tmp_path, tiny_lfm2_dir, other_lfm2_dir):
    with pytest.raises(ConfigError, match=r"merge\.filters\[1\]\.filter: 'mlp' matches no tensor of lfm2"):
        _merge(
            tiny_lfm2_dir,
            other_lfm2_dir,
            tmp_path,
            filters=[{"filter": "self_attn", "value": 0.2}, {"filter": "mlp", "value": 0.2}],
        )
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()


@pytest.mark.parametrize(
    "config, key",
    [
        ({"t": 1.5}, "merge.t"),
        ({"t": -0.1}, "merge.t"),
        ({"t": [0.0, 2.0]}, r"merge.t\[1\]"),
        ({"filters": [{"filter": "conv", "value": [0.5, -1]}]}, r"merge.filters\[0\].value\[1\]"),
        ({"filters": [{"filter": " ", "value": 0.5}]}, r"merge.filters\[0\].filter"),
        ({"method": "ties"}, "merge.method"),
    ],
)
def test_bad_config_refused(config, key):
    with pytest.raises(ConfigError, match=key):
        build(merge.Config, config, "merge")


def test_different_architectures_refused_naming_both(tmp_path, tiny_lfm2_dir, tiny_llama_dir):
    with pytest.raises(ConfigError) as err:
        _merge(tiny_lfm2_dir, tiny_llama_dir, tmp_path, t=0.5)
    assert str(tiny_lfm2_dir) in str(err.value) and str(tiny_llama_dir) in str(err.value)
    assert "architecture" in str(err.value)


def test_different_vocabularies_refused_naming_both(tmp_path, tiny_lfm2_dir):
    from hala_exp.core.model_dirs import build_tiny_model_dir, embedded_texts

    other = build_tiny_model_dir(tmp_path / "other_vocab", embedded_texts()[:40], "lfm2", vocab_size=600)
    with pytest.raises(ConfigError) as err:
        _merge(tiny_lfm2_dir, other, tmp_path / "out", t=0.5)
    assert "vocabular" in str(err.value) and str(tiny_lfm2_dir) in str(err.value) and str(other) in str(err.value)


def test_slerp_config_file_validates():
    from omegaconf import OmegaConf

    root = Path(__file__).parents[1]
    cfg = build(merge.Config, OmegaConf.to_container(OmegaConf.load(root / "conf/merge/slerp.yaml")), "merge")
    assert cfg.t == 0.5 and cfg.method == "slerp"


def t_for_tensor(cfg, tensor_name: str, num_layers: int) -> float:
    """The t mergekit gives one tensor by our documented rule: first matching filter, else ``t``; a layer's
    position on a gradient is layer / (num_layers - 1)."""
    parts = tensor_name.split(".")
    layers = [int(parts[i + 1]) for i, p in enumerate(parts[:-1]) if p == "layers" and parts[i + 1].isdigit()]
    position = 0.0 if not layers else (layers[0] / (num_layers - 1) if num_layers > 1 else 1.0)
    value = next((f.value for f in cfg.filters if f.filter in tensor_name), cfg.t)
    return merge.gradient_value(value, position)
