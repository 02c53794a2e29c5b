"""Schema adapters (hala_exp.data.sources) and seeded mixes built on Arrow (hala_exp.data.mixes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hala_exp.core.schema import ConfigError
from hala_exp.data.mixes import build_mix
from hala_exp.data.paths import resolve
from hala_exp.data.sources import MixConfig, SourceConfig, as_mix, code_fraction, input_files

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FLORES = SHARED / "parallel" / "flores200_devtest"


def write_jsonl(path: Path, rows: list) -> str:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return str(path)


def mix(*sources: dict, seed: int = 0) -> dict:
    return {"seed": seed, "sources": list(sources)}


def load_mix(config, target_language: str | None = None, out: Path | None = None) -> tuple[list, list, dict]:
    """(rows, quarantine entries, rows per source) of a mix built by build_mix."""
    import tempfile

    out = out or Path(tempfile.mkdtemp(prefix="mix-"))
    built = build_mix(config, out, target_language)
    rejects = [json.loads(line) for line in built.rejects_path.read_text(encoding="utf-8").splitlines()]
    return list(built.rows()), rejects, built.per_source


def reject_counts(rejects: list[dict]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for q in rejects:
        per = out.setdefault(q["source"], {})
        per[q["reason"]] = per.get(q["reason"], 0) + 1
    return out


def one(tmp_path: Path, adapter: str, rows: list, **extra) -> tuple[list, list, dict]:
    path = write_jsonl(tmp_path / f"{adapter}.jsonl", rows)
    return load_mix(mix({"name": adapter, "adapter": adapter, "path": path, "fraction": 1.0, **extra}))


# ------------------------------------------------------------------------------------------- adapters


def test_open_orca_keeps_system_and_omits_an_empty_one(tmp_path):
    rows, rejects, _ = one(
        tmp_path,
        "open_orca",
        [
            {"id": "niv.1", "system_prompt": "Be brief.", "question": "Q1?", "response": "A1."},
            {"id": "niv.2", "system_prompt": "", "question": "Q2?", "response": "A2."},
        ],
    )
    assert rejects == []
    assert rows[0] == {
        "id": "niv.1",
        "source": "open_orca",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Q1?"},
            {"role": "assistant", "content": "A1."},
        ],
    }
    assert [m["role"] for m in rows[1]["messages"]] == ["user", "assistant"]


def test_sharegpt_keeps_every_turn_in_order(tmp_path):
    conv = [
        {"from": "system", "value": "S"},
        {"from": "human", "value": "u1"},
        {"from": "gpt", "value": "a1"},
        {"from": "human", "value": "u2"},
        {"from": "gpt", "value": "a2"},
    ]
    rows, rejects, _ = one(tmp_path, "sharegpt", [{"conversations": conv}])
    assert rejects == []
    assert [(m["role"], m["content"]) for m in rows[0]["messages"]] == [
        ("system", "S"),
        ("user", "u1"),
        ("assistant", "a1"),
        ("user", "u2"),
        ("assistant", "a2"),
    ]


def test_tulu_messages_and_where_filter(tmp_path):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    rows, rejects, counts = one(
        tmp_path,
        "tulu",
        [
            {"id": "t1", "source": "ai2-adapt-dev/flan", "messages": msgs},
            {"id": "t2", "source": "ai2-adapt-dev/aya", "messages": msgs},
        ],
        where={"source": ["ai2-adapt-dev/flan"]},
    )
    assert [r["id"] for r in rows] == ["t1"] and rows[0]["messages"] == msgs
    assert reject_counts(rejects) == {"tulu": {"filtered:source": 1}}


def test_alpaca_joins_input_and_lamini_and_pairwise(tmp_path):
    rows, _, _ = one(
        tmp_path,
        "alpaca",
        [
            {"instruction": "Translate.", "input": "cat", "output": "chat"},
            {"instruction": "Say hi.", "input": "", "output": "hi"},
        ],
    )
    assert rows[0]["messages"][0]["content"] == "Translate.\n\ncat"
    assert rows[1]["messages"][0]["content"] == "Say hi."
    rows, _, _ = one(tmp_path, "lamini", [{"instruction": "I", "response": "R", "instruction_source": "x"}])
    assert [m["content"] for m in rows[0]["messages"]] == ["I", "R"]
    rows, _, _ = one(tmp_path, "pairwise", [{"prompt": "P", "chosen": "good", "rejected": "bad"}])
    assert [m["content"] for m in rows[0]["messages"]] == ["P", "good"]


def test_single_turn_columns_for_other_schemas(tmp_path):
    rows, _, _ = one(
        tmp_path,
        "single_turn",
        [{"problem": "2+2?", "matched_solution": "4"}],
        columns={"user": "problem", "assistant": "matched_solution"},
    )
    assert [m["content"] for m in rows[0]["messages"]] == ["2+2?", "4"]


def test_parallel_flat_and_opus_nested(tmp_path):
    rows, _, _ = one(
        tmp_path, "parallel", [{"en": "Hello.", "ar": "مرحبا."}, {"translation": {"en": "Yes.", "ar": "نعم."}}]
    )
    assert rows[0]["messages"] == [{"role": "user", "content": "مرحبا."}]
    assert rows[0]["messages_en"] == [{"role": "user", "content": "Hello."}]
    assert rows[1]["messages_en"][0]["content"] == "Yes." and rows[1]["language"] == "ar"


@pytest.mark.skipif(not FLORES.is_dir(), reason=f"shared data not found at {FLORES}")
def test_parallel_from_line_aligned_text_files():
    rows, rejects, counts = load_mix(
        mix(
            {
                "name": "flores",
                "adapter": "parallel",
                "count": 20,
                "text_files": {"en": str(FLORES / "eng_Latn.devtest"), "ar": str(FLORES / "arb_Arab.devtest")},
            }
        ),
        target_language="ar",
    )
    assert counts == {"flores": 20} and not rejects
    english = (FLORES / "eng_Latn.devtest").read_text(encoding="utf-8").split("\n")
    arabic = (FLORES / "arb_Arab.devtest").read_text(encoding="utf-8").split("\n")
    pairs = dict(zip(english, arabic))
    for row in rows:  # alignment is kept for every sampled line
        assert pairs[row["messages_en"][0]["content"]] == row["messages"][0]["content"]


# ------------------------------------------------------------------------------------------- quarantine


def test_malformed_rows_are_quarantined_with_reasons(tmp_path):
    good = {"system_prompt": "", "question": "Q?", "response": "A."}
    rows, rejects, counts = one(
        tmp_path,
        "open_orca",
        [
            good,
            {"question": "Q?"},  # missing response
            {"question": 3, "response": "A."},  # wrong type
            {"question": "  ", "response": "A."},  # empty
            {"question": "x" * 300_000, "response": "A."},  # absurd length
            "not json {",  # unreadable line
            "[1, 2]",  # not an object
            dict(good),  # same content, same hashed id: duplicate
        ],
    )
    assert counts == {"open_orca": 1} and len(rows) == 1
    reasons = reject_counts(rejects)["open_orca"]
    assert reasons.pop("missing:response") == 1
    assert reasons.pop("not_string:question") == 1
    assert reasons.pop("empty:question") == 1
    assert reasons.pop("too_long") == 1
    assert reasons.pop("not_an_object") == 1
    assert reasons.pop("duplicate_id") == 1
    (last,) = reasons  # the unreadable line, with the parser's message
    assert last.startswith("invalid_json") and reasons[last] == 1
    # every quarantine entry points at its line in the file
    assert {q["reason"]: q["line"] for q in rejects}["missing:response"] == 2
    assert {q["reason"]: q["line"] for q in rejects}["duplicate_id"] == 8


def test_sharegpt_unknown_role_and_empty_turn(tmp_path):
    _, rejects, counts = one(
        tmp_path,
        "sharegpt",
        [
            {"conversations": [{"from": "human", "value": "u"}, {"from": "tool", "value": "x"}]},
            {"conversations": [{"from": "human", "value": ""}]},
            {"conversations": "oops"},
            {"conversations": [{"from": "gpt", "value": "only an answer"}]},
            {"conversations": [{"from": "human", "value": "fine"}, {"from": "gpt", "value": "yes"}]},
        ],
    )
    assert counts == {"sharegpt": 1}
    assert reject_counts(rejects)["sharegpt"] == {
        "unknown_role:tool": 1,
        "empty:conversations[0].value": 1,
        "not_a_list:conversations": 1,
        "no_user_turn": 1,
    }


def test_code_heavy_rows_dropped_only_when_asked(tmp_path):
    code = "Here:\n```python\ndef f(x):\n    return x * 2\n\nprint(f(3))\n```"
    data = [
        {"conversations": [{"from": "human", "value": "Write f."}, {"from": "gpt", "value": code}]},
        {"conversations": [{"from": "human", "value": "Name a fruit."}, {"from": "gpt", "value": "An apple."}]},
    ]
    assert code_fraction([{"content": code}]) > 0.8
    assert code_fraction([{"content": "An apple is a fruit; it grows on trees."}]) < 0.5
    _, _, kept = one(tmp_path, "sharegpt", data)
    rows, rejects, dropped = one(tmp_path, "sharegpt", data, max_code_fraction=0.3)
    assert kept == {"sharegpt": 2} and dropped == {"sharegpt": 1}
    assert reject_counts(rejects) == {"sharegpt": {"code_heavy": 1}}


def test_unreadable_source_names_its_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_mix(mix({"name": "x", "adapter": "alpaca", "path": str(tmp_path / "nope.jsonl"), "count": 1}))


# ------------------------------------------------------------------------------------------- config rules


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"fraction": 1}, r"sources\[0\]\.fraction: 1 is a bare integer"),
        ({"count": 1.0}, r"sources\[0\]\.count: 1.0 must be an integer"),
        ({"fraction": 0.5, "count": 3}, r"sources\[0\]\.fraction: give exactly one of fraction"),
        ({}, "exactly one of fraction"),
        ({"fraction": -0.5}, "must be > 0"),
        ({"count": 2, "hub": "a/b"}, r"sources\[0\]\.path: give exactly one of path, hub"),
    ],
)
def test_fraction_count_rules_name_the_key(entry, message):
    with pytest.raises(ConfigError, match=message) as err:
        as_mix(mix({"name": "orca", "adapter": "open_orca", "path": "x.jsonl", **entry}), where="data.seed")
    assert str(err.value).startswith("data.seed.sources[0].") and "(source 'orca')" in str(err.value)


def test_unknown_adapter_lists_allowed_values():
    with pytest.raises(ConfigError, match="allowed values:.*sharegpt"):
        as_mix(mix({"name": "a", "adapter": "orca", "path": "x.jsonl", "count": 1}))


def _numbered(tmp_path: Path, n: int) -> str:
    return write_jsonl(
        tmp_path / "n.jsonl", [{"id": f"r{i}", "instruction": f"i{i}", "response": f"o{i}"} for i in range(n)]
    )


def test_fraction_count_and_upsampling(tmp_path):
    path = _numbered(tmp_path, 10)
    src = {"name": "lam", "adapter": "lamini", "path": path}
    assert load_mix(mix({**src, "fraction": 0.3}))[2] == {"lam": 3}
    assert load_mix(mix({**src, "count": 7}))[2] == {"lam": 7}
    rows, _, counts = load_mix(mix({**src, "fraction": 2.5}))
    assert counts == {"lam": 25}
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == 25  # up-sampled copies get distinct ids
    base = [i.split("#")[0] for i in ids]
    assert all(base.count(f"r{i}") in (2, 3) for i in range(10))  # two whole copies, then half of it once more
    rows, _, _ = load_mix(mix({**src, "count": 23}))
    assert sorted({r["id"].split("#")[0] for r in rows}) == sorted(f"r{i}" for i in range(10))


def test_seed_changes_sample_and_sources_are_independent(tmp_path):
    path = _numbered(tmp_path, 50)
    a = [r["id"] for r in load_mix(mix({"name": "lam", "adapter": "lamini", "path": path, "count": 10}))[0]]
    b = [r["id"] for r in load_mix(mix({"name": "lam", "adapter": "lamini", "path": path, "count": 10}, seed=1))[0]]
    assert a != b


DETERMINISM_SCRIPT = """
import json, sys
from hala_exp.data.sources import load_mix
rows, _, _ = load_mix(json.loads(sys.argv[1]))
print(json.dumps([r["id"] for r in rows]))
"""


def test_same_mix_in_another_process(tmp_path):
    hashed = write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"i{i}", "output": f"o{i}"} for i in range(40)])
    config = mix(
        {"name": "alp", "adapter": "alpaca", "path": hashed, "fraction": 0.4},
        {"name": "lam", "adapter": "lamini", "path": _numbered(tmp_path, 30), "fraction": 1.5},
        seed=7,
    )
    here = [r["id"] for r in load_mix(config)[0]]
    runs = [
        subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT, json.dumps(config)],
            check=True,
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        )
        for seed in (1, 2)
    ]
    assert [json.loads(r.stdout) for r in runs] == [here, here]
    assert len(here) == 16 + 45


def test_embedded_configs_load_from_any_cwd(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    conf = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "data" / "embedded.yaml")
    data = OmegaConf.to_container(OmegaConf.merge({"seed": 0}, {"data": conf}), resolve=True)["data"]
    monkeypatch.chdir(tmp_path)
    for key, adapter in (("seed", "open_orca"), ("parallel", "parallel"), ("sft", "alpaca")):
        rows, rejects, counts = load_mix(data[key], target_language="ar")
        assert rows and not rejects
        assert all(p.startswith("/") and Path(p).is_file() for p in input_files(data[key]))
    assert resolve("package://hala_exp/assets/embedded/sft_en.jsonl").is_file()


def test_mixconfig_object_is_validated_too():
    bad = MixConfig(sources=[SourceConfig(name="a", adapter="alpaca", path="x.jsonl", fraction=1)])
    with pytest.raises(ConfigError, match="bare integer"):
        load_mix(bad)


def test_paper_mixes_validate_and_cite_their_sources():
    from omegaconf import OmegaConf

    conf = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "data" / "hala_sft.yaml")
    data = OmegaConf.to_container(OmegaConf.merge({"seed": 0}, {"data": conf}), resolve=True)["data"]
    for key in ("seed", "parallel", "sft"):
        mix = as_mix(data[key], f"data.{key}")
        assert all(s.hub and s.comment for s in mix.sources)  # every source documented (size, licence, why)
    sft = {s.name: s for s in as_mix(data["sft"]).sources}
    assert sft["hermes3"].max_code_fraction is not None  # the paper dropped code from Hermes-3
    assert as_mix(data["seed"]).sources[0].count == 405000  # arXiv 2509.14008 Sec. 3


def test_parquet_file_and_hub_style_local_directory(tmp_path):
    pytest.importorskip("datasets")
    import pandas as pd

    rows = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": "r"} for i in range(6)]
    pd.DataFrame(rows).to_parquet(tmp_path / "pairs.parquet")
    got, _, counts = load_mix(
        mix({"name": "pq", "adapter": "pairwise", "path": str(tmp_path / "pairs.parquet"), "count": 6})
    )
    assert counts == {"pq": 6} and [r["messages"][1]["content"] for r in got] == [f"c{i}" for i in range(6)]
    hub_dir = tmp_path / "hub_copy"
    hub_dir.mkdir()
    write_jsonl(hub_dir / "train.jsonl", [{"instruction": "i", "response": "r"}, {"instruction": "", "response": "r"}])
    got, rejects, counts = load_mix(
        mix({"name": "hubdir", "adapter": "lamini", "hub": str(hub_dir), "split": "train", "fraction": 1.0})
    )
    assert counts == {"hubdir": 1} and reject_counts(rejects) == {"hubdir": {"empty:instruction": 1}}
