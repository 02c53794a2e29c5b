"""What every benchmark script shares: the run's facts (command, commit, machine, date, load), repeated
interleaved measurement with median/min/max, and writing a results file whole.

Each script measures into plain data, then hands it to its own pure ``report(...)`` function, which turns
it into Markdown; ``tests/test_benchmark_reports.py`` renders every report on fixed input.
"""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Spread:
    """Median, min and max of repeated measurements of one figure."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            raise ValueError("no measurements to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def fmt(self, spec: str = ".2f") -> str:
        """``median (min-max)``, the form every results table uses."""
        return f"{self.median:{spec}} ({self.low:{spec}}–{self.high:{spec}})"


def interleaved(sides: dict[str, Callable[[], float]], repeats: int, warmup: int = 0) -> dict[str, list[float]]:
    """Run each side once per round, ``repeats`` rounds, so slow drift in machine load hits every side alike;
    the order rotates each round, so no side always runs first (as load falls). ``warmup`` rounds run first
    and are dropped: one-time costs (lazy imports, file caches) land on whichever side happens to go first."""
    out: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(warmup + repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            value = sides[name]()
            if r >= warmup:
                out[name].append(value)
    return out


def run_facts(script: str, argv: list[str] | None = None) -> dict:
    """The facts a results header records, taken at the start of the run (``load_end`` set by ``finish``)."""
    argv = sys.argv[1:] if argv is None else argv
    return {
        "command": " ".join([".venv/bin/python", f"benchmarks/{script}", *map(shlex.quote, argv)]),
        "commit": _commit(),
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": os.getloadavg()[0],
        "load_end": None,
    }


def finish(facts: dict) -> dict:
    return {**facts, "load_end": os.getloadavg()[0]}


def header(title: str, facts: dict) -> list[str]:
    """The results file's opening lines: title, then command, commit, machine, date and load average."""
    end = "" if facts.get("load_end") is None else f", {facts['load_end']:.1f} at the end"
    return [
        f"## {title}",
        "",
        f"- Command: `{facts['command']}`",
        f"- Commit: `{facts['commit']}`; date: {facts['date']}",
        f"- Machine: {facts['machine']}",
        f"- Load average (1 min): {facts['load_start']:.1f} at the start{end}",
        "",
    ]


def write_result(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    print(text)
    return path


def pipeline_steps(out: Path, steps: list[str], overrides: list[str] | None = None) -> dict[str, Path]:
    """Run these pipeline steps offline in the output directory ``out`` (steps already cached there are
    reused); each step's artifact directory."""
    import json

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hala_exp",
            f"paths.output_dir={out}",
            "logger=none",
            *(overrides or []),
            f"pipeline.stages=[{','.join(steps)}]",
        ],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
        text=True,
    )
    summary = json.loads(Path(done.stdout.strip().splitlines()[-1].removeprefix("Run summary: ")).read_text())
    return {step: Path(summary["stages"][step]["artifact"]) for step in steps}


def _commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # What the benchmarks write themselves is not a change to what they measure.
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!benchmarks/results",
                ":!benchmarks/RESULTS.md",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout
        return sha + ("+uncommitted changes" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def _machine() -> str:
    from importlib import metadata

    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    versions = []
    for package in ("torch", "transformers", "pytorch-lightning", "trl", "datasets"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}; {', '.join(versions)}"
