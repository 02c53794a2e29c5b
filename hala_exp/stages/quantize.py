"""quantize stage: compress the teacher translator with llmcompressor, then check what compression cost.

The Hala report quantises its teacher to FP8 for ~2x translation throughput "with no quality loss"
([P] arXiv 2509.14008 abstract; llmcompressor as the tool is [S]). ``method: fp8_dynamic`` runs
llmcompressor's ``oneshot`` with
``QuantizationModifier(targets, scheme="FP8_DYNAMIC", ignore)``: Linear weights become float8 with per-channel
scales, activations are quantised per token at run time, so no calibration data is needed. The checkpoint is
written with ``save_compressed=True`` (compressed-tensors format: vLLM and plain transformers read it).
``method: none`` passes the input model through (no copy).

Validation (on by default, small: our choice) compares the unquantised and the reloaded quantised model on
held-out sentences: max / mean absolute logit difference where prompt + reference predict the reference
(teacher forcing), BLEU and chrF++ of their greedy translations (sacrebleu) and generated tokens/s of both. On
CPU FP8 is *slower* (weights are de-quantised on the fly); the speed-up is a property of GPUs with FP8 units
(compute capability >= 8.9).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hala_exp.core.schema import NOT_FINGERPRINTED, ConfigError
from hala_exp.core.stage import StageContext, StageResult
from hala_exp.evaluation.testsets import TestSetConfig
from hala_exp.translation.config import EngineConfig, LanguageConfig, PromptConfig, ProtectConfig

log = logging.getLogger(__name__)

VERSIONS = ("llmcompressor", "compressed-tensors", "transformers", "torch")
FORMAT_VERSION = 1  # bump when this stage's code changes the bytes it writes (part of the fingerprint)
# lm_head stays in full precision for every architecture (its logits pick the tokens; llmcompressor's examples
# leave it out too). Per-architecture additions come from config (`ignore:` keyed by config.json model_type).
ALWAYS_IGNORED = ("lm_head",)


@dataclass(frozen=True)
class _EnabledValidation:
    heldout: TestSetConfig
    prompt: PromptConfig
    language: LanguageConfig


@dataclass
class ValidationConfig:
    enabled: bool = True
    # The held-out test set, in the schema eval reads (conf: `${data.heldout}`, the entry eval uses too); its
    # direction is the validation's.
    heldout: TestSetConfig | None = None
    sentences: int = 4  # the first N pairs: a few keep the check cheap on CPU (our choice; more on GPU)
    prompt: PromptConfig | None = None
    language: LanguageConfig | None = None
    # How translations are generated: the translate stage's engine (`translate.engine`), so the throughput is
    # the backend's in use; its runtime.device also runs the logit comparison.
    engine: EngineConfig = field(default_factory=EngineConfig)
    protect: ProtectConfig = field(default_factory=ProtectConfig)  # spans kept out, as the translate stage does
    logits_batch_size: int = field(default=8, metadata=NOT_FINGERPRINTED)  # sentences per teacher-forced pass

    def required(self) -> _EnabledValidation:
        """The settings ``check()`` guarantees when validation is enabled, with their types narrowed."""
        if self.heldout is None or self.prompt is None or self.language is None:
            raise ConfigError("heldout, prompt, language: required when enabled is true (or set enabled: false)")
        return _EnabledValidation(self.heldout, self.prompt, self.language)

    def check(self) -> None:
        if self.enabled:
            for key in ("heldout", "prompt", "language"):
                if getattr(self, key) is None:
                    raise ConfigError(f"{key}: required when enabled is true (or set enabled: false)")
            if self.sentences < 1:
                raise ConfigError(f"sentences: {self.sentences} must be >= 1")


@dataclass
class Config:
    method: Literal["fp8_dynamic", "none"]
    scheme: str = "FP8_DYNAMIC"  # llmcompressor preset scheme name
    targets: list[str] = field(default_factory=lambda: ["Linear"])
    # model_type -> module names or "re:<regex>" left unquantised, on top of lm_head; "default" for the rest.
    ignore: dict[str, list[str]] = field(default_factory=dict)
    dtype: str = "auto"  # dtype the unquantised model is loaded in (auto: as in its config.json)
    trust_remote_code: bool = False
    # A check of the checkpoint, not an input to it: the quantised model depends only on method, scheme,
    # targets, ignore, dtype and the model, so validation settings never move this step's fingerprint.
    validation: ValidationConfig = field(
        default_factory=lambda: ValidationConfig(enabled=False), metadata=NOT_FINGERPRINTED
    )

    def check(self) -> None:
        # FP8 with static activation scales needs calibration data, which this stage does not feed.
        allowed = ["FP8_DYNAMIC", "FP8_BLOCK"]
        if self.scheme not in allowed:
            raise ConfigError(f"scheme: {self.scheme!r} is not allowed; allowed values: {allowed}")
        if not self.targets:
            raise ConfigError("targets: at least one module type to quantise, e.g. [Linear]")

    def ignore_for(self, model_type: str) -> list[str]:
        extra = self.ignore.get(model_type, self.ignore.get("default", []))
        return list(dict.fromkeys([*ALWAYS_IGNORED, *extra]))


def input_files(config: Config) -> list[str]:
    # The held-out file only feeds validation (not fingerprinted): it does not change the checkpoint.
    return []


def run(ctx: StageContext) -> StageResult:
    cfg: Config = ctx.config
    src = ctx.input("model", "model")
    if cfg.method == "none":
        return StageResult(outputs={"model": src}, details={"method": "none", "source": src})

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = ctx.out_dir / "model"
    # Held-out data first: a validation that cannot run should fail before a long model load.
    validation = _Validation(cfg.validation, src) if cfg.validation.enabled else None
    finished = (out / "config.json").is_file()  # an earlier attempt saved the checkpoint, then died
    model = None
    if not finished or validation:
        model = AutoModelForCausalLM.from_pretrained(
            src,
            dtype=cfg.dtype if cfg.dtype == "auto" else getattr(torch, cfg.dtype),
            trust_remote_code=cfg.trust_remote_code,
            use_safetensors=True,
        ).eval()
    # The model stage always hands over a local directory (hub models are snapshotted there).
    model_type = json.loads((Path(src) / "config.json").read_text()).get("model_type", "")
    ignore = cfg.ignore_for(model_type)
    if validation:
        assert model is not None  # loaded above whenever validation runs
        validation.logits("base", model)

    metrics: dict[str, float | int] = {}
    details: dict[str, Any] = {"method": cfg.method, "scheme": cfg.scheme, "model_type": model_type, "ignore": ignore}
    if finished:
        log.info("quantised checkpoint already in %s (earlier attempt); reusing it", out)
    else:
        assert model is not None  # loaded above whenever no finished checkpoint exists
        tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=cfg.trust_remote_code)
        metrics.update(_quantize(model, cfg, ignore))
        tmp = ctx.out_dir / f".model.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, save_compressed=True)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out)  # the directory appears complete or not at all
    del model  # one model in memory at a time from here on
    metrics["checkpoint_mb"] = _size_mb(out)
    metrics["base_checkpoint_mb"] = _size_mb(Path(src))

    if validation:
        validation.translate("base", src, ctx.out_dir)
        quantized = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=cfg.trust_remote_code).eval()
        validation.logits("fp8", quantized)
        del quantized
        validation.translate("fp8", str(out), ctx.out_dir)
        metrics.update(validation.compare("base", "fp8"))
        details["validation_samples"] = validation.samples("base", "fp8", 3)
    return StageResult(outputs={"model": "model"}, metrics=metrics, details=details)


def _quantize(model, cfg: Config, ignore: list[str]) -> dict[str, int]:
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier

    unmatched = [p for p in ignore if not _matches_any(p, (n for n, _ in model.named_modules()))]
    if unmatched:
        # A pattern that matches nothing is usually a name from another architecture: say so, do not fail
        # (tied lm_head models have no lm_head module on some versions).
        log.warning("quantize.ignore entries match no module of this %s model: %s", model.config.model_type, unmatched)
    recipe = QuantizationModifier(targets=cfg.targets, scheme=cfg.scheme, ignore=ignore)
    oneshot(model=model, recipe=recipe)
    quantized = sum(1 for _, m in model.named_modules() if getattr(m, "quantization_scheme", None) is not None)
    linears = sum(1 for _, m in model.named_modules() if type(m).__name__ == "Linear")
    return {"quantized_modules": quantized, "unquantized_linears": linears - quantized}


def _matches_any(pattern: str, module_names) -> bool:
    import re

    if pattern.startswith("re:"):
        rx = re.compile(pattern[3:])
        return any(rx.match(n) for n in module_names)
    return any(n == pattern or n.endswith("." + pattern) for n in module_names)


def _size_mb(path: Path) -> float:
    files = [p for p in path.rglob("*.safetensors")] if path.is_dir() else []
    return round(sum(p.stat().st_size for p in files) / 2**20, 3)


class _Validation:
    """The same held-out sentences through each model: teacher-forced logits, greedy translations, timing."""

    def __init__(self, cfg: ValidationConfig, model_dir: str):
        from hala_exp.evaluation.testsets import load_testset
        from hala_exp.translation.engine import Translator

        self.cfg = cfg
        self.given = given = cfg.required()
        heldout = load_testset("quantize.validation.heldout", given.heldout)
        self.direction = heldout.direction
        self.sources, self.references = heldout.sources[: cfg.sentences], heldout.references[: cfg.sentences]
        # Rendered exactly as the translate stage renders them (quantisation does not touch the tokenizer).
        renderer = Translator(model_dir, given.prompt, given.language, self.direction, cfg.engine)
        self.tokenizer = renderer.tokenizer
        self.prompts = [renderer.render(s) for s in self.sources]
        self.add_special_tokens = not given.prompt.chat_template
        self.results: dict[str, dict[str, Any]] = {}

    def logits(self, label: str, model) -> None:
        device = _device(self.cfg.engine.runtime.device)
        model.to(device)
        self.results.setdefault(label, {})["logits"] = _teacher_forced_logits(
            model,
            self.tokenizer,
            self.prompts,
            self.references,
            device,
            self.cfg.logits_batch_size,
            self.add_special_tokens,
        )
        model.to("cpu")

    def translate(self, label: str, model_dir: str, work_dir: Path) -> None:
        from hala_exp.translation.cache import SegmentCache
        from hala_exp.translation.engine import Translator

        work = work_dir / f"validation-{label}"
        cfg = self.cfg
        given = self.given
        tr = Translator(model_dir, given.prompt, given.language, self.direction, cfg.engine, cfg.protect, work_dir=work)
        # One model's segments must never answer for the other's: each label has its own cache, fresh per run.
        shutil.rmtree(work / "segments", ignore_errors=True)
        cache = SegmentCache(work / "segments")
        try:
            tr.backend()  # load the model first: the ledger's seconds then time generation only
            results, spent = tr.translate(self.sources, cache)
        finally:
            tr.close()
            cache.close()
        hyps = [r.text if r.text is not None else r.marked for r in results]
        self.results.setdefault(label, {}).update(hyps=hyps, tokens=spent.output_tokens, seconds=spent.seconds)

    def compare(self, base: str, other: str) -> dict[str, float]:
        import sacrebleu
        import torch

        a, b = self.results[base], self.results[other]
        diffs = [(x - y).abs() for x, y in zip(a["logits"], b["logits"])]
        out = {
            "validation/sentences": len(self.prompts),
            "validation/max_logit_diff": float(max(d.max() for d in diffs)),
            "validation/mean_logit_diff": float(torch.cat([d.flatten() for d in diffs]).mean()),
            "validation/identical_outputs": sum(x == y for x, y in zip(a["hyps"], b["hyps"])) / len(a["hyps"]),
        }
        # sacrebleu's default 13a tokenizer and chrF++ (word_order=2) work offline (measured here).
        for label, res in ((base, a), (other, b)):
            out[f"validation/{label}/bleu"] = sacrebleu.corpus_bleu(res["hyps"], [self.references]).score
            out[f"validation/{label}/chrf"] = sacrebleu.corpus_chrf(res["hyps"], [self.references], word_order=2).score
            out[f"validation/{label}/tokens_per_s"] = res["tokens"] / res["seconds"] if res["seconds"] else 0.0
        out["validation/bleu_delta"] = out[f"validation/{other}/bleu"] - out[f"validation/{base}/bleu"]
        out["validation/chrf_delta"] = out[f"validation/{other}/chrf"] - out[f"validation/{base}/chrf"]
        base_speed = out[f"validation/{base}/tokens_per_s"]
        out["validation/speedup"] = out[f"validation/{other}/tokens_per_s"] / base_speed if base_speed else 0.0
        return out

    def samples(self, base: str, other: str, n: int) -> list[dict[str, str]]:
        return [
            {"source": s, "reference": r, base: x, other: y}
            for s, r, x, y in zip(
                self.sources[:n], self.references, self.results[base]["hyps"], self.results[other]["hyps"]
            )
        ]


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _teacher_forced_logits(model, tokenizer, prompts, references, device, batch_size, add_special_tokens):
    """Each sentence's logits where prompt + reference predict the reference (from the prompt's last token
    on): the same input for both models. Only those positions: a few-shot prompt's shots would otherwise
    dominate the comparison, and a 262k-token vocabulary's logits over every prompt token cost seconds and
    gigabytes."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            batch, refs = prompts[i : i + batch_size], references[i : i + batch_size]
            # Chat-rendered prompts already carry their special tokens; plain prompts get the tokenizer's (BOS).
            enc = tokenizer(
                [p + r for p, r in zip(batch, refs)],
                return_tensors="pt",
                padding=True,
                padding_side="left",  # every row's reference then ends in the last columns
                add_special_tokens=add_special_tokens,
            ).to(device)
            prompt_lengths = [len(ids) for ids in tokenizer(batch, add_special_tokens=add_special_tokens)["input_ids"]]
            keep = [max(int(n) - p + 1, 1) for n, p in zip(enc["attention_mask"].sum(1), prompt_lengths)]
            logits = model(**enc, logits_to_keep=max(keep)).logits.float()
            out += [row[-k:].cpu() for row, k in zip(logits, keep)]
    return out
