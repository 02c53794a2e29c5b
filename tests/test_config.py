"""Every experiment composes and validates; the dry run imports nothing heavy; errors name the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hala_exp.core.pipeline import Pipeline
from hala_exp.core.schema import ConfigError
from hala_exp.core.tracking import REDACTED, redact

ROOT = Path(__file__).parent.parent
CONF = ROOT / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
HEAVY = (
    "torch",
    "transformers",
    "vllm",
    "lighteval",
    "mergekit",
    "llmcompressor",
    "wandb",
    "pytorch_lightning",
    "datasets",
)


def compose_cfg(overrides=()):
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=False)


def test_paper_experiments_exist():
    assert {"hala_350m", "hala_700m", "hala_1.2b", "hala_9b", "translator_1.2b", "embedded"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_validates(experiment, tmp_path, shared_data, monkeypatch):
    # The paper's eval reads local Tatoeba / TICO-19 copies (their hub sets are loading scripts), and
    # planning hashes every local input: validating needs the data folder.
    monkeypatch.setenv("HALA_SHARED_DATA", str(shared_data))
    cfg = compose_cfg([f"+experiment={experiment}", f"paths.output_dir={tmp_path}"])
    pipe = Pipeline.from_config(cfg, group="test")
    assert set(cfg.pipeline.stages) <= set(pipe.steps)
    assert all(len(step.fingerprint) == 16 for step in pipe.steps.values())


def test_embedded_experiment_is_the_default(tmp_path):
    plain = OmegaConf.to_container(compose_cfg([f"paths.output_dir={tmp_path}"]), resolve=True)
    spelled = OmegaConf.to_container(
        compose_cfg(["+experiment=embedded", f"paths.output_dir={tmp_path}"]), resolve=True
    )
    assert plain == spelled


def test_merge_t_change_only_touches_merge_and_eval(tmp_path):
    a = Pipeline.from_config(compose_cfg([f"paths.output_dir={tmp_path}"]), group="t").steps
    b = Pipeline.from_config(compose_cfg([f"paths.output_dir={tmp_path}", "merge.t=0.25"]), group="t").steps
    changed = {n for n in a if a[n].fingerprint != b[n].fingerprint}
    assert changed == {"merge", "eval"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("merge.t=1.5", r"merge.t: 1.5 is outside \[0(.0)?, 1(.0)?\]"),
        ("pipeline.stages=[base,bogus]", r"pipeline.stages: unknown stage\(s\) \['bogus'\]; allowed: \["),
    ],
)
def test_config_errors_name_the_key(override, message, tmp_path):
    cfg = compose_cfg([override, f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=message):
        Pipeline.from_config(cfg, group="t")


def test_unknown_group_option_lists_choices():
    out = subprocess.run(
        [sys.executable, "-m", "hala_exp", "model=lfm2_999m", "--cfg", "job"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "model/lfm2_999m" in out.stderr and "lfm2_1.2b" in out.stderr


def test_app_exits_with_config_error_before_compute(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "hala_exp", "merge.t=2", f"paths.output_dir={tmp_path}", "logger=none"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "merge.t: 2" in out.stderr + out.stdout
    assert not (tmp_path / "cache").exists()


def test_dry_run_and_validation_import_nothing_heavy(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("HALA_SHARED_DATA", str(shared_data))
    code = f"""
import sys
from hydra import compose, initialize_config_dir
from hala_exp.core.pipeline import Pipeline
with initialize_config_dir(config_dir={str(CONF)!r}):
    for exp in {EXPERIMENTS!r}:
        Pipeline.from_config(compose("config", overrides=["+experiment=" + exp, "paths.output_dir={tmp_path}"]), group="t")
print("HEAVY", [m for m in {HEAVY!r} if m in sys.modules])
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout[-500:]
    code = (
        "import runpy, sys; sys.argv = ['hala_exp', '+experiment=hala_1.2b', '--cfg', 'job', '--resolve']\n"
        "try:\n    runpy.run_module('hala_exp', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "LiquidAI/LFM2-1.2B" in out.stdout, out.stderr[-2000:]  # the resolved dry run shows the data flow
    assert "HEAVY []" in out.stdout


def test_secrets_are_redacted():
    cfg = {
        "hub": {"token": "hf_abc", "path": "x"},
        "logger": {"WANDB_API_KEY": "k"},
        "password": "p",
        "tokenizer": {"name": "keep"},
        "max_new_tokens": 64,
        "tokenizer_path": "t",
        "githubToken": "g",
    }
    out = redact(cfg)
    assert out["hub"]["token"] == out["logger"]["WANDB_API_KEY"] == out["password"] == REDACTED
    assert out["githubToken"] == REDACTED
    assert out["hub"]["path"] == "x" and out["tokenizer"] == {"name": "keep"}
    assert out["max_new_tokens"] == 64 and out["tokenizer_path"] == "t"
    assert "hf_abc" not in json.dumps(out)


def test_missing_local_eval_data_is_a_plan_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HALA_SHARED_DATA", str(tmp_path / "no_data_here"))
    cfg = compose_cfg(["+experiment=hala_1.2b", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"pipeline.steps.eval_translator.config: input not found: .*no_data_here"):
        Pipeline.from_config(cfg, group="t")
