"""Sweeps and launchers: the configs compose; a t sweep computes train once and merge + eval per point.

The end-to-end tests run the real pipeline in subprocesses, as a researcher would, on the embedded default
with FAST overrides: a tiny random teacher instead of Gemma 3 270M and no quantisation (the plain default
spends most of a cold run converting, quantising and running the Gemma teacher), translation quality gates
off (the random teacher's output would be rejected and leave nothing to train on) and short generations.
What they check, the caching of steps across sweep points, does not depend on the teacher. One cold
3-point sweep is shared by the tests (session fixture); the launcher test adds points to its cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CONF = ROOT / "conf"
SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml"))
LAUNCHERS = sorted(p.stem for p in (CONF / "launcher").glob("*.yaml"))
PER_T_STEPS = {"merge", "eval"}  # all a t sweep should compute once the rest is cached


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF), job_name="hala_exp"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_configs_compose_as_multiruns(name):
    cfg = compose([f"+sweep={name}"])
    params = dict(cfg.hydra.sweeper.params)
    assert params, f"conf/sweep/{name}.yaml sets no hydra.sweeper.params"
    text = (CONF / "sweep" / f"{name}.yaml").read_text()
    header = text.splitlines()
    assert header[0] == "# @package _global_" and f"+sweep={name}" in "\n".join(header[1:4])
    assert "python -m hala_exp -m " in "\n".join(header[1:4])
    # Hydra 1.4 refuses hydra.mode from a non-primary config ("hydra.mode changed during config
    # composition"): the command line's -m makes the multirun.
    assert "mode:" not in text
    if name == "optuna_t":
        assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
        assert cfg.pipeline.objective == "eval/average"


def test_sweep_values_name_existing_options():
    """Every swept group option exists (a typo would only fail at job N of a long sweep)."""
    assert compose(["+sweep=slerp_t"]).hydra.sweeper.params["merge.t"] == "0,0.25,0.5,0.75,1"
    for name, group, folder in (
        ("quantization", "quantize", "quantize"),
        ("data_mix", "data", "data"),
        ("model_size", "+experiment", "experiment"),
    ):
        values = compose([f"+sweep={name}"]).hydra.sweeper.params[group].split(",")
        missing = [v for v in values if not (CONF / folder / f"{v}.yaml").is_file()]
        assert not missing, f"+sweep={name}: no conf/{folder}/ option for {missing}"


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launchers_compose(name):
    cfg = compose(["+experiment=hala_1.2b", "+sweep=slerp_t", f"+launcher={name}"])
    assert "mode:" not in (CONF / "launcher" / f"{name}.yaml").read_text()
    target = cfg.hydra.launcher._target_
    assert target.endswith("SlurmLauncher" if name == "slurm" else "LocalLauncher")
    if name == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 8 and cfg.hydra.launcher.nodes == 1


# ------------------------------------------------------------------------------------------ end to end
FAST = [
    "model@translator.teacher=lfm2_tiny",
    "quantize=none",
    "translate.gates.enabled=false",
    "translate.engine.max_new_tokens=24",
]


def hala(args: list[str], output_dir: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [sys.executable, "-m", "hala_exp", f"paths.output_dir={output_dir}", "logger=none", *FAST, *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def summaries(path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(path.glob("**/summary.json"))]


def ran(summary: dict) -> set[str]:
    return {step for step, st in summary["stages"].items() if st["status"] == "ran"}


@pytest.fixture(scope="session")
def t_sweep(tmp_path_factory) -> Path:
    """A 3-point t sweep from cold caches, jobs one after another (Hydra's basic launcher)."""
    out = tmp_path_factory.mktemp("hala_outputs")
    sweep_dir = out / "multirun" / "t_sweep"
    hala(["-m", "+sweep=slerp_t", "merge.t=0,0.5,1", f"hydra.sweep.dir={sweep_dir}"], out)
    return sweep_dir


@pytest.mark.slow
def test_t_sweep_trains_once_and_merges_and_evaluates_per_point(t_sweep):
    jobs = summaries(t_sweep)
    assert sorted(j["config"]["merge"]["t"] for j in jobs) == [0, 0.5, 1]
    assert {j["run"]["group"] for j in jobs} == {"t_sweep"}  # one W&B group for the whole sweep
    assert not [s for j in jobs for s, st in j["stages"].items() if st["status"] == "failed"]
    counts = Counter(step for j in jobs for step in ran(j))
    assert counts["train"] == 1 and counts["train_translator"] == 1 and counts["translate_sft"] == 1
    assert counts["merge"] == counts["eval"] == 3
    assert all(c == 1 for step, c in counts.items() if step not in PER_T_STEPS), counts
    for job in jobs[1:]:  # after the first point everything upstream of merge is a cache hit
        assert ran(job) == PER_T_STEPS, job["stages"]
    assert len({j["stages"]["merge"]["fingerprint"] for j in jobs}) == 3
    assert len({j["stages"]["train"]["fingerprint"] for j in jobs}) == 1

    from hala_exp.reporting.report import write_report

    written = write_report([t_sweep])
    assert "metric_vs_t" in written
    assert written["markdown"].read_text().split("## Runs")[1].split("##")[0].count("| t_sweep/") == 3


@pytest.mark.slow
def test_submitit_local_launcher_sweep_after_a_sweep_pays_only_merge_and_eval(t_sweep):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = t_sweep.parents[1]
    sweep_dir = out / "multirun" / "submitit"
    hala(
        ["-m", "+sweep=slerp_t", "merge.t=0.25,0.75", "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep_dir}"],
        out,
    )
    jobs = summaries(sweep_dir)
    assert sorted(j["config"]["merge"]["t"] for j in jobs) == [0.25, 0.75]
    for job in jobs:  # the two jobs ran concurrently, each reusing the cache of the first sweep
        assert ran(job) == PER_T_STEPS, job["stages"]
    assert (sweep_dir / ".submitit").is_dir()  # really went through submitit


# ------------------------------------------------------------------------------------------ optuna
OPTUNA_FAKE_SWEEP = """\
# @package _global_
defaults:
  - override /hydra/sweeper: optuna
  - override /hydra/sweeper/sampler: tpe
hydra:
  sweeper:
    direction: maximize
    n_trials: 3
    n_jobs: 1
    sampler: {seed: 0, n_startup_trials: 3}
    params:
      pipeline.steps.double.config.factor: range(1, 9)
"""


def test_optuna_trials_receive_the_pipeline_objective(tmp_path, monkeypatch, capsys):
    """3 Optuna trials on the model-free fake stages: each trial's value is its run's `pipeline.objective`."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    import pipeline_fakes as fakes
    import yaml
    from cli_helpers import fake_pipeline_conf, run_cli

    fakes.patch(monkeypatch)
    searchpath = fake_pipeline_conf(tmp_path / "conf", {"sweep/optuna_fake.yaml": OPTUNA_FAKE_SWEEP})
    sweep_dir = tmp_path / "out" / "multirun" / "optuna"
    code, printed = run_cli(
        monkeypatch,
        capsys,
        "-m",
        searchpath,
        "pipeline=fakes",
        "+sweep=optuna_fake",
        "logger=none",
        f"paths.output_dir={tmp_path / 'out'}",
        f"hydra.sweep.dir={sweep_dir}",
    )
    assert code == 0, printed
    jobs = summaries(sweep_dir)
    assert len(jobs) == 3
    values = {
        j["config"]["pipeline"]["steps"]["double"]["config"]["factor"]: j["metrics"]["double/value"] for j in jobs
    }
    assert all(v == 3 * factor for factor, v in values.items())  # the fake pipeline: source 3, doubled by factor
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert result["best_value"] == max(values.values())
    assert result["best_params"]["pipeline.steps.double.config.factor"] == max(values)


@pytest.mark.slow
def test_optuna_t_sweep_runs_three_real_trials_and_maximises_the_objective(t_sweep):
    """conf/sweep/optuna_t on the embedded pipeline: upstream cached, each trial pays merge + eval only."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    import yaml

    out = t_sweep.parents[1]
    sweep_dir = out / "multirun" / "optuna_t"
    hala(["-m", "+sweep=optuna_t", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={sweep_dir}"], out)
    jobs = summaries(sweep_dir)
    assert len(jobs) == 3
    for job in jobs:
        assert ran(job) <= PER_T_STEPS, job["stages"]
    values = [j["metrics"]["eval/average"] for j in jobs]
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert result["best_value"] == max(values)
    best = max(jobs, key=lambda j: j["metrics"]["eval/average"])
    assert result["best_params"]["merge.t"] == best["config"]["merge"]["t"]
