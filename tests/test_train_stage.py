"""The train stage end to end on a tiny LFM2: data rejects, export, resume after a crash, DDP on CPU (gloo)."""

from __future__ import annotations

import json

import pytest
from train_helpers import chat_rows, make_config, run_stage, write_rows

from hala_exp.core.schema import ConfigError

FAST = {"max_steps": 4, "micro_batch_size": 4, "runtime.log_every_n_steps": 2, "runtime.checkpoint_every_n_steps": 2}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    from hala_exp.core.model_dirs import build_tiny_model_dir, embedded_texts

    root = tmp_path_factory.mktemp("train")
    model_dir = build_tiny_model_dir(root / "base", embedded_texts(), "lfm2")
    long_chat = {
        "id": "long",
        "messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}],
    }
    data = write_rows(
        root / "data.jsonl",
        chat_rows(16) + [long_chat],
        ['{"id": "nomsg"}', "{not json", json.dumps({"messages": [{"role": "user", "content": "x"}]})],
    )
    return root, model_dir, data


def weights(model_dir):
    from safetensors.torch import load_file

    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(str(f)).items()}


def test_stage_trains_exports_and_counts_rejects(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, model_dir, data = tiny
    result, logged = run_stage(root / "e2e", model_dir, data, too_long="drop", **FAST)
    out = root / "e2e" / result.outputs["model"]
    m = result.metrics
    assert m["steps"] == 4 and m["examples"] == 16
    assert m["dropped/too_long"] == 1
    assert m["quarantined/missing_messages"] == 1 and m["quarantined/no_assistant_turn"] == 1
    assert m["quarantined/invalid_json"] == 1
    assert len((root / "e2e" / "quarantine.jsonl").read_text().splitlines()) == 3
    assert m["tokens_per_s"] > 0 and 0 <= m["padding_fraction"] < 1 and m["loss"] > 0
    assert [step for step, _ in logged] == [2, 4] and all("tokens_per_s" in x for _, x in logged)
    # a Hugging Face directory with tokenizer, chat template and the training config beside it
    tok = AutoTokenizer.from_pretrained(out)
    assert "<|im_start|>" in tok.chat_template
    assert json.loads((out / "training_config.json").read_text())["train"]["max_steps"] == 4
    AutoModelForCausalLM.from_pretrained(out)
    before, after = weights(model_dir), weights(out)
    assert before.keys() == after.keys()
    assert any(not (before[k] == after[k]).all() for k in before)
    assert not (root / "e2e" / "checkpoints").exists()  # removed after export (runtime.keep_checkpoints)


def test_truncation_is_counted(tiny):
    from hala_exp.core.model_dirs import load_tokenizer
    from hala_exp.training.chat import resolve_template
    from hala_exp.training.examples import prepare_examples

    root, model_dir, data = tiny
    tok = load_tokenizer(str(model_dir))

    def prepare():
        return prepare_examples(
            str(data),
            tok,
            resolve_template(tok, None),
            masking="assistant_turns",
            max_length=64,
            too_long="truncate",
            end_of_turn=None,
            cache_dir=root / "tok_cache",
            quarantine_path=None,
        )

    ex = prepare()
    assert ex.lengths().max() <= 64 and ex.lengths().dtype.kind == "i"
    # the long chat's answer is cut away entirely: truncated, then dropped for having no trainable token
    assert ex.counts["truncated"] >= 1 and ex.counts["dropped/no_trainable_tokens"] >= 1
    again = prepare()
    assert again.dataset["input_ids"][:] == ex.dataset["input_ids"][:] and again.counts == ex.counts
    assert len([p for p in (root / "tok_cache").iterdir()]) == 1  # the second call hit the cache


def test_packing_refused_for_lfm2(tiny):
    root, model_dir, data = tiny
    with pytest.raises(ValueError, match="packing refused.*lfm2"):
        run_stage(root / "packed", model_dir, data, packing=True, **FAST)


def test_config_errors_name_the_key(tiny):
    with pytest.raises(ConfigError, match="train.masking: 'assistant' is not allowed"):
        make_config(masking="assistant")
    with pytest.raises(ConfigError, match="train.trainer.precision"):
        make_config(**{"trainer.precision": "bf17"})
    with pytest.raises(ConfigError, match="train.runtime.resume"):
        make_config(**{"runtime.resume": "sometimes"})
    root, model_dir, data = tiny
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        run_stage(root / "noresume", model_dir, data, **{"runtime.resume": "true"}, **FAST)


def test_resume_after_crash_gives_the_same_weights(tiny, monkeypatch):
    from train_helpers import SimulatedCrash, StopAfterSteps

    import hala_exp.training.fit as fit_module

    root, model_dir, data = tiny
    # 16 examples / 4 per batch = 4 batches, 2 per optimizer step: a checkpoint every 3 steps lands mid-epoch.
    settings = {**FAST, "max_steps": 6, "grad_accumulation": 2, "runtime.checkpoint_every_n_steps": 3}
    straight, _ = run_stage(root / "straight", model_dir, data, **settings)

    real_fit = fit_module.fit

    def crashing_fit(request, log_fn):
        return real_fit(request, log_fn, callbacks=[StopAfterSteps(5)])

    monkeypatch.setattr(fit_module, "fit", crashing_fit)
    with pytest.raises(SimulatedCrash):
        run_stage(root / "crashed", model_dir, data, **settings)
    monkeypatch.setattr(fit_module, "fit", real_fit)
    assert sorted(p.name for p in (root / "crashed" / "checkpoints").glob("*.ckpt")) == ["step000003.ckpt"]
    resumed, _ = run_stage(root / "crashed", model_dir, data, **settings)
    assert resumed.details["resumed_from"].endswith("step000003.ckpt")
    a, b = weights(root / "straight" / "model"), weights(root / "crashed" / "model")
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-6, k


def test_ddp_on_cpu_with_two_processes(tiny):
    root, model_dir, data = tiny
    result, logged = run_stage(
        root / "ddp",
        model_dir,
        data,
        max_steps=2,
        micro_batch_size=4,
        # every batch fed as two pieces: two forwards inside one DDP forward, one backward
        **{
            "trainer.devices": 2,
            "trainer.strategy": "ddp",
            "runtime.log_every_n_steps": 1,
            "runtime.split_saving": 0.0,
        },
    )
    assert result.metrics["world_size"] == 2 and result.metrics["steps"] == 2
    assert (root / "ddp" / "model" / "model.safetensors").is_file()
    assert [step for step, _ in logged] == [1, 2]  # forwarded from the worker
