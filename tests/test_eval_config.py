"""The eval config options compose, validate, and pin task strings lighteval knows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eval_helpers import build_eval, eval_step_configs

from hala_exp.core.schema import ConfigError, build
from hala_exp.data.paths import PROJECT_ROOT, resolve
from hala_exp.evaluation.benchmarks import BenchmarksConfig

SIX = ("alghafa", "arabic_mmlu", "arabic_exams", "madinah_qa", "aratrust", "arabic_mmlu_ht")


def test_hala_config_pins_six_benchmarks_with_exact_task_strings():
    from hala_exp.evaluation.benchmarks import arabic_task_configs

    steps = eval_step_configs("hala")
    cfg = build_eval(steps["eval"])
    assert tuple(cfg.benchmarks.tasks) == SIX and cfg.benchmarks.averaged is None
    known = arabic_task_configs()
    strings = [s for _, s, name, fewshot in cfg.benchmarks.task_list()]
    assert all(name in known for _, _, name, _ in cfg.benchmarks.task_list())
    assert all(s.endswith("|0") for s in strings)  # zero-shot, as OALL v2
    counts = {b: len(v) for b, v in cfg.benchmarks.tasks.items()}
    assert counts == {
        "alghafa": 9,
        "arabic_mmlu": 40,
        "arabic_exams": 1,
        "madinah_qa": 2,
        "aratrust": 8,
        "arabic_mmlu_ht": 57,
    }
    assert "arabic_mmlu:All|0" not in strings  # "All" repeats the other subsets
    assert not cfg.benchmarks.local  # hub data
    tr = build_eval(steps["eval_translator"]).translation
    assert set(tr.testsets) == {"flores_devtest", "tatoeba", "tico19", "mmlu_en_ar"} and tr.chrf_word_order == 2
    assert tr.testsets["flores_devtest"].reference_config == "arb_Arab"
    mmlu = tr.testsets["mmlu_en_ar"]  # the paper's EN->AR MMLU set: two hub datasets paired per subject and row
    assert mmlu.format == "paired" and mmlu.key == ["_config", "_index"]
    assert (mmlu.source.hub_id, mmlu.reference.hub_id) == ("cais/mmlu", "MBZUAI/human_translated_arabic_mmlu")
    assert mmlu.source.configs == mmlu.reference.configs and len(mmlu.source.configs) == 57
    assert mmlu.agree_fields == ["answer"]  # reordered translated rows are caught, not scored
    assert cfg.benchmarks.is_paper_suite()  # so its average is also logged as six_benchmark_mean


def test_shared_data_suite_is_honest():
    """Offline: every averaged benchmark reads its own data (none twice), stand-ins are local/ and not averaged,
    and the average is not the paper's six-benchmark mean; FLORES covers MSA and the eight dialect files."""
    steps = eval_step_configs("shared_data")
    bench = build_eval(steps["eval"]).benchmarks
    averaged = bench.averaged_benchmarks()
    assert set(averaged) == {"arabic_mmlu", "arabic_exams", "aratrust"} and not bench.is_paper_suite()
    files = [f for b in averaged for fam in bench.families(b) for f in bench.local[fam].local_files()]
    assert len(files) == len(set(files))
    assert "local/mmlu_ar_mt" in bench.tasks and "arabic_mmlu_ht" not in bench.tasks
    assert {"alghafa", "madinah_qa"}.isdisjoint(bench.tasks)  # no data of their own offline
    testsets = build_eval(steps["eval_translator"]).translation.testsets
    dialects = {n for n in testsets if n.startswith("flores_") and n != "flores_devtest"}
    assert dialects == {f"flores_{c}_Arab" for c in ("arz", "ary", "acm", "acq", "aeb", "ajp", "apc", "ars")}
    assert {testsets[n].source_file for n in dialects} == {testsets["flores_devtest"].source_file}


@pytest.mark.parametrize(
    "patch, error",
    [
        ({"averaged": ["local/mmlu_ar_mt"]}, r"averaged\[0\]: 'local/mmlu_ar_mt' is a stand-in"),
        (
            {"tasks": {"alghafa": ["alghafa:mcq_exams_test_ar|0"], "arabic_exams": ["arabic_exams|0"]}},
            r"averaged: 'alghafa' and 'arabic_exams' both read .*exam_test.jsonl; one data set would count twice",
        ),
    ],
)
def test_dishonest_averages_refused(patch, error):
    raw = eval_step_configs("shared_data")["eval"]["benchmarks"]
    raw["local"]["alghafa"] = {"format": "exams_alghafa", "path": raw["local"]["arabic_exams"]["path"]}
    raw["averaged"] = None
    raw.update(patch)
    with pytest.raises(ConfigError, match=error):
        build(BenchmarksConfig, raw, "eval.benchmarks")


def test_paper_benchmark_names_match_ours():
    from hala_exp.reporting import paper

    assert tuple(paper.BENCHMARKS) == SIX


@pytest.mark.parametrize("option", ["embedded", "shared_data"])
def test_offline_options_validate(option):
    steps = eval_step_configs(option)
    for raw in steps.values():
        build_eval(raw)


def test_shared_data_root_is_relative_to_repo_not_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("HALA_SHARED_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = build_eval(eval_step_configs("shared_data")["eval_translator"])
    files = cfg.translation.testsets["flores_devtest"].local_files()
    assert files[0] == str((PROJECT_ROOT.parent / "shared/data/parallel/flores200_devtest/eng_Latn.devtest").resolve())
    assert resolve("package://hala_exp/assets/embedded/mcq_ar.jsonl").is_file()
    assert os.getcwd() == str(tmp_path)


def test_input_files_are_fingerprinted(shared_data):
    from hala_exp.stages import eval as eval_stage

    cfg = build_eval(eval_step_configs("shared_data", {"eval.data_root": str(shared_data)})["eval"])
    files = eval_stage.input_files(cfg)
    assert all(Path(f).exists() for f in files) and any(f.endswith("exam_test.jsonl") for f in files)


@pytest.mark.parametrize(
    "raw, key",
    [
        ({}, "translation: set translation and/or benchmarks"),
        (
            {
                "translation": {
                    "testsets": {
                        "x": {"format": "jsonl", "path": "a.jsonl", "source_field": "en", "reference_field": "ar"}
                    }
                }
            },
            "prompt: required",
        ),
        (
            {"translation": {"testsets": {"x": {"format": "text_pair", "source_file": "a"}}}},
            r"translation.testsets.x.reference_file: required",
        ),
        ({"translation": {"testsets": {}}}, "translation.testsets: at least one"),
        (
            {
                "translation": {
                    "testsets": {
                        "x": {
                            "format": "hub",
                            "hub_id": "h",
                            "source_field": "a",
                            "reference_field": "b",
                            "direction": "ar-en",
                        }
                    }
                }
            },
            r"direction: 'ar-en' is not allowed",
        ),
    ],
)
def test_bad_eval_config_refused(raw, key):
    with pytest.raises(ConfigError, match=key):
        build_eval(raw)
