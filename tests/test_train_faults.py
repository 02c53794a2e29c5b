"""Training under real faults: SIGKILL at random points (mid-epoch, mid-accumulation, epoch boundaries) any
number of times, SIGTERM (what SLURM sends before a kill), and kill -9 while tokenizing. Each attempt is a
real subprocess; the final weights are compared with an uninterrupted run's, bit for bit (same CPU, same
thread count, same batches in the same order: nothing may differ)."""

from __future__ import annotations

import json
import random
import signal

import pytest
from train_helpers import chat_rows, run_attempt, write_rows

# 16 examples / 4 per batch = 4 batches per epoch, 2 per optimizer step: 2 steps per epoch. A checkpoint
# every 3 steps lands mid-epoch (steps 3, 9) and on an epoch boundary (step 6).
SETTINGS = {
    "max_steps": 10,
    "micro_batch_size": 4,
    "grad_accumulation": 2,
    "runtime.log_every_n_steps": 5,
    "runtime.checkpoint_every_n_steps": 3,
}
BATCHES_PER_EPOCH, TOTAL_BATCHES = 4, 20


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from hala_exp.core.model_dirs import build_tiny_model_dir, embedded_texts

    root = tmp_path_factory.mktemp("train_faults")
    model_dir = build_tiny_model_dir(root / "base", embedded_texts(), "lfm2")
    data = write_rows(root / "data.jsonl", chat_rows(16))
    return root, model_dir, data


def weights(model_dir):
    from safetensors.torch import load_file

    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(str(f)).items()}


def attempt(tiny, name: str, **extra):
    root, model_dir, data = tiny
    spec = {
        "out": str(root / name),
        "model": str(model_dir),
        "data": str(data),
        "settings": SETTINGS,
        "batches_per_epoch": BATCHES_PER_EPOCH,
        **extra,
    }
    return run_attempt(spec)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not (a[k] == b[k]).all()]
    assert not different, f"{len(different)} tensors differ, e.g. {different[0]}"


@pytest.fixture(scope="module")
def straight(tiny):
    done = attempt(tiny, "straight")
    assert done.returncode == 0, done.stderr[-3000:]
    return weights(tiny[0] / "straight" / "model")


@pytest.mark.slow
def test_resume_after_three_sigkills_is_bit_exact(tiny, straight):
    root = tiny[0]
    kills = sorted(random.Random(11).sample(range(2, TOTAL_BATCHES - 1), 3))
    resumed = []
    for target in kills:
        run = attempt(tiny, "killed", signal_at=target, signum=int(signal.SIGKILL))
        assert run.returncode == -signal.SIGKILL, (target, run.stderr[-3000:])
        kept = sorted(p.name for p in (root / "killed" / "checkpoints").glob("*.ckpt"))
        assert len(kept) <= 1, kept  # retention holds across attempts
        resumed.append(kept)
    final = attempt(tiny, "killed")
    assert final.returncode == 0, final.stderr[-3000:]
    outcome = json.loads(final.stdout.strip().splitlines()[-1])
    assert outcome["steps"] == SETTINGS["max_steps"] and outcome["resumed_from"]
    assert any(resumed), f"no checkpoint before any kill point {kills}"
    assert_same_weights(straight, weights(root / "killed" / "model"))


@pytest.mark.slow
def test_sigterm_checkpoints_the_running_step_and_the_rerun_is_exact(tiny, straight):
    root = tiny[0]
    # batch 7 is the first half of step 4's accumulation window: the step finishes, then it stops
    run = attempt(tiny, "preempted", signal_at=7, signum=int(signal.SIGTERM))
    assert run.returncode == 3, run.stderr[-3000:]
    assert "preempted" in json.loads(run.stdout.strip().splitlines()[-1])["pending"]
    assert sorted(p.name for p in (root / "preempted" / "checkpoints").glob("*.ckpt")) == ["step000004.ckpt"]
    final = attempt(tiny, "preempted")
    assert final.returncode == 0, final.stderr[-3000:]
    assert json.loads(final.stdout.strip().splitlines()[-1])["resumed_from"].endswith("step000004.ckpt")
    assert_same_weights(straight, weights(root / "preempted" / "model"))
