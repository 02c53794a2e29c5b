"""Markdown and HTML renderings of one comparison: the same sections, the same tables, the same plots."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from hala_exp.reporting import paper
from hala_exp.reporting.plots import paper_scale
from hala_exp.reporting.runs import (
    HEADLINE_METRIC,
    Run,
    Table,
    comparison_table,
    format_cell,
    metric_sort_key,
    stage_table,
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
    """Our six-benchmark average beside the published one, for runs whose base has a Hala counterpart."""
    matched = [(r, paper.average_for_choice(r.choices.get("model"))) for r in runs]
    matched = [(r, p) for r, p in matched if p is not None]
    if not matched:
        return None
    # The paper reports percent; lighteval accuracies are fractions: compare on the paper's scale.
    to_percent = 1 / paper_scale([r.metrics[HEADLINE_METRIC] for r, _ in matched if HEADLINE_METRIC in r.metrics])
    rows = []
    for run, published in matched:
        ours = run.metrics.get(HEADLINE_METRIC)
        ours = None if ours is None else ours * to_percent
        delta = None if ours is None else ours - published.value
        rows.append(
            [run.name, run.choices.get("model"), run.t, ours, published.model, published.value, delta, published.source]
        )
    return Table(
        ["run", "model", "t", "ours (percent)", "paper model", "paper (percent)", "ours - paper", "source"], rows
    )


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
            text="Published six-benchmark averages (percent) of the Hala model built from each run's base. The paper "
            f"merges at t = {paper.SLERP_T:g}."
            if published
            else "No run uses a base the paper reports on (e.g. tiny or embedded models), so no published figure "
            "applies. The translator plot still shows the paper's BLEU for scale.",
            table=published,
        )
    )
    captions = {
        "metric_vs_t": ("Metric vs slerp t", "The star is the paper's result at its t."),
        "benchmarks_by_model": ("Benchmarks per model", "Hatched bars are published figures."),
        "translator_scores": (
            "Translator BLEU / chrF++",
            "One bar per distinct translator (runs that share the "
            "translator's fingerprint measured the same model). The paper's test set is its own.",
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
