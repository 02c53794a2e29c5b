"""Sweep economy: a 5-point slerp-t sweep after one full run vs 5 full runs from cold caches.

    .venv/bin/python benchmarks/sweep_economy.py [--quick] [--rounds N]

Runtime: a round is 1 + 5 full runs and a sweep (about 3.5 min idle); the default 5 rounds take about
18 min, `--quick` (t = 0, 1) about 8 min.

Both sides run the real pipeline (embedded default, CPU, offline, logger=none, with the FAST overrides of
tests/test_sweep.py: a tiny random teacher, no quantisation, gates off, short generations; the plain
default adds the Gemma 3 270M teacher's conversion, FP8 quantisation and translation to every cold run) as
subprocesses in this
one process run, each side in its own temporary output directory (so its own cache).
The sweep side reuses every step but merge and eval; the naive side recomputes everything per point, as
without a content-addressed cache. Writes benchmarks/results/sweep_economy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Spread, finish, header, run_facts, write_result  # noqa: E402

T_POINTS = (0.0, 0.25, 0.5, 0.75, 1.0)
FAST = [
    "model@translator.teacher=lfm2_tiny",
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


def report(facts: dict, points: tuple[float, ...], rounds: list[dict]) -> str:
    """``rounds``: one dict per round with first_run, sweep, cold (list per point) seconds and step counters."""
    n, grid = len(points), ",".join(f"{t:g}" for t in points)
    first = Spread.of([r["first_run"] for r in rounds])
    sweep = Spread.of([r["sweep"] for r in rounds])
    both = Spread.of([r["first_run"] + r["sweep"] for r in rounds])
    cold = Spread.of([sum(r["cold"]) for r in rounds])
    table = [
        ("first full run (fills the cache)", first, "all"),
        (f"{n}-point t sweep after it", sweep, _fmt(rounds[-1]["sweep_steps"])),
        (f"first run + {n}-point sweep", both, ""),
        (f"{n} full runs, cold caches", cold, _fmt(rounds[-1]["cold_steps"])),
    ]
    saving = Spread.of([sum(r["cold"]) / r["sweep"] for r in rounds])
    saving_all = Spread.of([sum(r["cold"]) / (r["first_run"] + r["sweep"]) for r in rounds])
    lines = header("Sweep economy: slerp-t sweep after a full run vs full runs from cold caches", facts)
    lines += [
        f"Points: t = {grid}. Embedded default on CPU, `logger=none`, with {' '.join(FAST)} (tiny random teacher: "
        "the plain default adds the teacher's conversion, quantisation and translation to each cold run). "
        f"{len(rounds)} rounds; each cell is the median (min–max) over them; wall times include process start-up.",
        "",
        "| what | wall time (s) | steps computed (last round) |",
        "|---|---:|---|",
        *[f"| {what} | {secs.fmt('.1f')} | {steps} |" for what, secs, steps in table],
        "",
        f"Sweep after a full run: **{saving.fmt('.1f')}x** less wall time than {n} cold full runs "
        f"({saving_all.fmt('.1f')}x counting the first run), paired per round.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 points instead of 5")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    facts = run_facts("sweep_economy.py")
    points = T_POINTS[::4] if args.quick else T_POINTS
    grid = ",".join(f"{t:g}" for t in points)
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            shared, naive = Path(tmp, "shared"), Path(tmp, "naive")
            first_run = hala(shared)  # default t = 0.5: fills the cache
            sweep = hala(
                shared, "-m", "+sweep=slerp_t", f"merge.t={grid}", f"hydra.sweep.dir={shared}/multirun/t_sweep"
            )
            cold = [hala(naive / f"t{t:g}", f"merge.t={t}") for t in points]
            rounds.append(
                dict(first_run=first_run, sweep=sweep, cold=cold, sweep_steps=ran_counts(shared / "multirun"),
                     cold_steps=ran_counts(naive))
            )  # fmt: skip
    write_result("sweep_economy.md", report(finish(facts), points, rounds))


def _fmt(counts: Counter) -> str:
    return ", ".join(f"{step} x{c}" for step, c in sorted(counts.items()))


if __name__ == "__main__":
    main()
