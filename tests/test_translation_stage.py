"""The translate stage: end to end on a tiny model, exactly-once output across crashes and kill -9,
sharded jobs, AR->EN, rejects with reasons, and the config groups it reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from test_translation_support import (
    FakeBackend,
    arabize,
    context,
    install_fake,
    make_rows,
    read_jsonl,
    stage_config,
    tiny_model,
)

from hala_exp.stages import translate as stage

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(autouse=True)
def _reset_fake():
    FakeBackend.generated = []


def _ids_once(out_dir: Path, expected: set[str]) -> None:
    ids = [r["id"] for r in read_jsonl(out_dir / "data.jsonl")]
    ids += [r["id"] for r in read_jsonl(out_dir / "rejects.jsonl") if r.get("id") and r["reason"] != "duplicate_id"]
    assert Counter(ids) == Counter(expected), "every row exactly once, translated or rejected"


def test_end_to_end_tiny_model(model_dir, tmp_path):
    cfg = stage_config(
        source={
            "sources": [
                {
                    "name": "orca",
                    "adapter": "open_orca",
                    "count": 5,
                    "path": "package://hala_exp/assets/embedded/instructions_en.jsonl",
                }
            ]
        }
    )
    ctx = context(cfg, model_dir, tmp_path / "out")
    result = stage.run(ctx)
    out = ctx.out_dir
    src = read_jsonl(ROOT / "hala_exp/assets/embedded/instructions_en.jsonl")[:5]
    assert result.outputs == {"data": "data.jsonl", "rejects": "rejects.jsonl", "arrow": "data.arrow"}
    from datasets import Dataset

    arrow = Dataset.from_file(str(out / "data.arrow"))
    assert len(arrow) == result.metrics["rows"], "the Arrow file holds data.jsonl's rows"
    assert result.metrics["ledger/engine_starts"] == 1
    assert result.metrics["rows"] + result.metrics["rejected"] == len(src)
    assert result.metrics["ledger/output_tokens"] > 0 and result.metrics["ledger/input_tokens"] > 0
    assert result.details["rows_in_by_source"] == {"orca": len(src)}
    for row in read_jsonl(out / "data.jsonl"):  # a random model rarely passes the gates; any survivor is well-formed
        assert [m["role"] for m in row["messages"]] == [m["role"] for m in row["messages_en"]]
    for rej in read_jsonl(out / "rejects.jsonl"):
        assert rej["reason"]
    assert sum(v for k, v in result.metrics.items() if k.startswith("rejected/")) == result.metrics["rejected"]
    # a rerun of a finished directory generates nothing and gives the same output
    again = stage.run(ctx)
    assert again.metrics["rows"] == result.metrics["rows"] and again.details["ledger"] == result.details["ledger"]


def test_turns_roles_spans_and_dedup(model_dir, tmp_path, monkeypatch):
    install_fake(monkeypatch)
    rows = make_rows(5)
    ctx = context(stage_config(), model_dir, tmp_path / "out")
    result = stage.translate_rows(ctx, rows, [])
    out = read_jsonl(ctx.out_dir / "data.jsonl")
    assert [r["id"] for r in out] == [r["id"] for r in rows] and result.metrics["rejected"] == 0
    for src, row in zip(rows, out):
        assert row["messages_en"] == src["messages"]
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
        i = src["id"][1:]
        assert (
            f"`code_{i}`" in row["messages"][1]["content"]
            and f"https://example.com/{i}" in row["messages"][1]["content"]
        )
        assert row["messages"][2]["content"].endswith(f"```python\nx = {i}\n```")
        assert row["messages"][0]["content"] == arabize("You are a helpful assistant.")
    assert len(FakeBackend.generated) == len(set(FakeBackend.generated)), "identical segments translated once"
    assert result.metrics["ledger/cached_segments"] >= 0 and result.metrics["ledger/segments"] == len(
        FakeBackend.generated
    )


def test_crash_inside_loop_then_rerun_yields_each_row_once(model_dir, tmp_path, monkeypatch):
    rows = make_rows(9)
    cfg = stage_config(window_shards=1)  # shard_size 3: three windows of one shard
    ctx = context(cfg, model_dir, tmp_path / "out")
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    (ctx.out_dir / ".plan.sqlite.tmp-deadjob").write_bytes(b"half a plan")  # a plan builder killed earlier
    install_fake(monkeypatch, crash_after=3)  # a segment window is 3 segments = 1 batch: the fourth crashes
    with pytest.raises(RuntimeError, match="simulated crash"):
        stage.translate_rows(ctx, rows, [])
    assert (ctx.out_dir / "plan-done/seg-000002").exists() and not (ctx.out_dir / "plan-done/seg-000003").exists()
    assert not list(ctx.out_dir.glob("shards/part-*")) and not (ctx.out_dir / "data.jsonl").exists()
    assert not list(ctx.out_dir.glob(".plan.sqlite.tmp-*")), "a dead builder's half plan is removed, never read"
    before = list(FakeBackend.generated)
    assert before, "the crashed attempt generated some segments"
    install_fake(monkeypatch)
    stage.translate_rows(ctx, rows, [])
    _ids_once(ctx.out_dir, {r["id"] for r in rows})
    assert len(FakeBackend.generated) == len(set(FakeBackend.generated)), "segments done before the crash are reused"


def test_kill_9_mid_run_then_rerun_yields_each_row_once(model_dir, tmp_path, monkeypatch):
    out_dir = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT / "tests")!r})
        import pytest
        from test_translation_support import install_fake, context, make_rows, stage_config
        from hala_exp.stages import translate as stage
        mp = pytest.MonkeyPatch()
        install_fake(mp, delay=0.15)
        ctx = context(stage_config(window_shards=1), {str(model_dir)!r}, {str(out_dir)!r})
        stage.translate_rows(ctx, make_rows(24), [])
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    deadline = time.time() + 120
    while not (out_dir / "plan-done/seg-000002").exists():
        assert proc.poll() is None, "the worker ended before it could be killed"
        assert time.time() < deadline, "no segment shard appeared"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out_dir / "data.jsonl").exists(), "killed before the end"
    install_fake(monkeypatch)
    stage.translate_rows(context(stage_config(window_shards=1), model_dir, out_dir), make_rows(24), [])
    _ids_once(out_dir, {f"r{i}" for i in range(24)})


def test_a_job_leaves_shards_leased_by_a_live_job_and_reports_pending(model_dir, tmp_path, monkeypatch):
    from hala_exp.translation.leases import Leases

    install_fake(monkeypatch)
    rows = make_rows(12)  # four shards of 3
    out = tmp_path / "out"
    other = Leases(out / "leases", "other-job", heartbeat_s=0.2, stale_s=3.0)
    with other:  # a live job holds shards 1 and 3
        assert other.acquire("part-000001") and other.acquire("part-000003")
        with pytest.raises(stage.ShardsPending, match="2 shard"):
            stage.translate_rows(context(stage_config(), model_dir, out), rows, [])
    assert sorted(p.name for p in out.glob("shards/part-*")) == ["part-000000", "part-000002"]
    first = len(FakeBackend.generated)
    assert first and len(set(FakeBackend.generated)) == first, "every distinct segment generated once, up front"
    stage.translate_rows(context(stage_config(), model_dir, out), rows, [])  # the holder let go: finish and assemble
    _ids_once(out, {r["id"] for r in rows})
    assert len(FakeBackend.generated) == first, "the held rows' segments were already generated: nothing twice"


def test_arabic_to_english(model_dir, tmp_path, monkeypatch):
    from test_translation_support import ARABIC, LATIN

    def to_latin(text):
        return "".join(
            LATIN[ARABIC.index(c)] if c in ARABIC else "x" if c.isalpha() and not c.isascii() else c for c in text
        )

    install_fake(monkeypatch, transform=to_latin)
    rows = [
        {
            "id": "a1",
            "source": "ar",
            "messages": [
                {"role": "user", "content": "ما هي عاصمة مصر؟ اكتب الجواب في `answer`."},
                {"role": "assistant", "content": "عاصمة مصر هي القاهرة، وهي مدينة كبيرة جدا."},
            ],
        }
    ]
    ctx = context(stage_config(direction="xx-en"), model_dir, tmp_path / "out")
    result = stage.translate_rows(ctx, rows, [])
    out = read_jsonl(ctx.out_dir / "data.jsonl")
    assert result.metrics["rows"] == 1 and out[0]["messages_ar"] == rows[0]["messages"]
    assert "`answer`" in out[0]["messages"][0]["content"]
    assert all(c.isascii() for m in out[0]["messages"] for c in m["content"] if c.isalpha())


def test_rejects_carry_reasons(model_dir, tmp_path, monkeypatch):
    rows = make_rows(2)
    bad_rows, quarantined = stage.validate_rows(
        rows
        + [
            {"id": "r0", "messages": rows[0]["messages"]},
            {"id": "x", "messages": []},
            {"id": "y", "messages": [{"role": "narrator", "content": "hi"}]},
            {"id": "z", "messages": [{"role": "user", "content": "a" * 250}]},
        ],
        max_chars=200,
    )
    assert [q["reason"] for q in quarantined] == ["duplicate_id", "missing_messages", "unknown_role", "too_long"]
    # a rejected row is kept as a bounded prefix plus its hash and length, never copied whole
    import hashlib
    import json

    from hala_exp.data.jsonl import RAW_PREFIX

    _, (huge,) = stage.validate_rows([{"id": "h", "messages": [{"role": "user", "content": "b" * 300_000}]}], 1000)
    whole = json.dumps({"id": "h", "messages": [{"role": "user", "content": "b" * 300_000}]}, ensure_ascii=False)
    assert "row" not in huge and len(huge["raw"]) == RAW_PREFIX and huge["chars"] == len(whole)
    assert huge["sha256"] == hashlib.sha256(whole.encode()).hexdigest()
    # a translator that loses markers -> spans_not_restored; one that copies -> gate_copy
    install_fake(monkeypatch, transform=lambda t: arabize(t.replace("[[", "(").replace("]]", ")")))
    ctx = context(stage_config(), model_dir, tmp_path / "lost")
    result = stage.translate_rows(ctx, bad_rows, quarantined)
    assert result.details["rejects_by_reason"]["spans_not_restored"] == 2
    assert result.metrics["rejected/duplicate_id"] == 1 and result.metrics["rows"] == 0
    install_fake(monkeypatch, transform=lambda t: t)
    result = stage.translate_rows(context(stage_config(), model_dir, tmp_path / "copy"), make_rows(1), [])
    assert result.details["rejects_by_reason"] == {"gate_copy": 1}
    rej = read_jsonl(tmp_path / "copy" / "rejects.jsonl")[0]
    assert rej["id"] == "r0" and rej["turn"] == 0 and rej["row"]["messages"][0]["role"] == "system"


def test_a_collapsed_translator_gets_its_shards_rows_rejected(model_dir, tmp_path, monkeypatch):
    # Every source comes back as one fluent sentence: each turn passes the per-turn gates, the shard does not.
    install_fake(monkeypatch, transform=lambda t: arabize("Please tell me about the river over there."))
    rivers = ["Nile", "Amazon", "Danube", "Volga", "Niger", "Indus"]
    turns = [[{"role": "user", "content": f"Please tell me about the {w} river."}] for w in rivers]
    rows = [{"id": f"c{i}", "source": "s", "messages": m} for i, m in enumerate(turns)]
    result = stage.translate_rows(context(stage_config(), model_dir, tmp_path / "out"), rows, [])
    assert result.details["rejects_by_reason"] == {"gate_collapsed": 6} and result.metrics["rows"] == 0


def test_translated_rows_past_one_arrow_shard_land_in_one_arrow_file(model_dir, tmp_path, monkeypatch):
    # datasets' JSON reader cuts its output at MAX_SHARD_SIZE (500 MB, reached near 1M rows): here, in two.
    from datasets import Dataset, concatenate_datasets

    real, seen = Dataset.from_json, []

    def in_two_files(path, cache_dir):
        ds = real(path, cache_dir=cache_dir)
        half = len(ds) // 2
        parts = [
            ds.select(range(a, b)).flatten_indices(cache_file_name=f"{cache_dir}/part{a}.arrow")
            for a, b in ((0, half), (half, len(ds)))
        ]
        both = concatenate_datasets(parts)
        seen.append(len(both.cache_files))
        return both

    monkeypatch.setattr(Dataset, "from_json", staticmethod(in_two_files))
    install_fake(monkeypatch)
    rows = make_rows(12)
    result = stage.translate_rows(context(stage_config(), model_dir, tmp_path / "out"), rows, [])
    arrow = Dataset.from_file(str(tmp_path / "out" / "data.arrow"))
    assert seen == [2] and result.metrics["rows"] == 12 and arrow["id"] == [r["id"] for r in rows]
    assert arrow[5]["messages_en"] == rows[5]["messages"]


def test_code_heavy_rows_can_be_dropped(model_dir, tmp_path, monkeypatch):
    install_fake(monkeypatch)
    rows = [
        {"id": "c", "source": "s", "messages": [{"role": "user", "content": "Fix:\n```\n" + "x = 1\n" * 20 + "```"}]}
    ]
    cfg = stage_config(translate={"protect": {"max_protected_ratio": 0.5}})
    result = stage.translate_rows(context(cfg, model_dir, tmp_path / "out"), rows, [])
    assert result.details["rejects_by_reason"] == {"code_heavy": 1}


def test_config_groups_build():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from hala_exp.core.schema import ConfigError, build
    from hala_exp.translation.config import LanguageConfig, PromptConfig, TranslateConfig

    with initialize_config_dir(str(ROOT / "conf")):
        for name in ("transformers", "vllm"):
            node = OmegaConf.to_container(compose(f"translate/{name}").translate, resolve=True)
            assert build(TranslateConfig, node, "translate").engine.name == name
        for code in ("ar", "sw"):
            lang = build(LanguageConfig, OmegaConf.to_container(compose(f"language/{code}").language), "language")
            assert lang.code == code and lang.script in ("Arabic", "Latin")
    with pytest.raises(ConfigError, match="translate.runtime.lease_heartbeat_s"):
        stage_config(lease_heartbeat_s=5, lease_stale_s=2)
    with pytest.raises(ConfigError, match=r"prompt.repetition_penalty: 0(.0)? must be > 0"):
        build(PromptConfig, {"template": "{text}", "repetition_penalty": 0}, "prompt")
    with pytest.raises(ConfigError, match="prompt.template"):
        good = stage_config()
        build(
            stage.Config,
            {
                "source": {"sources": [{"name": "s", "adapter": "alpaca", "path": "x.jsonl", "count": 1}]},
                "prompt": {"template": "no text"},
                "language": vars(good.language),
                "translate": {},
            },
            "",
        )
