"""W&B logging, exercised: a real offline run of the entry point, its run files read back.

CI sets WANDB_MODE=disabled for speed; this test clears it. The stages are the model-free fakes of
``pipeline_fakes`` so that what is checked is the tracking: one W&B run per executed stage, all in the run's
group, the resolved config (no interpolation left), the stage metrics, the configured tags, and no secret.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pipeline_fakes as fakes
from cli_helpers import fake_pipeline_conf, run_cli

SECRET = "sk-wandb-test-SECRET-7"


def wandb_records(path: Path):
    """Records of an offline ``run-*.wandb`` file: W&B's LevelDB-style log (a 7-byte file header, 32 KiB
    blocks of chunks with a 7-byte header: checksum, length, type full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer
            pos += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (2, 3):
            pending += chunk
            continue
        record = pb.Record()
        record.ParseFromString(pending + chunk)
        pending = b""
        yield record


def read_run(run_dir: Path) -> dict:
    (path,) = run_dir.glob("run-*.wandb")
    out = {"summary": {}, "history": []}
    for r in wandb_records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["group"], out["job_type"], out["name"] = r.run.run_group, r.run.job_type, r.run.display_name
            out["tags"] = list(r.run.tags)
            out["config"] = {u.key: json.loads(u.value_json) for u in r.run.config.update}
        elif kind == "summary":
            out["summary"].update({u.key: json.loads(u.value_json) for u in r.summary.update if u.key})
        elif kind == "history":
            out["history"].append({u.key: json.loads(u.value_json) for u in r.history.item})
    return out


def test_offline_runs_one_per_stage_grouped_resolved_with_metrics(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", SECRET)  # present in the environment, must land nowhere
    monkeypatch.setenv("WANDB_SILENT", "true")
    fakes.patch(monkeypatch)
    searchpath = fake_pipeline_conf(tmp_path / "conf")
    out = tmp_path / "out"
    code, printed = run_cli(
        monkeypatch,
        capsys,
        searchpath,
        "pipeline=fakes",
        "logger=wandb_offline",
        "logger.tags=[ops-test]",
        f"paths.output_dir={out}",
    )
    assert code == 0, printed
    (run_dir,) = (out / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    runs = [read_run(d) for d in sorted((out / "wandb").glob("offline-run-*"))]
    assert sorted(r["job_type"] for r in runs) == ["model", "train"]  # one run per executed stage
    assert {r["group"] for r in runs} == {run_dir.name} == {summary["run"]["group"]}
    by_kind = {r["job_type"]: r for r in runs}
    assert by_kind["model"]["name"] == f"{run_dir.name}/source"
    assert "ops-test" in by_kind["train"]["tags"] and "stage:train" in by_kind["train"]["tags"]
    for r in runs:
        cfg = r["config"]
        assert cfg["paths"]["cache_dir"] == f"{out}/cache"  # resolved: no ${...} left
        assert "${" not in json.dumps(cfg)
        assert cfg["merge"]["t"] == 0.5
    assert by_kind["train"]["config"]["step_config"] == {"factor": 2}
    assert by_kind["model"]["summary"]["value"] == 3 and by_kind["train"]["summary"]["value"] == 6
    assert summary["stages"]["double"]["wandb_run_id"] in str(sorted((out / "wandb").glob("offline-run-*")))
    # No command-line or environment capture: the metadata file is off, and argv appears in no run file.
    wandb_files = [f for f in (out / "wandb").rglob("*") if f.is_file()]
    assert not [f for f in wandb_files if f.name == "wandb-metadata.json"]
    assert not [f for f in wandb_files if b"hydra.searchpath" in f.read_bytes()]
    for f in out.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
