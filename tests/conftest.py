"""Shared fixtures: the repo's shared data (skipped with a reason when absent) and tiny model directories."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))  # test helper modules (pipeline_fakes)
SHARED_DATA = Path(os.environ.get("HALA_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA} (set HALA_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_lfm2_dir(tmp_path_factory) -> Path:
    from hala_exp.core.model_dirs import build_tiny_model_dir, embedded_texts

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny_lfm2"), embedded_texts(), "lfm2")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    from hala_exp.core.model_dirs import build_tiny_model_dir, embedded_texts

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny_llama"), embedded_texts(), "llama")
