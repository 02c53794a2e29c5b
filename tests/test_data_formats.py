"""The shared data formats' single owners: the messages validator, the parallel-text reader, the path resolver."""

from __future__ import annotations

from pathlib import Path

import pytest

from hala_exp.data.messages import MAX_CHARS, problem
from hala_exp.data.parallel import NotAligned, read_aligned
from hala_exp.data.paths import PROJECT_ROOT, resolve

CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"id": "a", "messages": CHAT}, None),
        ("text", "not_an_object"),
        ({"messages": CHAT}, "missing_id"),
        ({"id": "", "messages": CHAT}, "missing_id"),
        ({"id": " ", "messages": CHAT}, "missing_id"),
        ({"id": 3, "messages": CHAT}, "id_not_string"),
        ({"id": "a"}, "missing_messages"),
        ({"id": "a", "messages": []}, "missing_messages"),
        ({"id": "a", "messages": ["hi"]}, "message_not_an_object"),
        ({"id": "a", "messages": [{"role": "narrator", "content": "x"}]}, "unknown_role"),
        ({"id": "a", "messages": [{"role": "user", "content": None}]}, "content_not_string"),
        ({"id": "a", "messages": [{"role": "user", "content": "x" * (MAX_CHARS + 1)}]}, "too_long"),
    ],
)
def test_one_validator_one_reason_per_fault(row, reason):
    assert problem(row) == reason


def test_validator_options_for_ids_limits_and_translated_rows():
    assert problem({"messages": CHAT}, require_id=False) is None
    assert problem({"id": "a", "messages": [{"role": "user", "content": "x" * 10}]}, max_chars=9) == "too_long"
    assert problem({"id": "a", "messages": [{"role": "user", "content": "x" * 10**6}]}, max_chars=None) is None
    both = {"id": "a", "messages": CHAT, "messages_en": CHAT[:1]}
    assert problem(both, max_chars=8, keys=("messages", "messages_en")) == "too_long"  # 2 + 5 + 2 chars
    assert problem({"id": "a", "messages": CHAT}, keys=("messages", "messages_en")) == "missing_messages_en"


def test_parallel_reader_splits_only_at_newlines_and_names_misaligned_files(tmp_path):
    en, ar = tmp_path / "t.en", tmp_path / "t.ar"
    en.write_bytes("one\u2028still one\r\ntwo\n\nfour".encode())
    ar.write_text("واحد\nاثنان\n\nأربعة\n", encoding="utf-8")
    rows = list(read_aligned({"en": en, "ar": ar}))
    assert [n for n, _ in rows] == [1, 2, 3, 4]
    assert rows[0][1] == {"en": "one\u2028still one", "ar": "واحد"} and rows[3][1]["en"] == "four"
    ar.write_text("واحد\n", encoding="utf-8")
    with pytest.raises(NotAligned, match=rf"not line-aligned \({en} has 4 lines, {ar} has 1 lines\)"):
        list(read_aligned({"en": en, "ar": ar}, "test set"))


def test_one_path_base_for_every_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("conf/config.yaml") == PROJECT_ROOT / "conf" / "config.yaml"
    assert resolve("conf/config.yaml").is_file()  # from any current directory
    assert resolve(tmp_path / "x.jsonl") == tmp_path / "x.jsonl"
    assert resolve("~/x") == Path.home() / "x"
    assert resolve("package://hala_exp/assets/embedded/sft_en.jsonl").is_file()
    with pytest.raises(FileNotFoundError, match="no_such_package"):
        resolve("package://no_such_package/x")
