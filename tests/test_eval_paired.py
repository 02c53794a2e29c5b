"""Paired test sets: English source and Arabic reference from two datasets, joined on a configured key."""

from __future__ import annotations

import json

import pytest

from hala_exp.core.schema import ConfigError, build
from hala_exp.evaluation import testsets
from hala_exp.evaluation.testsets import load_testset

EN = {
    "anatomy": ["What is the largest organ?", "Where is the femur?"],
    "virology": ["What is a virus?", "What is a vaccine?", "What is an antibody?"],
}
AR = {
    "anatomy": ["ما أكبر عضو؟", "أين يقع عظم الفخذ؟"],
    "virology": ["ما الفيروس؟", "ما اللقاح؟", "ما الجسم المضاد؟"],
}


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _mmlu_like(tmp_path, en=EN, ar=AR):
    """One JSONL file per subject and side (like the hub's per-subject configs); the translation's files are
    listed in another subject order, so position alone would misalign."""
    side = lambda lang, data: {  # noqa: E731
        "text_fields": ["question"],
        "files": {s: _write(tmp_path / f"{lang}_{s}.jsonl", [{"question": q} for q in qs]) for s, qs in data.items()},
    }
    return side("en", en), side("ar", dict(reversed(list(ar.items()))))


def _config(source, reference, key):
    raw = {"format": "paired", "source": source, "reference": reference, "key": key, "direction": "en-xx"}
    return build(testsets.TestSetConfig, raw, "eval.translation.testsets.mmlu")


def test_pairs_follow_the_key_not_the_file_order(tmp_path):
    source, reference = _mmlu_like(tmp_path)
    ts = load_testset("mmlu", _config(source, reference, ["_config", "_index"]))
    assert list(zip(ts.sources, ts.references)) == [(q, AR[s][i]) for s, qs in EN.items() for i, q in enumerate(qs)]
    assert ts.rejects == {} and "['_config', '_index']" in ts.origin


def test_a_column_and_the_row_index_can_form_the_key(tmp_path):
    en_rows = [{"subject": s, "question": q} for s, qs in EN.items() for q in qs][::-1]  # other order
    ar_rows = [{"subject": s, "question": q} for s, qs in AR.items() for q in qs[::-1]][::-1]
    side = lambda path, rows: {"text_fields": ["question"], "files": {"x": _write(path, rows)}}  # noqa: E731
    ts = load_testset(
        "m", _config(side(tmp_path / "en.jsonl", en_rows), side(tmp_path / "ar.jsonl", ar_rows), ["subject", "_index"])
    )
    # reversed files: the _index of a row counts within its subject in file order, on each side
    assert ("What is an antibody?", "ما الفيروس؟") in zip(ts.sources, ts.references)


def test_a_missing_translation_names_the_first_misaligned_key(tmp_path):
    ar = {"anatomy": AR["anatomy"], "virology": AR["virology"][:2]}  # the last virology question was dropped
    source, reference = _mmlu_like(tmp_path, ar=ar)
    with pytest.raises(
        ValueError,
        match=r"first misaligned key \(_config='virology', _index=2\) is in the source but not in the reference",
    ):
        load_testset("mmlu", _config(source, reference, ["_config", "_index"]))
    extra = {"anatomy": AR["anatomy"] + ["سؤال زائد"], "virology": AR["virology"]}
    _, reference = _mmlu_like(tmp_path, ar=extra)
    with pytest.raises(ValueError, match=r"\(_config='anatomy', _index=2\) is in the reference but not in the source"):
        load_testset("mmlu", _config(source, reference, ["_config", "_index"]))


def test_a_key_that_names_two_rows_is_refused(tmp_path):
    rows = [{"id": "q1", "question": "A?"}, {"id": "q1", "question": "B?"}]
    side = {"text_fields": ["question"], "files": {"x": _write(tmp_path / "s.jsonl", rows)}}
    with pytest.raises(ValueError, match=r"key \(id='q1'\) occurs twice .*s.jsonl:2"):
        load_testset("m", _config(side, side, ["id"]))
    with pytest.raises(ValueError, match="has no key column 'subject'"):
        load_testset("m", _config(side, side, ["subject"]))


def test_unreadable_and_empty_rows_keep_positions_and_are_counted(tmp_path):
    (tmp_path / "ar.jsonl").write_text(
        '{"question": "س1"}\nnot json\n{"question": ""}\n{"question": "س4"}\n', encoding="utf-8"
    )
    en = _write(tmp_path / "en.jsonl", [{"question": f"Q{i}"} for i in range(1, 5)])
    ts = load_testset(
        "m",
        _config(
            {"text_fields": ["question"], "files": {"x": en}},
            {"text_fields": ["question"], "files": {"x": str(tmp_path / "ar.jsonl")}},
            ["_index"],
        ),
    )
    assert list(zip(ts.sources, ts.references)) == [("Q1", "س1"), ("Q4", "س4")]
    assert ts.rejects == {"empty_or_unreadable_side": 2}


@pytest.mark.parametrize(
    "patch, error",
    [
        ({"key": []}, "key: required when format=paired"),
        ({"key": ["_index", "_index"]}, r"key: \['_index', '_index'\] repeats a part"),
        ({"reference": None}, "reference: required when format=paired"),
        ({"source": {"text_fields": ["q"]}}, "hub_id / files: set exactly one"),
    ],
)
def test_bad_paired_config_refused(tmp_path, patch, error):
    source, reference = _mmlu_like(tmp_path)
    raw = {"format": "paired", "source": source, "reference": reference, "key": ["_index"], **patch}
    with pytest.raises(ConfigError, match=error):
        build(testsets.TestSetConfig, raw, "t")


def test_rows_reordered_inside_a_subject_are_caught_by_agree_fields(tmp_path):
    """Positions alone cannot see a reordered translation; the answer index both sides share can."""
    en = [{"question": f"Q{i}", "answer": i % 4} for i in range(8)]
    ar = [{"question": f"س{i}", "answer": i % 4} for i in range(8)]
    ar[2], ar[3] = ar[3], ar[2]  # two translated rows swapped
    side = lambda path, rows: {"text_fields": ["question"], "files": {"x": _write(path, rows)}}  # noqa: E731
    raw = {
        "format": "paired",
        "source": side(tmp_path / "en.jsonl", en),
        "reference": side(tmp_path / "ar.jsonl", ar),
        "key": ["_config", "_index"],
        "agree_fields": ["answer"],
    }
    build_set = lambda extra: build(testsets.TestSetConfig, {**raw, **extra}, "t")  # noqa: E731
    with pytest.raises(
        ValueError, match=r"2 of 8 pairs disagree on \['answer'\].*first misaligned key \(_config='x', _index=2\)"
    ):
        load_testset("m", build_set({}))
    ts = load_testset("m", build_set({"max_disagreement": 0.25}))  # tolerated: the two pairs are quarantined
    assert ts.rejects == {"agree_fields_differ": 2} and ("Q2", "س2") not in zip(ts.sources, ts.references)
    assert list(zip(ts.sources, ts.references))[:2] == [("Q0", "س0"), ("Q1", "س1")]
