"""Pipeline start-up and the embedded default's cold and warm wall time; then gathers every section under
benchmarks/results/ into benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run.py             # measure the pipeline: 5 rounds, each a cold run (minutes)
    .venv/bin/python benchmarks/run.py --collect   # only rebuild RESULTS.md from benchmarks/results/*.md

A round is: a dry run, a cold run in a fresh output directory, a warm rerun of it; each figure is the
median (min-max) over the rounds. Each wall time includes process start-up.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, Spread, finish, header, run_facts, write_result  # noqa: E402

DRY = "`python -m hala_exp +experiment=hala_1.2b --cfg job --resolve` (dry run)"
COLD = "`python -m hala_exp` cold (empty cache, every stage runs)"
WARM = "`python -m hala_exp` warm (every stage cached)"
GOALS = {DRY: "<= 1.5 s", COLD: "<= 300 s", WARM: "-"}  # our goals (README), not the paper's
PREAMBLE = [
    "# Benchmark results",
    "",
    "Written by `benchmarks/run.py --collect` from the files in `benchmarks/results/`, each written whole by",
    "the script its header names; nothing here is edited by hand. Compare ratios measured in one run:",
    "absolute times move with the machine's load, which each header records.",
    "",
]


def report(facts: dict, times: dict[str, list[float]]) -> str:
    lines = header("Pipeline start-up and the embedded default", facts)
    lines += [
        f"{len(next(iter(times.values())))} interleaved rounds; median (min–max) wall seconds, process start-up "
        "included, W&B offline.",
        "",
        "| what | wall time (s) | goal |",
        "|---|---:|---|",
        *[f"| {what} | {Spread.of(t).fmt()} | {GOALS.get(what, '-')} |" for what, t in times.items()],
    ]
    if COLD in times and WARM in times:
        lines += ["", f"Warm / cold (medians): {Spread.of(times[WARM]).median / Spread.of(times[COLD]).median:.3f}."]
    return "\n".join(lines) + "\n"


def _timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(rounds: int) -> dict[str, list[float]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
    times: dict[str, list[float]] = {DRY: [], COLD: [], WARM: []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as out:
            app = [sys.executable, "-m", "hala_exp", f"paths.output_dir={out}"]
            times[DRY].append(_timed([*app, "+experiment=hala_1.2b", "--cfg", "job", "--resolve"], env))
            times[COLD].append(_timed(app, env))
            times[WARM].append(_timed(app, env))
    return times


def collect(sections: list[Path]) -> str:
    """RESULTS.md: the pipeline section first, then the others by name, each demoted under this page's title."""
    ordered = sorted(sections, key=lambda p: (p.stem != "pipeline", p.stem))
    body = [re.sub(r"^# ", "## ", p.read_text(encoding="utf-8").strip(), count=1) + "\n" for p in ordered]
    return "\n".join(PREAMBLE + body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collect", action="store_true", help="only rebuild RESULTS.md")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not args.collect:
        facts = run_facts("run.py")
        write_result("pipeline.md", report(finish(facts), measure(args.rounds)))
    text = collect(list(RESULTS.glob("*.md")))
    (ROOT / "benchmarks" / "RESULTS.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
