"""`+launcher=slurm`, exercised: jobs go through submitit's real SLURM path (sbatch script, array job, srun,
result pickles) with fake SLURM commands on PATH (tests/fake_slurm.py), and a preempted job is requeued and
resumes its stage.

The stages are the model-free fakes of ``pipeline_fakes``, patched into each job's interpreter by a
``sitecustomize`` on PYTHONPATH (the jobs are separate processes started by sbatch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fake_slurm
from cli_helpers import fake_pipeline_conf

ROOT = Path(__file__).parents[1]
TESTS = Path(__file__).parent
SITECUSTOMIZE = f"""\
import os, sys
if os.environ.get("HALA_FAKE_STAGES"):
    sys.path.insert(0, {str(TESTS)!r})
    import pipeline_fakes
    pipeline_fakes.patch()
"""


def slurm_env(tmp_path: Path) -> tuple[dict, Path]:
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    fake_slurm.install(bin_dir, state)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "HALA_FAKE_STAGES": "1",
        "FAKE_STAGE_LOG": str(tmp_path / "stages.log"),
        "WANDB_MODE": "disabled",
    }
    return env, state


def hala_slurm(tmp_path: Path, *args: str) -> list[str]:
    searchpath = fake_pipeline_conf(tmp_path / "conf")
    return [
        sys.executable,
        "-m",
        "hala_exp",
        "-m",
        searchpath,
        "pipeline=fakes",
        "+launcher=slurm",
        "logger=none",
        f"paths.output_dir={tmp_path / 'out'}",
        f"hydra.sweep.dir={tmp_path / 'out' / 'multirun' / 'sweep'}",
        *args,
    ]


def job_summaries(tmp_path: Path) -> dict[int, dict]:
    sweep = tmp_path / "out" / "multirun" / "sweep"
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}


def test_slurm_launcher_submits_an_array_job_through_sbatch(tmp_path):
    env, state = slurm_env(tmp_path)
    cmd = hala_slurm(tmp_path, "pipeline.steps.double.config.factor=2,3")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:] + (state / "log").read_text()
    log = (state / "log").read_text()
    assert "sbatch" in log and "tasks ['1001_0', '1001_1']" in log  # one array job, two tasks
    (script,) = (tmp_path / "out" / "multirun" / "sweep" / ".submitit").glob("*/*_submission.sh")
    text = script.read_text()
    # The recipe's resources and the requeue settings reach the sbatch script.
    assert "#SBATCH --gpus-per-node=8" in text and "#SBATCH --requeue" in text
    assert "#SBATCH --signal=USR2@" in text and "#SBATCH --array=0-1%2" in text  # array_parallelism 4, capped at 2 jobs
    jobs = job_summaries(tmp_path)
    assert {n: s["metrics"]["double/value"] for n, s in jobs.items()} == {0: 6, 1: 9}
    # The concurrent jobs share the source step: one computes it, the other waits on its lock and reuses it.
    assert sorted(s["stages"]["source"]["status"] for s in jobs.values()) == ["cached", "ran"]


def test_preempted_slurm_job_is_requeued_and_resumes(tmp_path):
    """USR2 (what SLURM sends before preempting or at the time limit) mid-stage: submitit checkpoints the
    launcher, `scontrol requeue`s the job, and the requeued job finishes, resuming the stage's partial work."""
    env, state = slurm_env(tmp_path)
    # A long first attempt (the signal must land mid-stage even on a loaded machine), a quick resumed one.
    cmd = hala_slurm(
        tmp_path,
        "pipeline.steps.source.config.runtime.sleep=60",
        "+pipeline.steps.source.config.runtime.sleep_resumed=0",
    )
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stage_log = tmp_path / "stages.log"
    deadline = time.time() + 120
    while not (stage_log.exists() and "source" in stage_log.read_text()):
        assert proc.poll() is None and time.time() < deadline, "the job never started its stage"
        time.sleep(0.2)
    (pid_file,) = state.glob("*.pid")  # a single job is submitted without --array: task "1001"
    os.kill(int(pid_file.read_text()), signal.SIGUSR2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-2000:] + err[-3000:] + (state / "log").read_text()
    deadline = time.time() + 60  # submitit returns on the result file, a moment before the task's process ends
    while "end 1001 attempt 2" not in (state / "log").read_text() and time.time() < deadline:
        time.sleep(0.2)
    log = (state / "log").read_text()
    assert "requeue 1001 attempt 2" in log and "end 1001 attempt 2 rc 0" in log
    assert len([line for line in stage_log.read_text().splitlines() if line.startswith("source ")]) == 2
    (summary,) = job_summaries(tmp_path).values()
    assert summary["stages"]["source"]["status"] == "ran"
    assert summary["metrics"]["source/resumed"] == 1  # the second attempt found the first one's partial work
    assert summary["metrics"]["double/value"] == 6
