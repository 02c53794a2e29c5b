"""Model directories: load them safely, and build tiny ones from a config for offline runs and tests.

Every model that moves between stages is a Hugging Face directory (safetensors, config, tokenizer with
chat template). Loading always asks for safetensors and keeps ``trust_remote_code`` off unless a config
turns it on for a named model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# ChatML: the template of the tiny tokenizers we build (our choice; LFM2 and SmolLM2 use the same markers).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Tiny shapes for CPU runs and tests (our choice). head_dim 64: vLLM's CPU attention rejects 16.
TINY_SHAPES: dict[str, dict[str, Any]] = {
    "lfm2": dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        layer_types=["conv", "full_attention", "conv", "full_attention"],
        block_auto_adjust_ff_dim=False,
    ),
    "llama": dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
    ),
}


def build_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A byte-level BPE trained on ``texts`` with ChatML special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_model(architecture: str, tokenizer, seed: int = 0, **overrides):
    """A randomly initialised causal LM of a known architecture, sized by ``TINY_SHAPES`` + overrides."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if architecture not in TINY_SHAPES:
        raise ValueError(f"architecture {architecture!r} unknown; allowed: {sorted(TINY_SHAPES)}")
    shape = {**TINY_SHAPES[architecture], **overrides}
    config = AutoConfig.for_model(
        architecture,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        **shape,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def save_model_dir(model, tokenizer, out_dir: str | Path) -> Path:
    """Write a Hugging Face directory that transformers, vLLM, mergekit and lighteval all read."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("model_type") == "lfm2":
        # vLLM's LFM2 reads these; transformers does not write them for a locally built config.
        cfg.setdefault("conv_dim", cfg["hidden_size"])
        cfg.setdefault("block_dim", cfg["hidden_size"])
        cfg_path.write_text(json.dumps(cfg, indent=2))
    return out


def build_tiny_model_dir(
    out_dir: str | Path,
    texts: Iterable[str],
    architecture: str = "lfm2",
    vocab_size: int = 2000,
    seed: int = 0,
    **overrides,
) -> Path:
    tokenizer = build_tokenizer(texts, vocab_size)
    model = build_model(architecture, tokenizer, seed=seed, **overrides)
    return save_model_dir(model, tokenizer, out_dir)


def load_tokenizer(path: str, trust_remote_code: bool = False, revision: str | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    path: str,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    revision: str | None = None,
    device: str | None = None,
):
    """Load a causal LM from safetensors only (never pickle)."""
    import torch
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=getattr(torch, dtype) if dtype != "auto" else "auto",
        trust_remote_code=trust_remote_code,
        revision=revision,
        use_safetensors=True,
    )
    if device:
        model.to(device)
    return model.eval()


def embedded_texts() -> list[str]:
    """English and Arabic text shipped with the package: what tiny tokenizers are trained on (the stand-in
    teacher's Tatoeba sample included, so that every tiny model splits Arabic into real subwords). The
    held-out pairs are left out: a vocabulary fitted to the test references would flatter every score on them."""
    from hala_exp.data.jsonl import read_jsonl

    texts: list[str] = []
    names = ("instructions_en.jsonl", "sft_en.jsonl", "parallel_train.jsonl")
    for path in [ASSETS / n for n in names] + [ASSETS.parent / "teacher" / "tatoeba_ara_eng_sample.jsonl"]:
        for row in read_jsonl(path).rows:
            texts.extend(str(v) for v in row.values() if isinstance(v, str))
    return texts


ASSETS = Path(__file__).parents[1] / "assets" / "embedded"
