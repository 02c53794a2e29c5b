"""merge stage: slerp the fine-tuned model with its base (mergekit), the Hala recipe's last training step.

Inputs: ``model`` (the SFT model) and ``base`` (the model it was tuned from). ``t`` is the weight of the SFT
model: t = 0 returns the base, t = 1 the SFT model (slerp [P]; the paper merges at t = 0.5 [S]).

Interpolation factors follow mergekit's parameter rules, which this stage documents and checks:

* ``t`` is a number, or a gradient ``[v0, v1, ..., vk]``: layer ``i`` of ``N`` sits at position
  ``p = i / (N - 1)`` and takes the piecewise-linear value at ``p * k`` (so ``[0, 1]`` over 4 layers gives
  0, 1/3, 2/3, 1). Tensors outside the layers (embeddings, embedding/final norms, lm_head) sit at
  position 0 and take ``v0``.
* ``filters``: ``[{filter: self_attn, value: ...}, ...]`` checked in order before ``t``; a filter is a
  substring of the tensor name and the first match wins. LFM2 tensors are named ``feed_forward``, ``conv``,
  ``self_attn``; Llama's ``mlp`` matches nothing in LFM2, so every filter must match a tensor of the
  merged architecture or the stage refuses to run (naming the key).
* Slerp falls back to linear interpolation for near-colinear rows (mergekit's threshold).

The merged directory carries the base model's tokenizer and chat template; the mergekit YAML that
reproduces the merge (``mergekit-yaml mergekit.yaml out/``) is written next to it.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hala_exp.core.schema import NOT_FINGERPRINTED, ConfigError, in_range
from hala_exp.core.stage import StageContext, StageResult

log = logging.getLogger(__name__)

VERSIONS = ("mergekit", "torch", "safetensors")
FORMAT_VERSION = 1  # bump when this stage's code changes the bytes it writes (part of the fingerprint)
# Files that make a tokenizer and its chat template; copied from the base so the merged model speaks like it.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
# config.json keys that must agree for two checkpoints to be merged tensor by tensor.
SHAPE_KEYS = (
    "model_type",
    "architectures",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "layer_types",
)

Gradient = float | list[float]


@dataclass
class FilteredT:
    """t for the tensors whose name contains ``filter`` (a substring, e.g. ``self_attn``)."""

    filter: str
    value: Gradient


@dataclass
class Runtime:
    # Where mergekit does the arithmetic (cpu | cuda | auto) and how many parameters go in one safetensors
    # shard (mergekit's notation): the same tensors either way.
    device: str = field(default="cpu", metadata=NOT_FINGERPRINTED)
    out_shard_size: str = field(default="5B", metadata=NOT_FINGERPRINTED)


@dataclass
class Config:
    method: Literal["slerp"] = "slerp"
    # weight of the SFT model: the paper merges at t = 0.5 ([S] reviews)
    t: Gradient = field(default=0.5, metadata={"expects": "a number in [0, 1] or a list of them"})
    filters: list[FilteredT] = field(default_factory=list)
    # null keeps the checkpoints' dtype; bfloat16/float16/float32 casts the merge (mergekit `dtype`).
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    runtime: Runtime = field(default_factory=Runtime)

    def check(self) -> None:
        _check_gradient("t", self.t)
        for i, f in enumerate(self.filters):
            if not f.filter.strip():
                raise ConfigError(f"filters[{i}].filter: must be a non-empty substring of tensor names")
            _check_gradient(f"filters[{i}].value", f.value)

    def mergekit_t(self) -> float | list:
        """The ``t`` parameter in mergekit's form: conditional entries first, the default last."""
        if not self.filters:
            return self.t
        return [{"filter": f.filter, "value": f.value} for f in self.filters] + [{"value": self.t}]


def _check_gradient(key: str, value: Gradient) -> None:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError(f"{key}: a gradient needs at least one value")
    for i, v in enumerate(values):
        in_range(key if not isinstance(value, list) else f"{key}[{i}]", v, 0.0, 1.0)


# ------------------------------------------------------------------------------------------ t per tensor
def gradient_value(value: Gradient, position: float) -> float:
    """mergekit's reading of a gradient at a relative position in [0, 1] (piecewise linear)."""
    if not isinstance(value, list):
        return float(value)
    if len(value) == 1:
        return float(value[0])
    scaled = position * (len(value) - 1)
    i0 = int(scaled)
    i1 = min(len(value) - 1, i0 + 1)
    frac = scaled - i0
    return (1 - frac) * value[i0] + frac * value[i1]


def _position(layer: int, num_layers: int) -> float:
    """Relative position of a layer on a gradient; mergekit puts a lone layer at the end (1.0)."""
    return layer / (num_layers - 1) if num_layers > 1 else 1.0


# ------------------------------------------------------------------------------------------ refusals
def read_checkpoint_info(model_dir: str | Path) -> tuple[dict, list[str]]:
    """config.json and the tensor names of a local safetensors checkpoint (no weights are read)."""
    from safetensors import safe_open

    model_dir = Path(model_dir)
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json (is it a Hugging Face model directory?)")
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights")
    names: list[str] = []
    for f in files:
        with safe_open(str(f), "pt") as st:
            names.extend(st.keys())
    return json.loads(cfg_path.read_text()), names


def check_mergeable(cfg: Config, base_dir: str, model_dir: str) -> dict:
    """Refuse, before any arithmetic, merges that cannot mean anything; return what was checked."""
    base_cfg, base_names = read_checkpoint_info(base_dir)
    other_cfg, other_names = read_checkpoint_info(model_dir)
    for key in SHAPE_KEYS:
        if base_cfg.get(key) != other_cfg.get(key):
            raise ConfigError(
                f"merge: the models differ in architecture ({key}: {base_cfg.get(key)!r} in base {base_dir} vs "
                f"{other_cfg.get(key)!r} in model {model_dir}); slerp needs two checkpoints of one architecture"
            )
    if base_cfg.get("vocab_size") != other_cfg.get("vocab_size") or _vocab(base_dir) != _vocab(model_dir):
        raise ConfigError(
            f"merge: the models have different vocabularies (base {base_dir}: vocab_size "
            f"{base_cfg.get('vocab_size')}, model {model_dir}: vocab_size {other_cfg.get('vocab_size')}, or "
            f"different token ids); merge a model with the base it was fine-tuned from"
        )
    names = sorted(set(base_names) & set(other_names))
    for i, f in enumerate(cfg.filters):
        if not any(f.filter in n for n in names):
            parts = sorted({p for n in names for p in n.split(".") if not p.isdigit()} - {"model", "weight", "bias"})
            raise ConfigError(
                f"merge.filters[{i}].filter: {f.filter!r} matches no tensor of {base_cfg.get('model_type')} "
                f"(name parts: {parts})"
            )
    layers = int(base_cfg.get("num_hidden_layers") or 0)
    return {"model_type": base_cfg.get("model_type"), "num_layers": layers, "tensors": len(names)}


def _vocab(model_dir: str | Path) -> dict[str, int] | None:
    """Token -> id of a model directory's tokenizer.json (None when there is no fast tokenizer file)."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path)).get_vocab(with_added_tokens=True)


# ------------------------------------------------------------------------------------------ the stage
def mergekit_config(cfg: Config, base_dir: str, model_dir: str) -> dict:
    """The merge as mergekit's YAML schema (``mergekit-yaml`` runs the same file)."""
    config = {
        "merge_method": cfg.method,
        "base_model": base_dir,
        "models": [{"model": base_dir}, {"model": model_dir}],
        "parameters": {"t": cfg.mergekit_t()},
    }
    if cfg.dtype:
        config["dtype"] = cfg.dtype
    return config


def run(ctx: StageContext) -> StageResult:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    cfg: Config = ctx.config
    base_dir, model_dir = ctx.input("base", "model"), ctx.input("model", "model")
    checked = check_mergeable(cfg, base_dir, model_dir)

    merge_cfg = MergeConfiguration.model_validate(mergekit_config(cfg, base_dir, model_dir))
    yaml_text = merge_cfg.to_yaml() + "\n"
    (ctx.out_dir / "mergekit.yaml").write_text(yaml_text, encoding="utf-8")

    out, tmp = ctx.out_dir / "model", ctx.out_dir / "model.partial"
    for stale in (out, tmp):  # an interrupted attempt: merging again is cheaper than checking its files
        if stale.exists():
            shutil.rmtree(stale)
    options = MergeOptions(
        device=cfg.runtime.device,
        out_shard_size=_parse_size(cfg.runtime.out_shard_size),
        copy_tokenizer=True,
        quiet=True,
        safe_serialization=True,
    )
    log.info("slerp t=%s (%d filters): %s + %s", cfg.t, len(cfg.filters), base_dir, model_dir)
    run_merge(merge_cfg, str(tmp), options=options, config_source=yaml_text)
    _carry_tokenizer(Path(base_dir), tmp)
    tmp.rename(out)

    n = checked["num_layers"]
    # The t each layer gets, per filter and for the remaining tensors: the manifest shows what a gradient did.
    layer_t = {f.filter: [gradient_value(f.value, _position(i, n)) for i in range(n)] for f in cfg.filters}
    layer_t["default"] = [gradient_value(cfg.t, _position(i, n)) for i in range(n)]
    metrics: dict[str, float | int] = {} if isinstance(cfg.t, list) else {"t": float(cfg.t)}
    return StageResult(
        outputs={"model": "model", "mergekit_config": "mergekit.yaml"},
        metrics=metrics,
        details={**checked, "t_per_layer": layer_t},
    )


def _carry_tokenizer(base_dir: Path, out: Path) -> None:
    """The base's tokenizer files and chat template, byte for byte (mergekit copies from its donor model,
    which is the base here; copying again makes the rule independent of mergekit's donor choice)."""
    for name in TOKENIZER_FILES:
        src = base_dir / name
        if src.is_file():
            shutil.copyfile(src, out / name)


def _parse_size(text: str) -> int:
    from mergekit.common import parse_kmb

    return parse_kmb(text)
