"""Greedy decoding gives the same tokens on the transformers and vLLM backends for the same model and prompts.

vLLM lives in a second environment (`make vllm-env`); this test needs its interpreter at
``$HALA_VLLM_PYTHON`` or ``.venv-vllm/bin/python`` and skips with that reason when it is absent.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_translation_support import LANGUAGE, PROMPT, tiny_model

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = os.environ.get("HALA_VLLM_PYTHON", str(ROOT / ".venv-vllm/bin/python"))


def _has_vllm(python: str) -> bool:
    if not Path(python).exists():
        return False
    return subprocess.run([python, "-c", "import vllm"], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.slow,  # the vLLM engine takes minutes to start on 2 CPU cores
    pytest.mark.skipif(
        not _has_vllm(VLLM_PYTHON),
        reason=f"no vLLM worker interpreter at {VLLM_PYTHON} (build it with `make vllm-env`, or set HALA_VLLM_PYTHON)",
    ),
]


def test_transformers_and_vllm_agree_on_greedy_tokens(tmp_path):
    from hala_exp.core.schema import build
    from hala_exp.translation.cache import SegmentCache
    from hala_exp.translation.config import EngineConfig, LanguageConfig, PromptConfig
    from hala_exp.translation.engine import Translator

    model = tiny_model(tmp_path)
    texts = ["Hello world.", "The weather is nice today.", "Where is the library?", "I like green tea very much."]
    ids = {}
    for name in ("transformers", "vllm"):
        engine = build(
            EngineConfig,
            {
                "name": name,
                "dtype": "float32",
                "max_new_tokens": 12,
                "runtime": {"worker_python": VLLM_PYTHON, "progress": False},
            },
            "translate.engine",
        )
        tr = Translator(
            str(model),
            build(PromptConfig, PROMPT, "prompt"),
            build(LanguageConfig, LANGUAGE, "language"),
            "en-xx",
            engine,
            work_dir=tmp_path / name,
        )
        cache = SegmentCache(tmp_path / name / "segments")
        results, spent = tr.translate(texts + texts[:2], cache)  # two calls on one engine: one start-up
        results2, spent2 = tr.translate(["A second window of work."], cache)
        tr.close()
        assert spent.engine_starts == 1 and spent2.engine_starts == 0, f"{name}: one engine start per job"
        ids[name] = [cache.get(tr.key(t)) for t in texts]
        assert all(ids[name]), f"{name} generated nothing"
    assert ids["transformers"] == ids["vllm"]
