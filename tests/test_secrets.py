"""No secret on disk, wherever it came from: the environment, the command line, a config file, a model's config.

Command-line secrets are refused before Hydra writes anything (tests/test_faults.py). Secrets that reach the
config another way are redacted in summary.json, manifests, saved model configs, W&B and Hydra's .hydra/
files; every file under the output directory is searched for every secret value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pipeline_fakes as fakes
import pytest
from cli_helpers import fake_pipeline_conf, run_cli

from hala_exp.core.tracking import REDACTED, redact, redact_saved_configs, secret_override_key

ROOT = Path(__file__).parents[1]
ENV_SECRETS = {"HF_TOKEN": "hf_env-SECRET-1", "WANDB_API_KEY": "wandb-env-SECRET-2"}
LEAKY_EXPERIMENT = """\
# @package _global_
hub_access_token: file-SECRET-3
translate:
  runtime:
    auth:
      password: file-SECRET-4
"""


def files_with(root: Path, needles: list[str]) -> dict[str, list[str]]:
    hits = {}
    for f in root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            found = [n for n in needles if n.encode() in data]
            if found:
                hits[str(f)] = found
    return hits


def test_secrets_from_the_environment_and_config_files_never_reach_disk(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    for k, v in ENV_SECRETS.items():
        monkeypatch.setenv(k, v)
    fakes.patch(monkeypatch)
    searchpath = fake_pipeline_conf(tmp_path / "conf", {"experiment/leaky.yaml": LEAKY_EXPERIMENT})
    out = tmp_path / "out"
    code, printed = run_cli(
        monkeypatch,
        capsys,
        searchpath,
        "pipeline=fakes",
        "+experiment=leaky",
        "logger=wandb_offline",
        f"paths.output_dir={out}",
    )
    assert code == 0, printed
    secrets = [*ENV_SECRETS.values(), "file-SECRET-3", "file-SECRET-4"]
    assert files_with(out, secrets) == {}
    assert not any(s in printed for s in secrets)
    (run_dir,) = (out / "runs").iterdir()
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert f"hub_access_token: '{REDACTED}'" in config  # redacted, not dropped
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["config"]["translate"]["runtime"]["auth"] == {"password": REDACTED}
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))  # W&B did write its files


def test_secrets_from_config_files_are_redacted_in_a_sweep(tmp_path, monkeypatch, capsys):
    """A multirun also writes the sweep's whole config (multirun.yaml) and one .hydra/ per job."""
    fakes.patch(monkeypatch)
    searchpath = fake_pipeline_conf(tmp_path / "conf", {"experiment/leaky.yaml": LEAKY_EXPERIMENT})
    out = tmp_path / "out"
    code, printed = run_cli(
        monkeypatch,
        capsys,
        "-m",
        searchpath,
        "pipeline=fakes",
        "+experiment=leaky",
        "pipeline.steps.double.config.factor=2,3",
        "logger=none",
        f"paths.output_dir={out}",
    )
    assert code == 0, printed
    assert files_with(out, ["file-SECRET-3", "file-SECRET-4"]) == {}
    (sweep,) = (out / "multirun").iterdir()
    assert f"hub_access_token: '{REDACTED}'" in (sweep / "multirun.yaml").read_text()


def test_saved_model_config_is_redacted_and_still_loads(tiny_lfm2_dir, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    model = tmp_path / "model"
    shutil.copytree(tiny_lfm2_dir, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["hub"] = {"access_token": "cfg-SECRET-5"}
    (model / "config.json").write_text(json.dumps(cfg))
    changed = redact_saved_configs(tmp_path)
    assert changed == [model / "config.json"]
    saved = json.loads((model / "config.json").read_text())
    assert saved["hub"]["access_token"] == REDACTED
    # Vocabulary "tokens" are not secrets: the model and tokenizer still load with their special ids.
    assert saved["eos_token_id"] == cfg["eos_token_id"] and saved["pad_token_id"] == cfg["pad_token_id"]
    assert AutoConfig.from_pretrained(model).eos_token_id == cfg["eos_token_id"]
    assert AutoTokenizer.from_pretrained(model).eos_token is not None
    assert files_with(tmp_path, ["cfg-SECRET-5"]) == {}


@pytest.mark.parametrize(
    "override, key",
    [
        ("+hf_token=x", "hf_token"),
        ("++a.b.access_token=x", "a.b.access_token"),
        ("hub.password=x", "hub.password"),
        ("+model@x.auth_header=x", "model@x.auth_header"),
        ("max_new_tokens=24", None),
        ("model=lfm2_tiny", None),
        ("translate.gates.enabled=false", None),
        ("bos_token=x", None),
    ],
)
def test_secret_override_keys(override, key):
    assert secret_override_key(override) == key


def test_override_lists_and_dirnames_are_redacted():
    assert redact(["merge.t=0.5", "+hf_token=abc"]) == ["merge.t=0.5", f"+hf_token={REDACTED}"]
    assert redact("merge.t=0,0.5") == "merge.t=0,0.5"
    assert redact("a=1,+hub.access_token=abc") == f"a=1,+hub.access_token={REDACTED}"


@pytest.mark.slow
def test_secret_nested_in_a_built_models_config_is_redacted_end_to_end(tmp_path):
    """A real model stage: a secret in the model's settings lands in its config.json, which is redacted."""
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "leaky_model.yaml").write_text("# @package _global_\nmodel:\n  shape:\n    access_token: model-SECRET-6\n")
    out = tmp_path / "out"
    env = {**os.environ, **ENV_SECRETS, "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1"}
    env.pop("WANDB_MODE", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hala_exp",
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
            "+experiment=leaky_model",
            "pipeline.stages=[base]",
            "logger=wandb_offline",
            f"paths.output_dir={out}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert files_with(out, ["model-SECRET-6", *ENV_SECRETS.values()]) == {}
    (saved,) = (out / "cache" / "model").glob("*/model/config.json")
    cfg = json.loads(saved.read_text())
    assert cfg["access_token"] == REDACTED and isinstance(cfg["eos_token_id"], int)
