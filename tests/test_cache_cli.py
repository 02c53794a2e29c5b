"""`python -m hala_exp.cache list|prune`: entries with sizes and the runs that use them; prune what no kept run
uses (dry run by default), never an unfinished entry that may be in progress."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pipeline_fakes as fakes

from hala_exp import cache as cache_cli
from hala_exp.core.pipeline import Pipeline

ROOT = Path(__file__).parents[1]


def run(out: Path, name: str, value: int, stages=("source", "double")) -> dict:
    summary = out / "runs" / name / "summary.json"
    cfg = fakes.make_config(out / "cache", value=value, stages=stages)
    return Pipeline.from_config(cfg, group=name).run(summary, {"name": name}, {})


def entries(out: Path) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in (out / "cache").glob("*/*") if p.is_dir()}


def test_list_and_prune_follow_the_runs_that_use_each_entry(tmp_path, monkeypatch, capsys):
    fakes.patch(monkeypatch)
    out = tmp_path / "out"
    run(out, "warmup", 1)
    (out / "runs" / "warmup" / "summary.json").unlink()  # computed by a run that is gone
    kept = run(out, "kept", 1, stages=("double",))  # names only `double`; `source` came from the cache
    dropped = run(out, "dropped", 2)
    (out / "runs" / "dropped" / "summary.json").unlink()
    orphan_unfinished = out / "cache" / "model" / "0123456789abcdef"
    orphan_unfinished.mkdir()
    (orphan_unfinished / "partial.txt").write_text("a job at work")

    assert cache_cli.main(["list", "--output-dir", str(out)]) == 0
    listing = capsys.readouterr().out
    kept_fp = kept["stages"]["double"]["fingerprint"]
    assert any(kept_fp in line and "kept" in line and "complete" in line for line in listing.splitlines())
    assert "5 entries" in listing and "1 runs under" in listing

    before = entries(out)
    assert cache_cli.main(["prune", "--output-dir", str(out)]) == 0  # dry run
    dry = capsys.readouterr().out
    assert entries(out) == before
    doomed = {f"{s['kind']}/{s['fingerprint']}" for s in dropped["stages"].values()}
    assert {line.split()[2] for line in dry.splitlines() if line.startswith("would delete")} == doomed
    assert "add --yes" in dry

    assert cache_cli.main(["prune", "--output-dir", str(out), "--yes"]) == 0
    capsys.readouterr()
    assert entries(out) == before - doomed
    assert orphan_unfinished.is_dir()  # unfinished and recent: maybe in progress, never pruned
    for name in doomed:
        assert not (out / "cache" / f"{name}.lock").exists()
    # The kept run still reruns from the cache alone.
    again = run(out, "kept", 1, stages=("double",))
    assert again["stages"]["double"]["status"] == "cached"

    old = time.time() - 3 * 86400
    os.utime(orphan_unfinished / "partial.txt", (old, old))
    os.utime(orphan_unfinished, (old, old))
    assert cache_cli.main(["prune", "--output-dir", str(out), "--yes", "--grace-hours", "24"]) == 0
    assert not orphan_unfinished.exists()  # abandoned for days: pruned


def test_cli_entry_point_runs_as_a_module(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "hala_exp.cache", "list", "--output-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and f"no cache at {tmp_path}/cache" in out.stderr
