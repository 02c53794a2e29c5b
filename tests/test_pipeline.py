"""The pipeline's mechanics: fingerprints, cache hits, interrupted stages, concurrent runs, plan errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pipeline_fakes as fakes
import pytest

from hala_exp.core.pipeline import Pipeline
from hala_exp.core.schema import ConfigError

HERE = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture(autouse=True)
def fake_stages(monkeypatch):
    fakes.patch(monkeypatch)


def fingerprints(cfg):
    pipe = Pipeline.from_config(cfg, group="t")
    return {name: step.fingerprint for name, step in pipe.steps.items()}


def test_fingerprint_changes_with_config_and_propagates_downstream(tmp_path):
    base = fingerprints(fakes.make_config(tmp_path))
    assert base == fingerprints(fakes.make_config(tmp_path))
    changed_up = fingerprints(fakes.make_config(tmp_path, value=2))
    assert changed_up["source"] != base["source"] and changed_up["double"] != base["double"]
    changed_down = fingerprints(fakes.make_config(tmp_path, factor=3))
    assert changed_down["source"] == base["source"] and changed_down["double"] != base["double"]


def test_runtime_settings_do_not_change_fingerprints(tmp_path):
    # Field-level rules (comments, prices, display names) are tested in test_fingerprint.py.
    assert fingerprints(fakes.make_config(tmp_path, batch=8)) == fingerprints(fakes.make_config(tmp_path, batch=64))


def test_fingerprints_stable_across_processes(tmp_path):
    code = (
        "import json, pipeline_fakes as f; f.patch(); from hala_exp.core.pipeline import Pipeline; "
        f"p = Pipeline.from_config(f.make_config({str(tmp_path)!r}), group='t'); "
        "print(json.dumps({n: s.fingerprint for n, s in p.steps.items()}))"
    )
    outs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code],
                env={**ENV, "PYTHONHASHSEED": str(seed)},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for seed in (1, 2)
    ]
    assert outs[0] == outs[1] == fingerprints(fakes.make_config(tmp_path))


def test_rerun_is_all_cache_hits(tmp_path):
    first = fakes.run(fakes.make_config(tmp_path), tmp_path / "s1.json")
    assert [s["status"] for s in first["stages"].values()] == ["ran", "ran"]
    assert first["metrics"]["double/value"] == 2
    second = fakes.run(fakes.make_config(tmp_path), tmp_path / "s2.json")
    assert [s["status"] for s in second["stages"].values()] == ["cached", "cached"]
    assert second["metrics"] == first["metrics"]
    manifest = json.loads((Path(first["stages"]["double"]["artifact"]) / "manifest.json").read_text())
    assert manifest["inputs"]["data"]["fingerprint"] == first["stages"]["source"]["fingerprint"]
    assert json.loads((tmp_path / "s2.json").read_text())["stages"]["double"]["status"] == "cached"


def test_subset_reads_unselected_inputs_from_cache(tmp_path):
    with pytest.raises(ConfigError, match="neither selected nor cached"):
        fakes.run(fakes.make_config(tmp_path, stages=["double"]), tmp_path / "s.json")
    fakes.run(fakes.make_config(tmp_path), tmp_path / "s1.json")
    summary = fakes.run(fakes.make_config(tmp_path, factor=5, stages=["double"]), tmp_path / "s2.json")
    assert list(summary["stages"]) == ["double"] and summary["metrics"]["double/value"] == 5


def test_killed_stage_is_redone(tmp_path):
    summary = tmp_path / "s.json"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "pipeline_fakes.py"), str(tmp_path / "cache"), str(summary), "30"], env=ENV
    )
    deadline = time.time() + 60
    while not list((tmp_path / "cache").glob("model/*/partial.txt")) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (art,) = [p for p in (tmp_path / "cache" / "model").iterdir() if p.is_dir()]
    assert (art / "partial.txt").exists() and not (art / "COMPLETE").exists()
    # The sleep is a runtime setting, so the rerun has the same fingerprint and finds the partial work.
    result = fakes.run(fakes.make_config(tmp_path / "cache", sleep=0), tmp_path / "s2.json")
    assert result["stages"]["source"]["status"] == "ran" and result["stages"]["source"]["artifact"] == str(art)
    assert result["metrics"]["source/resumed"] == 1 and (art / "COMPLETE").exists()


def test_concurrent_runs_compute_a_stage_once(tmp_path):
    log = tmp_path / "calls.log"
    env = {**ENV, "FAKE_STAGE_LOG": str(log)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "pipeline_fakes.py"),
                str(tmp_path / "cache"),
                str(tmp_path / f"s{i}.json"),
                "2",
            ],
            env=env,
        )
        for i in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert log.read_text().count("source ") == 1
    statuses = sorted(json.loads((tmp_path / f"s{i}.json").read_text())["stages"]["source"]["status"] for i in range(2))
    assert statuses == ["cached", "ran"]


def test_plan_errors_name_the_key(tmp_path):
    cfg = fakes.make_config(tmp_path, stages=["source", "nope"])
    with pytest.raises(
        ConfigError, match=r"pipeline.stages: unknown stage\(s\) \['nope'\]; allowed: \['source', 'double'\]"
    ):
        Pipeline.from_config(cfg, group="t")
    cfg = fakes.make_config(tmp_path, stages=["double", "source"])
    with pytest.raises(ConfigError, match="listed after it"):
        Pipeline.from_config(cfg, group="t")
    cfg = fakes.make_config(tmp_path)
    cfg.double.factor = "two"
    with pytest.raises(ConfigError, match=r"^double.factor: expected an integer, got 'two'"):
        Pipeline.from_config(cfg, group="t")
    cfg = fakes.make_config(tmp_path)
    cfg.double.bogus = 1
    with pytest.raises(ConfigError, match=r"^double: unknown key\(s\) \['bogus'\]"):
        Pipeline.from_config(cfg, group="t")


def test_pending_stage_stops_the_run_without_failing(tmp_path, monkeypatch):
    from hala_exp.core.stage import StagePending

    def share_done(ctx):
        raise StagePending("2 shards of other jobs are not done yet")

    monkeypatch.setitem(
        fakes.FAKES,
        "model",
        type(fakes.FAKES["model"])(
            Config=fakes.SourceConfig, VERSIONS=(), FORMAT_VERSION=1, run=share_done, CONCURRENT=True
        ),
    )
    summary = fakes.run(fakes.make_config(tmp_path), tmp_path / "s.json")
    assert summary["stages"]["source"]["status"] == "pending" and "double" not in summary["stages"]
    assert "2 shards" in summary["pending"]
    assert json.loads((tmp_path / "s.json").read_text())["stages"]["source"]["status"] == "pending"
    assert not list(tmp_path.glob("model/*.lock"))  # a concurrent stage takes no exclusive lock


def test_every_stage_kind_meets_the_stage_protocol_and_a_broken_one_is_named(monkeypatch):
    import types

    from hala_exp.core import stage as stage_mod

    for kind in stage_mod.KINDS:
        assert isinstance(stage_mod.load_kind(kind), stage_mod.Stage)
    broken = types.ModuleType("hala_exp.stages.merge")
    broken.Config, broken.VERSIONS = object, ()
    monkeypatch.setitem(__import__("sys").modules, "hala_exp.stages.merge", broken)
    with pytest.raises(TypeError, match=r"lacks \['FORMAT_VERSION', 'run'\]"):
        stage_mod.load_kind("merge")
