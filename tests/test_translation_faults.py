"""The translate stage under concurrent jobs and faults: 4 real processes started at one instant share one
stage (each shard once, output identical to one job's), kill -9 at several points, a damaged shard, a full
disk, and an eval translation that resumes from its finished segments."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from test_translation_support import FakeBackend, context, install_fake, make_rows, read_jsonl, stage_config, tiny_model

from hala_exp.core.store import MARKER
from hala_exp.stages import translate as stage
from hala_exp.translation.cache import total_spent

ROOT = Path(__file__).resolve().parents[1]
N_ROWS = 24  # 8 shards of 3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def reference(model_dir, tmp_path_factory):
    """One job alone: its output and what it generated."""
    mp = pytest.MonkeyPatch()
    FakeBackend.generated = []
    install_fake(mp)
    out = tmp_path_factory.mktemp("single") / "out"
    result = stage.translate_rows(context(stage_config(window_shards=1), model_dir, out), rows(), [])
    mp.undo()
    return {"out": out, "result": result, "generated": len(FakeBackend.generated)}


def rows() -> list[dict]:
    # Every row shares one system turn: a segment in every shard, which jobs running at one instant must still
    # generate once between them (the plan of distinct segments is split, not the rows).
    return make_rows(N_ROWS)


@pytest.fixture(autouse=True)
def _reset_fake():
    FakeBackend.generated = []


def sorted_lines(path: Path) -> list[bytes]:
    return sorted(path.read_bytes().splitlines(keepends=True), key=lambda line: json.loads(line)["id"])


def assert_same_output(out: Path, ref: Path) -> None:
    for name in ("data.jsonl", "rejects.jsonl"):
        assert sorted_lines(out / name) == sorted_lines(ref / name), f"{name} differs from a single job's"
    ids = [r["id"] for r in read_jsonl(out / "data.jsonl")] + [r["id"] for r in read_jsonl(out / "rejects.jsonl")]
    assert Counter(ids) == Counter(f"r{i}" for i in range(N_ROWS)), "every row exactly once"


JOB = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {tests!r})
    import pytest
    from test_translation_support import FakeBackend, context, install_fake, make_rows, stage_config
    from hala_exp.core.stage import StagePending
    from hala_exp.stages import translate as stage
    mp = pytest.MonkeyPatch()
    install_fake(mp, delay={delay})
    ctx = context(stage_config(window_shards=1), {model!r}, {out!r})
    rows = make_rows({n})
    if {commit_delay}:  # a slow row phase, so a kill can land in it
        from hala_exp.translation import shards
        commit = shards.ShardStore.commit
        def slow_commit(self, *a, **kw):
            time.sleep({commit_delay})
            return commit(self, *a, **kw)
        shards.ShardStore.commit = slow_commit
    if {barrier!r}:  # every job starts at the same instant: ready, then wait for the go
        import os, pathlib
        pathlib.Path({barrier!r}, f"ready-{{os.getpid()}}").touch()
        while not pathlib.Path({barrier!r}, "go").exists():
            time.sleep(0.001)
    try:
        stage.translate_rows(ctx, rows, [])
        outcome = "assembled"
        open({marker!r}, "w").close()  # what the pipeline does after a stage returns
    except StagePending as e:
        outcome = "pending: " + str(e)
    print(json.dumps({{"outcome": outcome, "generated": len(FakeBackend.generated)}}))
""")


def job_script(model_dir, out: Path, barrier: Path | None = None, delay: float = 0.0, commit_delay=0.0) -> str:
    return JOB.format(
        tests=str(ROOT / "tests"),
        delay=delay,
        commit_delay=commit_delay,
        model=str(model_dir),
        out=str(out),
        n=N_ROWS,
        barrier=str(barrier) if barrier else "",
        marker=str(out / MARKER),
    )


@pytest.mark.slow
def test_four_jobs_started_together_share_one_stage(model_dir, tmp_path, reference):
    out = tmp_path / "out"
    out.mkdir()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = job_script(model_dir, out, barrier=barrier, delay=0.2)
    procs = [
        subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    deadline = time.time() + 120
    while len(list(barrier.glob("ready-*"))) < 4:  # all four have imported everything and built their inputs
        assert all(p.poll() is None for p in procs) and time.time() < deadline, "a job did not get ready"
        time.sleep(0.01)
    (barrier / "go").touch()
    reports = []
    for p in procs:
        stdout, _ = p.communicate(timeout=300)
        assert p.returncode == 0, f"a job failed (rc {p.returncode})"
        reports.append(json.loads(stdout.strip().splitlines()[-1]))
    outcomes = Counter(r["outcome"].split(":")[0] for r in reports)
    assert outcomes["assembled"] == 1, reports
    assert_same_output(out, reference["out"])
    worked = [r["generated"] for r in reports]
    assert sum(worked) == reference["generated"], f"segments generated per job {worked}: each once, across jobs"
    assert sum(1 for g in worked if g) >= 2, f"the work was shared, not done by one job: {worked}"
    assert total_spent(out / "segments").segments == reference["generated"], "the ledger counts every attempt"
    owners = Counter(json.loads((d / "meta.json").read_text())["owner"] for d in (out / "shards").glob("part-*"))
    assert sum(owners.values()) == N_ROWS // 3 and not list((out / "shards").glob(".tmp-*"))


@pytest.mark.slow
def test_kill_9_at_several_points_loses_and_duplicates_nothing(model_dir, tmp_path, reference):
    out = tmp_path / "out"
    out.mkdir()
    script = job_script(model_dir, out, delay=0.3, commit_delay=0.3)
    segments_seen = 0
    # Kill points, each in a fresh job on the same directory: while generating the plan's segments (twice),
    # then while writing row shards.
    for kind, done_before_kill in (("plan-done/seg-*", 2), ("plan-done/seg-*", 6), ("shards/part-*", 2)):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.DEVNULL)
        deadline = time.time() + 180
        while len(list(out.glob(kind))) < done_before_kill:
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.time() < deadline, "no shard appeared"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        spent = total_spent(out / "segments").segments
        assert spent >= segments_seen, "a killed job's generated segments stay counted"
        segments_seen = spent
    assert not (out / "data.jsonl").exists(), "killed before the end"
    mp = pytest.MonkeyPatch()
    install_fake(mp)
    try:
        result = stage.translate_rows(context(stage_config(window_shards=1), model_dir, out), rows(), [])
    finally:
        mp.undo()
    assert_same_output(out, reference["out"])
    # Every batch a killed job finished was kept and counted; only the batch in flight at each kill is redone.
    assert result.metrics["ledger/segments"] >= reference["generated"]
    assert result.metrics["ledger/segments"] == total_spent(out / "segments").segments
    # One engine start per job that generated: the three killed ones; the last had only rows left (cache reads).
    assert result.metrics["ledger/engine_starts"] == 3


def test_a_damaged_shard_is_redone_never_read(model_dir, tmp_path, reference, monkeypatch):
    install_fake(monkeypatch)
    out = tmp_path / "out"
    ctx = context(stage_config(window_shards=1), model_dir, out)
    stage.translate_rows(ctx, rows(), [])
    rows1 = out / "shards/part-000001/rows.jsonl"
    rows1.write_bytes(rows1.read_bytes()[:-40])  # truncated, as by a crash of the disk under it
    (out / "shards/part-000004/meta.json").write_text("{not json")  # and a damaged description
    FakeBackend.generated = []
    result = stage.translate_rows(ctx, rows(), [])
    assert_same_output(out, reference["out"])
    assert len(list((out / "shards").glob(".corrupt-000001-*"))) == 1
    assert len(list((out / "shards").glob(".corrupt-000004-*"))) == 1
    assert FakeBackend.generated == [], "redone from the segment cache"
    assert result.metrics["rows"] == reference["result"].metrics["rows"]


def test_disk_full_while_writing_a_shard_leaves_nothing_trusted(model_dir, tmp_path, reference, monkeypatch):
    import hala_exp.translation.shards as shards

    install_fake(monkeypatch)
    real = shards.write_file
    calls = []

    def full_disk(path, data):
        calls.append(path)
        if path.name == "rejects.jsonl" and len(calls) > 6:  # the third shard's second file
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(shards, "write_file", full_disk)
    out = tmp_path / "out"
    ctx = context(stage_config(window_shards=1), model_dir, out)
    with pytest.raises(OSError, match="No space left"):
        stage.translate_rows(ctx, rows(), [])
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["part-000000", "part-000001"], "no half shard"
    assert not list((out / "leases").glob("*.lease")), "the failed job let go of its shards"
    monkeypatch.setattr(shards, "write_file", real)
    stage.translate_rows(ctx, rows(), [])
    assert_same_output(out, reference["out"])


def test_translate_texts_resumes_from_finished_segments(model_dir, tmp_path, monkeypatch):
    from test_translation_support import LANGUAGE, PROMPT

    from hala_exp.core.schema import build
    from hala_exp.translation import translate_texts
    from hala_exp.translation.config import EngineConfig, LanguageConfig, PromptConfig

    texts = [f"Sentence number {i} about a different topic." for i in range(10)]
    kwargs = dict(
        prompt=build(PromptConfig, PROMPT, "prompt"),
        language=build(LanguageConfig, LANGUAGE, "language"),
        direction="en-xx",
        engine=build(EngineConfig, {"runtime": {"progress": False}}, "engine"),
        cache_dir=tmp_path / "segments",
    )
    install_fake(monkeypatch, crash_after=1)  # batches of 4: one batch finishes, then the call dies
    with pytest.raises(RuntimeError, match="simulated crash"):
        translate_texts(str(model_dir), texts, **kwargs)
    first = list(FakeBackend.generated)
    assert len(first) == 4
    install_fake(monkeypatch)
    out = translate_texts(str(model_dir), texts, **kwargs)
    assert len(out) == 10 and all(out)
    assert not set(first) & set(FakeBackend.generated[4:]), "finished segments are not generated again"
    assert len(FakeBackend.generated) == 10
