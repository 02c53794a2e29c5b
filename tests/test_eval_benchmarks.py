"""Benchmarks: lighteval on local copies of Arabic tasks, the six-benchmark average, converters, refusals."""

from __future__ import annotations

import json

import pytest
from eval_helpers import eval_step_configs, run_eval

from hala_exp.core.schema import ConfigError, build
from hala_exp.evaluation import benchmarks, local_tasks


def test_embedded_local_task_scores_tiny_model(tmp_path, tiny_lfm2_dir):
    raw = eval_step_configs("embedded")["eval"]
    result = run_eval(raw, tiny_lfm2_dir, tmp_path)
    acc = result.metrics["arabic_exams/acc_norm"]
    assert 0 <= acc <= 100 and result.metrics["average"] == pytest.approx(acc)
    saved = json.loads((tmp_path / result.outputs["results"]).read_text())
    items = saved["benchmarks"]["items"]
    assert len(items) == 12 and all(len(i["logprobs"]) == 4 for i in items)
    # The task score is the mean of the per-question scores lighteval reports.
    assert acc == pytest.approx(100 * sum(i["metrics"]["acc_norm"] for i in items) / 12)
    golds = {i["gold_index"] for i in items}
    assert golds <= {0, 1, 2, 3} and len(golds) > 1  # answers A-D were mapped, not all to one letter
    # lighteval turns autograd off process-wide; the stage must hand the process back as it found it, or the
    # next training stage in the same process (a sweep's next job) trains nothing
    import torch

    assert torch.is_grad_enabled()


def test_shared_data_variants_run_through_lighteval(tmp_path, tiny_lfm2_dir, shared_data):
    """One task of each local benchmark (+ the stand-in and ACVA) from ../shared/data, 2 questions each."""
    raw = eval_step_configs("shared_data", {"eval.data_root": str(shared_data)})["eval"]
    tasks = raw["benchmarks"]["tasks"]
    raw["benchmarks"]["tasks"] = {bench: strings[:1] for bench, strings in tasks.items()}
    raw["benchmarks"]["max_samples"] = 2
    result = run_eval(raw, tiny_lfm2_dir, tmp_path)
    for bench in ("arabic_mmlu", "arabic_exams", "aratrust", "local/mmlu_ar_mt", "acva"):
        assert 0 <= result.metrics[f"{bench}/acc_norm"] <= 100, bench
    own = [result.metrics[f"{b}/acc_norm"] for b in raw["benchmarks"]["averaged"]]
    assert result.metrics["average"] == pytest.approx(sum(own) / 3)  # the stand-in and ACVA reported, not averaged
    assert "six_benchmark_mean" not in result.metrics  # three local benchmarks are not the paper's six
    assert result.details["max_samples"] == 2


def test_six_benchmark_mean_only_for_the_papers_suite_on_hub_data():
    counts = benchmarks.SIX_TASK_COUNTS
    tasks = {b: [f"{b}:x{k}|0" for k in range(counts[b])] for b in benchmarks.SIX_BENCHMARKS}
    norm = "acc:logprob_normalization=LogProbCharNorm(name='norm', ignore_first_space=False)"
    aggregated = {s: {norm: 0.1 * (i + 1)} for i, b in enumerate(benchmarks.SIX_BENCHMARKS) for s in tasks[b]}
    hub = build(benchmarks.BenchmarksConfig, {"tasks": tasks}, "b")
    res = benchmarks._collect(hub, aggregated, {}, {})
    assert res.six_benchmark_mean == res.average == pytest.approx(35.0)
    trimmed = build(benchmarks.BenchmarksConfig, {"tasks": {**tasks, "alghafa": tasks["alghafa"][:1]}}, "b")
    assert benchmarks._collect(trimmed, aggregated, {}, {}).six_benchmark_mean is None  # one AlGhafa task of nine
    partial = build(benchmarks.BenchmarksConfig, {"tasks": tasks, "max_samples": 5}, "b")
    assert benchmarks._collect(partial, aggregated, {}, {}).six_benchmark_mean is None
    five = build(benchmarks.BenchmarksConfig, {"tasks": tasks, "averaged": list(tasks)[:5]}, "b")
    assert benchmarks._collect(five, aggregated, {}, {}).six_benchmark_mean is None
    with_stand_in = {**tasks, "local/mmlu_ar_mt": ["arabic_mmlu_ht:y|0"]}
    aggregated["arabic_mmlu_ht:y|0"] = {norm: 0.9}  # a stand-in is reported, not averaged
    res = benchmarks._collect(build(benchmarks.BenchmarksConfig, {"tasks": with_stand_in}, "b"), aggregated, {}, {})
    assert res.average == pytest.approx(35.0) and res.benchmarks["local/mmlu_ar_mt"] == pytest.approx(90.0)


def test_average_is_per_benchmark_then_mean():
    cfg = build(benchmarks.BenchmarksConfig, {"tasks": {"a": ["x:1|0", "x:2|0"], "b": ["y|0"]}}, "b")
    norm = "acc:logprob_normalization=LogProbCharNorm(name='norm', ignore_first_space=False)"
    aggregated = {"x:1|0": {norm: 0.2, norm + "_stderr": 0.1}, "x:2|0": {norm: 0.4}, "y|0": {norm: 0.9}}
    res = benchmarks._collect(cfg, aggregated, {}, {})
    assert res.tasks["x:1"] == {"acc_norm": pytest.approx(20.0)}
    assert res.benchmarks == {"a": pytest.approx(30.0), "b": pytest.approx(90.0)}
    assert res.average == pytest.approx(60.0)  # a mean over the three tasks would be 50


def test_converters_read_shared_formats(shared_data):
    b = shared_data / "benchmarks"
    exams = local_tasks.convert(
        local_tasks.LocalSource("exams", str(b / "exams_ar/exam_test.jsonl"), str(b / "exams_ar/exam_dev.jsonl")),
        "test",
        "validation",
    )
    assert len(exams.subsets["default"]["test"]) == 537 and len(exams.subsets["default"]["validation"]) == 25
    assert exams.subsets["default"]["test"][0]["subject"] == "Islamic Studies"
    alg = local_tasks.convert(
        local_tasks.LocalSource("exams_alghafa", str(b / "exams_ar/exam_test.jsonl")), "test", "validation"
    )
    row = alg.subsets["mcq_exams_test_ar"]["test"][0]
    assert row["label"] == "ABCD".index(exams.subsets["default"]["test"][0]["answer"])
    trust = local_tasks.convert(
        local_tasks.LocalSource("aratrust", str(b / "aratrust/aratrust_from_inceptlabs_results.jsonl")), "train", "dev"
    )
    assert sum(len(s["train"]) for s in trust.subsets.values()) + sum(trust.rejects.values()) == 522
    assert "MentalHealth" in trust.subsets and trust.rejects  # the row without a category is counted
    assert {r["Answer"] for s in trust.subsets.values() for r in s["train"]} <= {"أ", "ب", "ج"}
    mmlu = local_tasks.convert(
        local_tasks.LocalSource("arabicmmlu", str(b / "arabicmmlu/arabicmmlu_sample.csv")), "test", "dev"
    )
    assert len(mmlu.subsets["Driving Test"]["test"]) == 40 and len(mmlu.subsets["Management (University)"]["dev"]) == 3
    ht = local_tasks.convert(
        local_tasks.LocalSource("mmlu_translated", str(b / "mmlu_arabic_acegpt/test_sample")), "test", "dev"
    )
    assert len(ht.subsets) == 57 and all(len(r["choices"]) == 4 for r in ht.subsets["anatomy"]["test"])
    acva = local_tasks.convert(
        local_tasks.LocalSource("acva", str(b / "acva/acva_test_sample.jsonl")), "test", "validation"
    )
    assert {r["answer"] for s in acva.subsets.values() for r in s["test"]} == {"صح", "خطأ"}


def test_unknown_task_refused_before_loading_model(tmp_path):
    raw = eval_step_configs("embedded")["eval"]
    raw["benchmarks"]["tasks"]["arabic_mmlu"] = ["arabic_mmlu:No Such Subject|0"]
    with pytest.raises(ConfigError, match=r"eval.benchmarks.tasks.arabic_mmlu: unknown lighteval task"):
        run_eval(raw, tmp_path / "no-such-model", tmp_path / "out")


def test_local_data_without_the_subset_refused(tmp_path):
    raw = eval_step_configs("embedded")["eval"]
    raw["benchmarks"]["tasks"] = {"alghafa": ["alghafa:meta_ar_msa|0"]}
    raw["benchmarks"]["local"] = {
        "alghafa": {"format": "exams_alghafa", "path": raw["benchmarks"]["local"]["arabic_exams"]["path"]}
    }
    with pytest.raises(ConfigError, match="no 'test' rows for subset 'meta_ar_msa'"):
        run_eval(raw, tmp_path / "no-such-model", tmp_path / "out")


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"tasks": {"x": ["arabic_exams"]}}, r"tasks.x\[0\]: 'arabic_exams' is not a lighteval task string"),
        ({"tasks": {"x": []}}, "tasks.x: no task strings"),
        ({"averaged": ["nope"]}, r"averaged\[0\]: 'nope' is not a benchmark"),
        ({"local": {"arabic_exams": {"format": "pdf", "path": "x"}}}, "local.arabic_exams.format"),
    ],
)
def test_bad_benchmark_config_refused(patch, key):
    raw = eval_step_configs("embedded")["eval"]["benchmarks"]
    raw.update(patch)
    with pytest.raises(ConfigError, match=key):
        build(benchmarks.BenchmarksConfig, raw, "eval.benchmarks")


def test_short_metric_names():
    assert benchmarks.short_metric_name("acc:logprob_normalization=LogProbCharNorm(name='norm')") == "acc_norm"
    assert benchmarks.short_metric_name("acc") == "acc"
