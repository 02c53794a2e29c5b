"""Benchmark runner: start-up time and the embedded default's cold and warm wall time, measured side by
side in one run; then gathers every benchmark section from benchmarks/results/ into benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run.py            # measure the pipeline (cold run takes a few minutes)
    .venv/bin/python benchmarks/run.py --collect  # only rebuild RESULTS.md from benchmarks/results/*.md
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def machine_info() -> str:
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(
            next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1]
        )
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    versions = ", ".join(
        f"{p} {metadata.version(p)}" for p in ("torch", "transformers", "hydra-core", "pytorch-lightning")
    )
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}; {versions}"


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(repeats: int) -> str:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        app = [sys.executable, "-m", "hala_exp", f"paths.output_dir={out}"]
        dry = [timed([*app, "+experiment=hala_1.2b", "--cfg", "job", "--resolve"], env) for _ in range(repeats)]
        cold = timed(app, env)
        warm = [timed(app, env) for _ in range(repeats)]
    rows = [
        (
            "`python -m hala_exp +experiment=hala_1.2b --cfg job --resolve` (dry run)",
            statistics.median(dry),
            "<= 1.5 s",
        ),
        ("`python -m hala_exp` cold (empty cache, every stage runs)", cold, "<= 300 s"),
        ("`python -m hala_exp` warm (every stage cached)", statistics.median(warm), "-"),
    ]
    lines = [
        "## Pipeline start-up and the embedded default",
        "",
        f"Command: `.venv/bin/python benchmarks/run.py` ({time.strftime('%Y-%m-%d')}); medians of {repeats} "
        "runs where repeated; W&B offline.",
        f"Machine: {machine_info()}",
        "",
        "| what | wall time (s) | goal |",
        "|---|---:|---|",
    ]
    lines += [f"| {name} | {secs:.2f} | {goal} |" for name, secs, goal in rows]
    lines += ["", f"Warm / cold: {statistics.median(warm) / cold:.3f}."]
    return "\n".join(lines) + "\n"


def collect() -> None:
    sections = sorted(RESULTS.glob("*.md"), key=lambda p: (p.stem != "pipeline", p.stem))
    text = [
        "# Benchmark results",
        "",
        "Every figure below was produced by the command named in its section, on the machine it names.",
        "Run-to-run noise on these 2-core machines is about ±10 %: compare ratios measured in one run.",
        "",
    ]
    # Each section is a level-2 heading under this page's title, whatever its file uses.
    text += [re.sub(r"^# ", "## ", p.read_text().strip(), count=1) + "\n" for p in sections]
    (ROOT / "benchmarks" / "RESULTS.md").write_text("\n".join(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collect", action="store_true", help="only rebuild RESULTS.md")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.collect:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "pipeline.md").write_text(measure(args.repeats))
    collect()
    print((ROOT / "benchmarks" / "RESULTS.md").read_text())


if __name__ == "__main__":
    main()
