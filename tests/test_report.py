"""The comparison report: loading summaries, the table, plots, HTML/Markdown, the paper's figures, W&B Report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hala_exp.reporting import paper
from hala_exp.reporting.example import write_example_sweep
from hala_exp.reporting.render import paper_benchmark_table, paper_table, variety_table
from hala_exp.reporting.report import main, write_report
from hala_exp.reporting.runs import (
    benchmark_keys,
    comparison_table,
    load_runs,
    translator_variants,
    varying_choices,
)

T_VALUES = (0.0, 0.5, 1.0)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two models x three t: the shape of a model-size sweep crossed with a t sweep."""
    sweep_dir = tmp_path_factory.mktemp("multirun") / "2026-01-01_00-00-00"
    write_example_sweep(sweep_dir, t_values=T_VALUES, models=("lfm2_tiny", "lfm2_1.2b"))
    return sweep_dir


def test_report_renders_html_markdown_and_plots(sweep, tmp_path):
    written = write_report([sweep], tmp_path / "out")
    for name in ("markdown", "html", "metric_vs_t", "benchmarks_by_model", "translator_scores"):
        assert written[name].is_file() and written[name].stat().st_size > 0, name
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for k, p in written.items() if k not in ("markdown", "html"))
    md, page = written["markdown"].read_text(), written["html"].read_text()
    for plot in ("metric_vs_t.png", "benchmarks_by_model.png", "translator_scores.png"):
        assert f"({plot})" in md and f"src='{plot}'" in page  # relative links: the report folder moves as one
    # The main table: one row per run, in job order, with the varying choice and t.
    header = next(line for line in md.splitlines() if line.startswith("| run |"))
    assert header.split(" | ")[1:3] == ["model", "t"]
    rows = [line for line in md.split("## Runs")[1].split("##")[0].splitlines() if line.startswith("| example-")]
    assert [r.split(" | ")[0][2:] for r in rows] == [
        f"example-{m}-t{t:g}" for m in ("lfm2_tiny", "lfm2_1.2b") for t in T_VALUES
    ]
    assert page.count("<tr>") > len(rows)


def test_table_shows_only_choices_that_vary(sweep):
    runs = load_runs([sweep])
    assert varying_choices(runs) == ["model"]  # data/quantize/merge are the same in every run
    table = comparison_table(runs)
    assert table.columns[:3] == ["run", "model", "t"]
    assert "data" not in table.columns
    assert [row[2] for row in table.rows] == list(T_VALUES) * 2
    avg = table.columns.index("eval/average")
    assert table.rows[0][avg] == runs[0].metrics["eval/average"]


def test_metrics_are_found_per_benchmark_and_translator_variant(sweep):
    runs = load_runs([sweep])
    assert set(benchmark_keys(runs)) == set(paper.BENCHMARKS)
    # Six runs but two translators: runs sharing the eval_translator fingerprint measured the same model.
    assert len(translator_variants(runs)) == 2


def test_paper_figures_sit_beside_runs_whose_base_the_paper_reports(sweep):
    runs = load_runs([sweep])
    table = paper_table(runs)
    assert table is not None
    models = {row[1] for row in table.rows}
    assert models == {"lfm2_1.2b"}  # the tiny model has no published counterpart
    row = table.rows[0]
    assert row[table.columns.index("paper (percent)")] == paper.AVERAGES["Hala-1.2B"].value
    # Our fractions are put on the paper's percent scale before the difference is taken.
    ours = runs[3].metrics["eval/six_benchmark_mean"] * 100
    assert row[table.columns.index("ours (percent)")] == pytest.approx(ours)
    per_bench = paper_benchmark_table(runs)
    first = dict(zip(per_bench.columns, per_bench.rows[0]))
    assert first["benchmark"] == "AlGhafa" and first["paper (percent)"] == 59.2  # [A] Table 4, Hala-1.2B


def test_no_paper_figure_beside_a_local_suite(tmp_path):
    """A run whose average is not over the paper's six on hub data gets no published figure anywhere."""
    sweep_dir = tmp_path / "local"
    write_example_sweep(sweep_dir, t_values=(0.5,), models=("lfm2_1.2b",))
    summary = sweep_dir / "0" / "summary.json"
    data = json.loads(summary.read_text())
    data["metrics"].pop("eval/six_benchmark_mean")  # as eval=shared_data logs: only eval/average
    summary.write_text(json.dumps(data))
    runs = load_runs([sweep_dir])
    assert paper_table(runs) is None and paper_benchmark_table(runs) is None
    md = write_report([sweep_dir], tmp_path / "out")["markdown"].read_text()
    assert "no published figure applies" in md and "Beside the paper, per benchmark" not in md


def test_variety_table_lists_msa_and_dialects(tmp_path):
    sweep_dir = tmp_path / "v"
    write_example_sweep(sweep_dir, t_values=(0.5,))
    summary = sweep_dir / "0" / "summary.json"
    data = json.loads(summary.read_text())
    data["config"]["language"] = {"flores": "arb_Arab"}
    for i, name in enumerate(["flores_devtest", "flores_arz_Arab", "flores_ary_Arab"]):
        data["metrics"][f"eval_translator/{name}/bleu"] = 30.0 - 10 * i
        data["metrics"][f"eval_translator/{name}/chrf"] = 50.0 - 10 * i
    summary.write_text(json.dumps(data))
    table = variety_table(load_runs([sweep_dir]))
    assert [row[:2] for row in table.rows] == [
        ["Modern Standard Arabic", "arb_Arab"],
        ["Egyptian", "arz_Arab"],
        ["Moroccan", "ary_Arab"],
    ]
    assert [row[2:] for row in table.rows] == [[30.0, 50.0], [20.0, 40.0], [10.0, 30.0]]
    md = write_report([sweep_dir], tmp_path / "out")["markdown"].read_text()
    assert "## Translator per Arabic variety (FLORES-200 devtest)" in md and "| Egyptian | arz_Arab | 20 | 40 |" in md


def test_paper_module_figures_carry_their_source_tags():
    for score in [*paper.AVERAGES.values(), *paper.TRANSLATOR_BLEU.values(), *paper.TRANSLATOR_CHRF.values()]:
        assert score.source[:3] in ("[P]", "[A]", "[S]"), score
    # Secondary or later figures are never cited as the report itself ([P] is the only tag that may).
    assert not any(x.source.startswith("arXiv") for x in [*paper.AVERAGES.values(), *paper.TRANSLATOR_BLEU.values()])
    assert (
        paper.TRANSLATOR_CHRF["Hala translator"].value == 64.2
        and paper.TRANSLATOR_CHRF["LFM2-1.2B (base)"].value == 43.2
    )
    assert paper.TRANSLATOR_BLEU["Hala translator"].value > paper.TRANSLATOR_BLEU["LFM2-1.2B (base)"].value
    # The means are the per-benchmark table's (PAPER.md: 69.85, 69.20, 51.45, 46.88, 41.92).
    means = {m: round(s.value, 2) for m, s in paper.AVERAGES.items()}
    assert means == {
        "Hala-9B": 69.85,
        "Fanar-1-9B-Instruct": 69.2,
        "Hala-1.2B": 51.45,
        "Hala-700M": 46.88,
        "Hala-350M": 41.92,
    }
    assert all(set(scores) == set(paper.BENCHMARKS) for scores in paper.BENCHMARK_SCORES.values())
    assert paper.average_for_choice("lfm2_tiny") is None


def test_run_dirs_and_failed_jobs(tmp_path, caplog):
    sweep_dir = tmp_path / "sweep"
    jobs = write_example_sweep(sweep_dir, t_values=(0.0, 1.0))
    (sweep_dir / "2").mkdir()  # a job that died before writing its summary
    runs = load_runs([sweep_dir])
    assert len(runs) == 2 and "no summary.json" in caplog.text and ": 2" in caplog.text
    # Run directories given one by one load the same runs.
    assert [r.name for r in load_runs(jobs)] == [r.name for r in runs]


def test_unreadable_summary_names_the_file(tmp_path):
    bad = tmp_path / "0"
    bad.mkdir()
    (bad / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match=str(bad / "summary.json")):
        load_runs([tmp_path])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no summary.json found"):
        load_runs([empty])


def test_metric_vs_t_is_skipped_without_t(tmp_path):
    sweep_dir = tmp_path / "s"
    write_example_sweep(sweep_dir, t_values=(0.5,), models=("lfm2_350m", "lfm2_700m"))
    for summary in sweep_dir.glob("*/summary.json"):  # runs without a merge step have no t
        data = json.loads(summary.read_text())
        data["config"].pop("merge")
        summary.write_text(json.dumps(data))
    written = write_report([sweep_dir], tmp_path / "out")
    assert "metric_vs_t" not in written and "benchmarks_by_model" in written


def test_cli(sweep, tmp_path, capsys):
    assert main([str(sweep), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.html").is_file()
    assert "report.md" in capsys.readouterr().out
    # Several directories need an explicit output folder; a missing directory is an error naming it.
    assert main([str(sweep / "0"), str(sweep / "1")]) == 2
    assert main([str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_wandb_report_is_built_offline_for_the_group(sweep):
    from hala_exp.reporting.wandb_report import build_wandb_report

    report = build_wandb_report(load_runs([sweep]), entity="someone", project="hala_exp")
    grid = report.blocks[-1]
    assert report.title == f"hala_exp: {sweep.name}"
    assert grid.runsets[0].filters == f"Group = '{sweep.name}' and JobType = 'eval'"
    titles = [p.title for p in grid.panels]
    assert titles == ["eval/average vs slerp t", "Arabic benchmarks", "Translator BLEU / chrF++"]
    # Stage runs log metrics relative to their step.
    assert "average" in grid.panels[1].metrics and "heldout/bleu" in grid.panels[2].metrics
    with pytest.raises(ValueError, match="group"):
        other = load_runs([sweep])
        other[0].group = "another"
        build_wandb_report(other, entity="someone", project="hala_exp")


def test_a_stand_in_is_labelled_as_one_and_meets_no_published_score(tmp_path):
    import math

    from hala_exp.reporting.plots import benchmarks_by_model

    sweep_dir = tmp_path / "s"
    write_example_sweep(sweep_dir, t_values=(0.5,), models=("lfm2_1.2b",))
    summary = sweep_dir / "0" / "summary.json"
    data = json.loads(summary.read_text())
    data["metrics"]["eval/local/arabic_mmlu_ht/acc_norm"] = 0.3  # a stand-in that borrows a paper name
    summary.write_text(json.dumps(data))
    fig = benchmarks_by_model(load_runs([sweep_dir]))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert "local/arabic_mmlu_ht" in labels and "ArbMMLU-HT" in labels
    paper_bars = ax.containers[-1]  # the published series is drawn last
    assert paper_bars.get_label() == "paper: Hala-1.2B"
    heights = dict(zip(labels, (bar.get_height() for bar in paper_bars)))
    assert math.isnan(heights["local/arabic_mmlu_ht"]) and heights["ArbMMLU-HT"] == pytest.approx(0.442)
