"""bilingual stage: translated turns + parallel corpus -> filtered EN->XX / XX->EN training pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hala_exp.core.schema import ConfigError, build
from hala_exp.core.stage import StageContext
from hala_exp.stages import bilingual
from hala_exp.stages.bilingual import FilterConfig, pair_rejection
from hala_exp.translation.gates import script_ratio

CONF = Path(__file__).resolve().parents[1] / "conf"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FLORES = SHARED / "parallel" / "flores200_devtest"

TRANSLATED = [
    {
        "id": "seed-01",
        "source": "orca",
        "messages": [
            {"role": "system", "content": "أنت مساعد مفيد."},
            {"role": "user", "content": "ما عاصمة مصر؟"},
            {"role": "assistant", "content": "عاصمة مصر هي القاهرة."},
        ],
        "messages_en": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of Egypt?"},
            {"role": "assistant", "content": "The capital of Egypt is Cairo."},
        ],
    },
    {
        "id": "seed-02",
        "source": "orca",
        "messages": [{"role": "user", "content": "مرحبا"}],
        "messages_en": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}],
    },  # misaligned
    {
        "id": "seed-03",
        "source": "orca",
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "messages_en": [{"role": "user", "content": "Why is the sky blue?"}],
    },  # untranslated copy
]


def group_config(**overrides) -> dict:
    """The pipeline's bilingual step config: {parallel: data.parallel, prompt: translator.prompt, language,
    filter: data.bilingual_filter, seed}."""
    root = OmegaConf.to_container(
        OmegaConf.merge(
            {
                "seed": 0,
                "language": OmegaConf.load(CONF / "language" / "ar.yaml"),
                "translator": {"prompt": OmegaConf.load(CONF / "translator" / "embedded.yaml").prompt},
                "data": OmegaConf.load(CONF / "data" / "embedded.yaml"),
            }
        ),
        resolve=True,
    )
    return {
        "parallel": root["data"]["parallel"],
        "prompt": root["translator"]["prompt"],
        "language": root["language"],
        "filter": root["data"]["bilingual_filter"],
        "seed": root["seed"],
        **overrides,
    }


def run_stage(tmp_path: Path, rows: list, **overrides):
    tmp_path.mkdir(parents=True, exist_ok=True)
    translations = tmp_path / "translations.jsonl"
    translations.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = build(bilingual.Config, group_config(**overrides), "bilingual")
    out = tmp_path / "out"
    out.mkdir()
    inputs = {"translations": {"data": str(translations)}}
    result = bilingual.run(StageContext("bilingual", "bilingual", cfg, inputs, out))
    corpus = [json.loads(line) for line in (out / result.outputs["data"]).read_text(encoding="utf-8").splitlines()]
    rejected = [json.loads(line) for line in (out / bilingual.REJECTED).read_text(encoding="utf-8").splitlines()]
    return result, corpus, rejected


def test_every_turn_both_directions_plus_parallel(tmp_path):
    result, corpus, rejected = run_stage(tmp_path, TRANSLATED)
    orca = [r for r in corpus if r["source"] == "orca"]
    assert len(orca) == 3 * 2  # system, user and assistant turns of seed-01, each way
    by_id = {r["id"]: r for r in orca}
    en_ar = by_id["seed-01:2:en-ar"]
    assert en_ar["direction"] == "en-ar"
    assert en_ar["messages"] == [
        {"role": "user", "content": "Translate from English to Arabic: The capital of Egypt is Cairo."},
        {"role": "assistant", "content": "عاصمة مصر هي القاهرة."},
    ]
    ar_en = by_id["seed-01:0:ar-en"]
    assert ar_en["messages"][0]["content"] == "Translate from Arabic to English: أنت مساعد مفيد."
    assert ar_en["messages"][1]["content"] == "You are a helpful assistant."

    parallel = [r for r in corpus if r["source"] == "parallel_embedded"]
    assert parallel and len(parallel) % 2 == 0
    assert len({r["id"] for r in corpus}) == len(corpus)

    reasons = {r["reason"] for r in rejected}
    assert reasons == {"turn_count_mismatch", "identical_sides"}
    m = result.metrics
    assert m["rows"] == len(corpus) and m["rejected"] == len(rejected) == 2
    assert m["rows/orca/en-ar"] == m["rows/orca/ar-en"] == 3
    assert m["rows/parallel_embedded/en-ar"] == len(parallel) // 2
    assert result.details["rows_per_source_direction"]["orca"] == {"en-ar": 3, "ar-en": 3}


def test_directions_roles_and_seeded_shuffle(tmp_path):
    _, corpus, _ = run_stage(tmp_path / "a", TRANSLATED, directions=["xx-en"], roles=["assistant"], parallel=None)
    assert [r["id"] for r in corpus] == ["seed-01:2:ar-en"]
    _, first, _ = run_stage(tmp_path / "b", TRANSLATED, seed=3)
    _, second, _ = run_stage(tmp_path / "c", TRANSLATED, seed=3)
    _, unshuffled, _ = run_stage(tmp_path / "d", TRANSLATED, shuffle=False)
    assert first == second and sorted(map(json.dumps, first)) == sorted(map(json.dumps, unshuffled))


@pytest.mark.parametrize(
    "en, ar, reason",
    [
        ("Hello there.", "   ", "empty"),
        ("The same text here.", "The same text here.", "identical_sides"),
        ("The weather is nice today.", "The weather is nice today!", "target_script"),
        ("الطقس جميل اليوم", "الطقس جميل اليوم.", "english_script"),
        ("The weather is very nice today in the city.", "جميل", "length_ratio"),
        ("Short.", "هذه جملة عربية طويلة جدا بالنسبة إلى الأصل الإنجليزي القصير.", None),  # short: ratio skipped
        ("The weather is nice today.", "الطقس جميل اليوم.", None),
        ("x" * 9000, "س" * 9000, "too_long"),
    ],
)
def test_each_filter_rule(en, ar, reason):
    assert pair_rejection(en, ar, FilterConfig(), "Arabic", script_ratio) == reason


def test_duplicates_are_kept_once(tmp_path):
    twice = [TRANSLATED[0], {**TRANSLATED[0], "id": "seed-01-copy"}]
    result, corpus, rejected = run_stage(tmp_path, twice, parallel=None)
    assert len(corpus) == 6 and [r["reason"] for r in rejected] == ["duplicate"] * 3


def test_unreadable_translations_stop_with_the_path(tmp_path):
    cfg = build(bilingual.Config, group_config(), "bilingual")
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        bilingual.run(StageContext("bilingual", "bilingual", cfg, {"translations": {"data": str(missing)}}, tmp_path))


@pytest.mark.parametrize(
    "override, message",
    [
        ({"directions": []}, "bilingual.directions"),
        ({"directions": ["en-ar"]}, "allowed values"),
        ({"filter": {"min_length_ratio": 4.0}}, "bilingual.filter.min_length_ratio"),
        ({"prompt": {"template": "no placeholder"}}, "bilingual.prompt.template"),
    ],
)
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        build(bilingual.Config, group_config(**override), "bilingual")


def test_parallel_file_is_part_of_the_fingerprint():
    cfg = build(bilingual.Config, group_config(), "bilingual")
    assert [Path(p).name for p in bilingual.input_files(cfg)] == ["parallel_train.jsonl"]


@pytest.mark.skipif(not FLORES.is_dir(), reason=f"shared data not found at {FLORES}")
def test_real_parallel_text_passes_the_filter(tmp_path):
    parallel = {
        "seed": 0,
        "sources": [
            {
                "name": "flores",
                "adapter": "parallel",
                "count": 200,
                "text_files": {"en": str(FLORES / "eng_Latn.devtest"), "ar": str(FLORES / "arb_Arab.devtest")},
            }
        ],
    }
    result, corpus, rejected = run_stage(tmp_path, [], parallel=parallel)
    # Professional translations: the filter must keep nearly all of them (a filter that rejects good
    # human text would starve the translator).
    assert result.metrics["rows/flores/en-ar"] >= 190 and len(rejected) <= 10
    assert all(r["direction"] in ("en-ar", "ar-en") for r in corpus)


def test_arrow_corpus_holds_the_jsonl_rows_and_translations_may_come_as_arrow(tmp_path):
    import datasets

    result, corpus, rejected = run_stage(tmp_path / "jsonl", TRANSLATED)
    arrow = datasets.Dataset.from_file(str(tmp_path / "jsonl" / "out" / result.outputs["arrow"]))
    assert list(arrow) == corpus
    # the same translations handed over as an Arrow file (what a streaming translate stage may write)
    as_arrow = tmp_path / "arrow_in"
    as_arrow.mkdir()
    datasets.Dataset.from_list(TRANSLATED).save_to_disk(str(as_arrow / "saved"))  # data-*.arrow inside
    cfg = build(bilingual.Config, group_config(), "bilingual")
    out = tmp_path / "out2"
    out.mkdir()
    again = bilingual.run(StageContext("bilingual", "bilingual", cfg, {"translations": {"data": str(as_arrow)}}, out))
    assert (out / bilingual.CORPUS).read_bytes() == (tmp_path / "jsonl" / "out" / bilingual.CORPUS).read_bytes()
    assert again.metrics == result.metrics


def test_parallel_rejects_and_bad_translation_rows_are_quarantined_with_lines(tmp_path):
    bad_parallel = tmp_path / "par.jsonl"
    bad_parallel.write_text(
        json.dumps({"en": "Good morning to you all.", "ar": "صباح الخير لكم جميعا."})
        + "\n"
        + json.dumps({"en": "x"})
        + "\n",
        encoding="utf-8",
    )
    parallel = {"seed": 0, "sources": [{"name": "par", "adapter": "parallel", "path": str(bad_parallel), "count": 1}]}
    rows = [*TRANSLATED, {"id": 5, **{k: TRANSLATED[0][k] for k in ("messages", "messages_en")}}, "not an object"]
    result, corpus, rejected = run_stage(tmp_path, rows, parallel=parallel)
    by_reason = {r["reason"]: r for r in rejected}
    assert by_reason["id_not_string"]["line"] == 4 and by_reason["not_an_object"]["line"] == 5
    assert by_reason["missing:ar"]["source"] == "par" and by_reason["missing:ar"]["line"] == 2
    assert all(len(r["sha256"]) == 64 and r["chars"] >= len(r["raw"]) for r in rejected)
    assert result.metrics["rows/par/en-ar"] == 1 and result.metrics["rejected"] == len(rejected) == 5


def test_filter_and_seed_are_wired_from_the_config_groups(tmp_path):
    from hydra import compose, initialize_config_dir

    from hala_exp.core.pipeline import Pipeline

    overrides = [f"paths.output_dir={tmp_path}", "seed=5", "data.bilingual_filter.min_length_ratio=0.1"]
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose(config_name="config", overrides=overrides)
    step = Pipeline.from_config(cfg, group="t").steps["bilingual"].config
    assert step.seed == 5 and step.filter.min_length_ratio == 0.1


def test_an_empty_corpus_stops_the_stage_naming_the_reasons(tmp_path):
    with pytest.raises(ValueError, match=r"no training pair left \(2 rejected: .*turn_count_mismatch"):
        run_stage(tmp_path, TRANSLATED[1:], parallel=None)
    kept = (tmp_path / "out" / bilingual.REJECTED).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["reason"] for line in kept] == ["turn_count_mismatch", "identical_sides"]
