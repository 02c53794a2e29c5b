"""A one-machine stand-in for the SLURM commands submitit calls: sbatch, sacct, scontrol requeue, srun, scancel.

``install(bin_dir, state_dir)`` writes executables named after the commands into ``bin_dir``; put it first on
PATH. ``sbatch`` runs each (array) task of the script in the background with the SLURM_* variables a real
allocation sets; ``sacct`` reports their states; ``scontrol requeue`` starts the task again, as SLURM does
for a requeued job; ``srun`` runs its command in place (recording its pid so a test can signal the job).
Everything is logged to ``<state_dir>/log``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("sbatch", "sacct", "scontrol", "srun", "scancel")


def install(bin_dir: Path, state_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        path = bin_dir / name
        path.write_text(
            f'#!/bin/sh\nFAKE_SLURM_DIR={state_dir} exec {sys.executable} {Path(__file__).resolve()} {name} "$@"\n'
        )
        path.chmod(0o755)


def _state() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


def _log(line: str) -> None:
    with open(_state() / "log", "a") as fh:
        fh.write(line + "\n")


def _read(path: Path, default: str = "") -> str:
    return path.read_text().strip() if path.exists() else default


def _spawn(task: str, attempt: int, delay: float = 0.0) -> None:
    subprocess.Popen(
        [sys.executable, __file__, "_run", task, str(attempt), str(delay)],
        env={**os.environ},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def sbatch(args: list[str]) -> None:
    script = Path(args[-1])
    text = script.read_text()
    counter = _state() / "next_id"
    job_id = int(_read(counter, "1000")) + 1
    counter.write_text(str(job_id))
    m = re.search(r"^#SBATCH --array=(\d+)-(\d+)", text, re.M)
    tasks = [f"{job_id}_{i}" for i in range(int(m.group(1)), int(m.group(2)) + 1)] if m else [str(job_id)]
    for n, task in enumerate(tasks):
        array = task.split("_")
        env = {
            "SLURM_JOB_ID": str(job_id + 100 * (n + 1)) if m else str(job_id),
            "SLURM_NTASKS": "1",
            "SLURM_JOB_NUM_NODES": "1",
            "SLURM_NODEID": "0",
            "SLURM_JOB_NODELIST": "localhost",
            "SLURM_PROCID": "0",
            "SLURM_LOCALID": "0",
        }
        if m:
            env.update({"SLURM_ARRAY_JOB_ID": array[0], "SLURM_ARRAY_TASK_ID": array[1]})
        (_state() / f"{task}.json").write_text(json.dumps({"script": str(script), "env": env}))
        (_state() / f"{task}.attempt").write_text("1")
        (_state() / f"{task}.state").write_text("PENDING")
        _spawn(task, 1)
    _log(f"sbatch {script} -> {job_id} tasks {tasks}")
    print(f"Submitted batch job {job_id}")


def run_task(task: str, attempt: int, delay: float) -> None:
    time.sleep(delay)
    spec = json.loads((_state() / f"{task}.json").read_text())
    current = lambda: int(_read(_state() / f"{task}.attempt", "0")) == attempt  # noqa: E731
    (_state() / f"{task}.state").write_text("RUNNING")
    _log(f"run {task} attempt {attempt}")
    rc = subprocess.call(["bash", spec["script"]], env={**os.environ, **spec["env"], "FAKE_SLURM_TASK": task})
    if current():  # a requeued task's old attempt does not overwrite the new one's state
        (_state() / f"{task}.state").write_text("COMPLETED" if rc == 0 else "FAILED")
    _log(f"end {task} attempt {attempt} rc {rc}")


def sacct(args: list[str]) -> None:
    jobs = [args[i + 1] for i, a in enumerate(args) if a == "-j"]
    print("JobID|State|NodeList")
    for f in sorted(_state().glob("*.state")):
        task = f.name[: -len(".state")]
        if task.split("_")[0] in jobs:
            print(f"{task}|{_read(f)}|localhost")


def scontrol(args: list[str]) -> None:
    if args[:1] != ["requeue"]:
        raise SystemExit(f"fake scontrol: only 'requeue' is supported, got {args}")
    task = args[1]
    attempt = int(_read(_state() / f"{task}.attempt", "1")) + 1
    (_state() / f"{task}.attempt").write_text(str(attempt))
    (_state() / f"{task}.state").write_text("REQUEUED")
    _log(f"requeue {task} attempt {attempt}")
    _spawn(task, attempt, delay=1.0)  # SLURM restarts the job once the old one has exited


def srun(args: list[str]) -> None:
    out = err = None
    i = 0
    while i < len(args) and args[i].startswith("--"):
        if args[i] in ("--output", "--error"):
            out, err = (args[i + 1], err) if args[i] == "--output" else (out, args[i + 1])
            i += 2
        else:
            i += 1
    task = os.environ.get("FAKE_SLURM_TASK", "0")
    job, _, index = task.partition("_")

    def expand(p: str) -> str:
        return p.replace("%A", job).replace("%a", index or "0").replace("%j", job).replace("%t", "0")

    if out:
        fd = os.open(expand(out), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd if err is None else os.open(expand(err), os.O_WRONLY | os.O_CREAT | os.O_APPEND), 2)
    (_state() / f"{task}.pid").write_text(str(os.getpid()))
    os.execvp(args[i], args[i:])


def scancel(args: list[str]) -> None:
    _log(f"scancel {args}")


if __name__ == "__main__":
    name, rest = sys.argv[1], sys.argv[2:]
    if name == "_run":
        run_task(rest[0], int(rest[1]), float(rest[2]))
    else:
        {"sbatch": sbatch, "sacct": sacct, "scontrol": scontrol, "srun": srun, "scancel": scancel}[name](rest)
