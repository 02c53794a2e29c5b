"""Greedy decoding gives the same tokens on the transformers and vLLM backends for the same model and prompts,
and the engine's settings reach vLLM's ``SamplingParams`` through the worker's files.

vLLM lives in a second environment (`make vllm-env`); the agreement test needs its interpreter at
``$HALA_VLLM_PYTHON`` or ``.venv-vllm/bin/python`` and skips with that reason when it is absent. The settings
test runs the real worker on a stand-in ``vllm`` module, so it needs no vLLM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_translation_support import LANGUAGE, PROMPT, tiny_model

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = os.environ.get("HALA_VLLM_PYTHON", str(ROOT / ".venv-vllm/bin/python"))


def _has_vllm(python: str) -> bool:
    if not Path(python).exists():
        return False
    return subprocess.run([python, "-c", "import vllm"], capture_output=True).returncode == 0


needs_vllm = pytest.mark.skipif(
    not _has_vllm(VLLM_PYTHON),
    reason=f"no vLLM worker interpreter at {VLLM_PYTHON} (build it with `make vllm-env`, or set HALA_VLLM_PYTHON)",
)


@pytest.mark.slow  # the vLLM engine takes minutes to start on 2 CPU cores
@needs_vllm
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


# A stand-in for vllm: records the sampling settings of every prompt and "generates" the prompt back.
FAKE_VLLM = """
import json, os
from types import SimpleNamespace as NS

class SamplingParams:
    def __init__(self, **settings):
        self.settings = settings

class LLM:
    def __init__(self, **engine):
        pass

    def generate(self, prompts, params, use_tqdm):
        with open(os.environ["FAKE_VLLM_LOG"], "a") as fh:
            fh.writelines(json.dumps(p.settings) + "\\n" for p in params)
        return [NS(outputs=[NS(token_ids=p["prompt_token_ids"])]) for p in prompts]
"""


def test_engine_settings_reach_the_vllm_workers_sampling_params(tmp_path, monkeypatch):
    from hala_exp.core.schema import build
    from hala_exp.translation.backends import Request, VllmBackend
    from hala_exp.translation.config import EngineConfig

    (tmp_path / "fake" / "vllm").mkdir(parents=True)
    (tmp_path / "fake" / "vllm" / "__init__.py").write_text(textwrap.dedent(FAKE_VLLM))
    python = tmp_path / "python"  # the worker interpreter: this one, with the stand-in first on its path
    python.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "fake"} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    log = tmp_path / "sampling.jsonl"
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    engine = build(EngineConfig, {"name": "vllm", "runtime": {"worker_python": str(python)}}, "e")
    backend = VllmBackend("model", engine, {7, 9}, tmp_path / "worker", repetition_penalty=1.3)
    out = []
    try:
        backend.generate([Request("a", [5, 6, 7, 8], 10), Request("b", [4, 3], 10)], out.extend)
        assert json.loads((backend.session / "engine.json").read_text())["repetition_penalty"] == 1.3
    finally:
        backend.close()
    settings = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(settings) == 2
    assert all(s["repetition_penalty"] == 1.3 and s["stop_token_ids"] == [7, 9] for s in settings)
    assert all(s["temperature"] == 0.0 for s in settings), "greedy"
    assert {g.key: g.token_ids for g in out} == {"a": [5, 6], "b": [4, 3]}, "cut at the first end id"
