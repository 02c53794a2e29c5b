"""Sweep economy: a 5-point slerp-t sweep after one full run vs 5 full runs from cold caches.

    .venv/bin/python benchmarks/sweep_economy.py [--quick]

Both sides run the real pipeline (embedded default, CPU, offline, logger=none, with the FAST overrides of
tests/test_sweep.py: a tiny random teacher, no quantisation, gates off, short generations; the plain
default adds the SmolLM2-135M teacher's conversion, FP8 quantisation and translation to every cold run) as
subprocesses in this
one process run, each side in its own temporary output directory (so its own cache).
The sweep side reuses every step but merge and eval; the naive side recomputes everything per point, as
without a content-addressed cache. Writes benchmarks/results/sweep_economy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "sweep_economy.md"
T_POINTS = (0.0, 0.25, 0.5, 0.75, 1.0)
FAST = [
    "model@translator.teacher=lfm2_tiny",
    "translator.teacher_train.max_steps=2",  # the embedded stand-in teacher is trained in the pipeline
    "quantize=none",
    "translate.gates.enabled=false",
    "translate.engine.max_new_tokens=24",
]


def hala(output_dir: Path, *args: str) -> float:
    env = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [sys.executable, "-m", "hala_exp", f"paths.output_dir={output_dir}", "logger=none", *FAST, *args]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - started


def ran_counts(path: Path) -> Counter:
    return Counter(
        step
        for p in path.glob("**/summary.json")
        for step, st in json.loads(p.read_text())["stages"].items()
        if st["status"] == "ran"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 points instead of 5")
    args = parser.parse_args()
    points = T_POINTS[::4] if args.quick else T_POINTS
    grid = ",".join(f"{t:g}" for t in points)
    with tempfile.TemporaryDirectory() as tmp:
        shared, naive = Path(tmp, "shared"), Path(tmp, "naive")
        first_run = hala(shared)  # default t = 0.5: fills the cache
        sweep = hala(shared, "-m", "+sweep=slerp_t", f"merge.t={grid}", f"hydra.sweep.dir={shared}/multirun/t_sweep")
        sweep_steps = ran_counts(shared / "multirun")
        cold = [hala(naive / f"t{t:g}", f"merge.t={t}") for t in points]
        naive_steps = ran_counts(naive)
    n = len(points)
    rows = [
        ("first full run (fills the cache)", first_run, "all"),
        (f"{n}-point t sweep after it", sweep, _fmt(sweep_steps)),
        (f"first run + {n}-point sweep", first_run + sweep, ""),
        (f"{n} full runs, cold caches", sum(cold), _fmt(naive_steps)),
    ]
    lines = [
        "## Sweep economy: slerp-t sweep after a full run vs full runs from cold caches",
        "",
        f"Points: t = {grid}. Embedded default on CPU, `logger=none`, with {' '.join(FAST)} (tiny random teacher: "
        "the plain default adds the SmolLM2-135M teacher's conversion, quantisation and translation to each cold run).",
        "",
        "| what | wall time (s) | steps computed |",
        "|---|---:|---|",
        *[f"| {what} | {secs:.1f} | {steps} |" for what, secs, steps in rows],
        "",
        f"Sweep after a full run: **{sum(cold) / sweep:.1f}x** less wall time than {n} cold full runs "
        f"({sum(cold) / (first_run + sweep):.1f}x counting the first run). Cold runs per point: "
        + ", ".join(f"{s:.1f}" for s in cold)
        + " s.",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPU cores, no GPU. "
        "Run-to-run noise on these machines is about +-10 %; each time includes process start-up (~7 s of imports).",
        "",
        f"Command: `.venv/bin/python benchmarks/sweep_economy.py{' --quick' if args.quick else ''}`",
        "",
    ]
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


def _fmt(counts: Counter) -> str:
    return ", ".join(f"{step} x{c}" for step, c in sorted(counts.items()))


if __name__ == "__main__":
    main()
