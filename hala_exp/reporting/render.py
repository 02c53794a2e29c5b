"""Markdown and HTML renderings of one comparison: the same sections, the same tables, the same plots."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hala_exp.reporting import paper
from hala_exp.reporting.plots import paper_scale
from hala_exp.reporting.runs import (
    PAPER_METRIC,
    Run,
    Table,
    benchmark_keys,
    comparable_with_paper,
    comparison_table,
    format_cell,
    metric_sort_key,
    run_label,
    stage_table,
    translator_keys,
    translator_variants,
    varying_choices,
)


@dataclass
class Section:
    title: str
    text: str = ""
    table: Table | None = None
    image: str | None = None  # path relative to the report file


@dataclass
class Document:
    title: str
    intro: str
    sections: list[Section] = field(default_factory=list)


def paper_table(runs: list[Run]) -> Table | None:
    """Our six-benchmark mean beside the published one, for runs whose base has a Hala counterpart and whose
    eval measured the paper's six benchmarks on hub data (a local suite's average is another number)."""
    scores = [(r, paper.average_for_choice(r.choices.get("model"))) for r in runs if comparable_with_paper(r)]
    matched = [(r, p) for r, p in scores if p is not None]
    if not matched:
        return None
    # The paper reports percent; lighteval accuracies may be fractions: compare on the paper's scale.
    to_percent = 1 / paper_scale([r.metrics[PAPER_METRIC] for r, _ in matched])
    rows = []
    for run, published in matched:
        ours = run.metrics[PAPER_METRIC] * to_percent
        rows.append(
            [
                run.name,
                run.choices.get("model"),
                run.t,
                ours,
                published.model,
                published.value,
                ours - published.value,
                published.source,
            ]
        )
    return Table(
        ["run", "model", "t", "ours (percent)", "paper model", "paper (percent)", "ours - paper", "source"], rows
    )


def paper_benchmark_table(runs: list[Run]) -> Table | None:
    """Per benchmark, ours beside the published score ([A]), for the same runs as ``paper_table``."""
    benches = benchmark_keys(runs)
    rows = []
    for run in runs:
        published = paper.benchmark_scores_for_choice(run.choices.get("model"))
        if published is None or not comparable_with_paper(run):
            continue
        model, scores = published
        to_percent = 1 / paper_scale([run.metrics[k] for k in benches.values() if k in run.metrics])
        for bench in paper.BENCHMARKS:
            ours = run.metrics.get(benches.get(bench, ""))
            ours = None if ours is None else ours * to_percent
            delta = None if ours is None else ours - scores[bench]
            rows.append([run.name, run.t, paper.BENCHMARK_TITLES[bench], ours, model, scores[bench], delta])
    if not rows:
        return None
    return Table(["run", "t", "benchmark", "ours (percent)", "paper model", "paper (percent)", "ours - paper"], rows)


FLORES_VARIETIES = {  # FLORES-200 code -> variety (the dialect files of ../shared/data)
    "arb_Arab": "Modern Standard Arabic",
    "arz_Arab": "Egyptian",
    "ary_Arab": "Moroccan",
    "acm_Arab": "Mesopotamian (Iraqi)",
    "acq_Arab": "Ta'izzi-Adeni (Yemeni)",
    "aeb_Arab": "Tunisian",
    "ajp_Arab": "South Levantine",
    "apc_Arab": "North Levantine",
    "ars_Arab": "Najdi (Saudi)",
}


def flores_variety(testset: str, run: Run) -> str | None:
    """``flores_arz_Arab`` -> arz_Arab; ``flores_devtest`` -> the run's ``language.flores`` (MSA for Arabic)."""
    if testset == "flores_devtest":
        return str((run.config.get("language") or {}).get("flores") or "arb_Arab")
    code = testset.removeprefix("flores_")
    return code if testset.startswith("flores_") and code in FLORES_VARIETIES else None


def variety_table(runs: list[Run]) -> Table | None:
    """BLEU / chrF++ per FLORES-200 Arabic variety (rows) and translator (columns): how far from MSA it reaches."""
    sets = translator_keys(runs)
    variants = translator_variants(runs)
    keys = varying_choices(variants)
    found: dict[str, str] = {}  # variety code -> test set
    for name in sets:
        code = next((c for c in (flores_variety(name, v) for v in variants) if c), None)
        if code and code not in found:
            found[code] = name
    if len(found) < 2:
        return None
    order = sorted(
        found, key=lambda c: (c != "arb_Arab", list(FLORES_VARIETIES).index(c) if c in FLORES_VARIETIES else 99)
    )
    columns = ["variety", "code"]
    for v in variants:
        label = run_label(v, keys, with_t=False) if keys else v.name
        columns += [f"{label} BLEU", f"{label} chrF++"]
    rows = []
    for code in order:
        row: list[Any] = [FLORES_VARIETIES.get(code, code), code]
        for v in variants:
            row += [v.metrics.get(sets[found[code]].get(kind, "")) for kind in ("bleu", "chrf")]
        rows.append(row)
    return Table(columns, rows)


def all_metrics_table(runs: list[Run]) -> Table:
    """Every metric (rows) of every run (columns): the long tail the main table leaves out."""
    keys = sorted({k for r in runs for k in r.metrics}, key=metric_sort_key)
    return Table(["metric", *[r.name for r in runs]], [[k, *[r.metrics.get(k) for r in runs]] for k in keys])


def build_document(runs: list[Run], images: dict[str, Path], out_dir: Path, sources: list[str]) -> Document:
    groups = sorted({r.group for r in runs if r.group})
    doc = Document(
        title="hala_exp comparison" + (f": {', '.join(groups)}" if groups else ""),
        intro=f"{len(runs)} run(s) from {', '.join(sources)}. Choices shown are those that differ between runs; "
        f"t is the slerp t of the merge step. Paper: {paper.CITATION}.",
    )
    doc.sections.append(Section("Runs", table=comparison_table(runs)))
    published = paper_table(runs)
    doc.sections.append(
        Section(
            "Beside the paper",
            text="The paper's six-benchmark mean (percent) of the Hala model built from each run's base, beside "
            "ours for runs that measured those six benchmarks on hub data (eval/six_benchmark_mean). The paper's "
            f"means are recomputed from {paper.ARALINGBENCH_TABLE}; the paper merges at t = {paper.SLERP_T:g} ([S])."
            if published
            else "No run both uses a base the paper reports on and measured the paper's six benchmarks on hub data "
            "(eval/six_benchmark_mean), so no published figure applies: eval/average of a local or partial suite "
            "is another number. The translator plot shows the paper's BLEU / chrF++ on its own test set ([S]).",
            table=published,
        )
    )
    per_benchmark = paper_benchmark_table(runs)
    if per_benchmark:
        doc.sections.append(
            Section(
                "Beside the paper, per benchmark",
                text=f"Published zero-shot scores: {paper.ARALINGBENCH_TABLE}.",
                table=per_benchmark,
            )
        )
    varieties = variety_table(runs)
    if varieties:
        doc.sections.append(
            Section(
                "Translator per Arabic variety (FLORES-200 devtest)",
                text="The same English sentences scored against each variety's reference. The paper's stated "
                f"limitation: {paper.LIMITATION_MSA_ONLY}.",
                table=varieties,
            )
        )
    captions = {
        "metric_vs_t": (
            "Metric vs slerp t",
            "The star is the paper's six-benchmark mean at its t ([A], recomputed), drawn only for runs that "
            "measured those six on hub data.",
        ),
        "benchmarks_by_model": (
            "Benchmarks per model",
            "Hatched bars are published figures ([A]), drawn only beside runs that measured the paper's six on hub "
            "data; local/ benchmarks are stand-ins and never meet one.",
        ),
        "translator_scores": (
            "Translator BLEU / chrF++",
            "One bar per distinct translator (runs that share the "
            "translator's fingerprint measured the same model). The paper's BLEU / chrF++ ([S]) are on its own "
            "EN->AR MMLU set, shown as a separate group.",
        ),
    }
    for name, path in images.items():
        title, text = captions.get(name, (name, ""))
        doc.sections.append(Section(title, text=text, image=str(Path(path).resolve().relative_to(out_dir.resolve()))))
    doc.sections.append(
        Section("Steps: ran or cached", text="What each run computed and what it reused.", table=stage_table(runs))
    )
    doc.sections.append(Section("All metrics", table=all_metrics_table(runs)))
    return doc


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", "", doc.intro, ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text, ""]
        if section.table is not None:
            table = section.table
            lines.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
            lines.append("|" + "|".join("---" for _ in table.columns) + "|")
            for row in table.rows:
                lines.append("| " + " | ".join(_md_escape(format_cell(v)) for v in row) + " |")
            lines.append("")
        if section.image:
            lines += [f"![{section.title}]({section.image})", ""]
    return "\n".join(lines)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}img{max-width:100%}"""


def to_html(doc: Document) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        "<html><head><meta charset='utf-8'>",
        f"<title>{esc(doc.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{esc(doc.title)}</h1>",
        f"<p>{esc(doc.intro)}</p>",
    ]
    for section in doc.sections:
        parts.append(f"<h2>{esc(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{esc(section.text)}</p>")
        if section.table is not None:
            parts.append(
                "<table><thead><tr>"
                + "".join(f"<th>{esc(c)}</th>" for c in section.table.columns)
                + "</tr></thead><tbody>"
            )
            for row in section.table.rows:
                parts.append("<tr>" + "".join(f"<td>{esc(format_cell(v))}</td>" for v in row) + "</tr>")
            parts.append("</tbody></table>")
        if section.image:
            parts.append(f"<img src='{esc(section.image)}' alt='{esc(section.title)}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
