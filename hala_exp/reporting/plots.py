"""The report's plots (matplotlib, Agg): metric vs slerp t, benchmarks per model, translator BLEU/chrF++.

Each function takes loaded runs, draws one figure, and returns it (or None when the runs hold nothing to
draw, e.g. no run has a t). The paper's published figures are drawn beside ours where our run maps to a
published model (``hala_exp.reporting.paper``). The paper reports percentages; when our scores are fractions
(every value <= 1, as lighteval's accuracies are) the paper's figure is scaled to a fraction too, and
the axis label says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hala_exp.reporting import paper
from hala_exp.reporting.runs import (
    HEADLINE_METRIC,
    Run,
    benchmark_keys,
    closest_to_t,
    comparable_with_paper,
    run_label,
    translator_keys,
    translator_variants,
    varying_choices,
)

PAPER_STYLE = {"color": "0.35", "hatch": "//", "edgecolor": "0.2"}


def _pyplot():
    import sys

    import matplotlib

    if "ipykernel" not in sys.modules:  # in a notebook keep its inline backend; elsewhere files only (no display)
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def paper_scale(values: list[float]) -> float:
    """1.0 if our scores are percentages, 0.01 if they are fractions (the paper's are percentages)."""
    return 0.01 if values and max(abs(v) for v in values) <= 1.0 else 1.0


def save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def metric_vs_t(runs: list[Run], metric: str = HEADLINE_METRIC, show_paper: bool = True):
    """One line per combination of the other varying choices; the paper's t=0.5 result as a star."""
    points = [r for r in runs if r.t is not None and metric in r.metrics]
    if not points:
        return None
    plt = _pyplot()
    keys = varying_choices(points)
    lines: dict[str, list[Run]] = {}
    for run in points:
        lines.setdefault(run_label(run, keys, with_t=False) if keys else "ours", []).append(run)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    scale = paper_scale([r.metrics[metric] for r in points])
    starred = set()
    for label, members in lines.items():
        members.sort(key=lambda r: r.t or 0.0)  # every point has a t (filtered above)
        ax.plot([r.t for r in members], [r.metrics[metric] for r in members], marker="o", label=label)
        comparable = metric == HEADLINE_METRIC and all(comparable_with_paper(r) for r in members)
        published = paper.average_for_choice(members[0].choices.get("model")) if comparable else None
        if show_paper and published and published.model not in starred:
            starred.add(published.model)
            ax.plot(
                [paper.SLERP_T],
                [published.value * scale],
                marker="*",
                markersize=14,
                linestyle="none",
                color="black",
                label=f"paper: {published.model} (t={paper.SLERP_T:g})",
            )
    ax.set_xlabel("slerp t (0 = base, 1 = SFT model)")
    ax.set_ylabel(metric + (" (fraction)" if scale != 1.0 else ""))
    ax.set_xlim(-0.05, 1.05)
    ax.set_title(f"{metric} vs slerp t")
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def _legend(ax: Any) -> None:
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def benchmarks_by_model(runs: list[Run], show_paper: bool = True):
    """Grouped bars: one group per benchmark (+ the average), one bar per model; paper averages hatched.

    "Model" is a combination of the varying choices; of a t sweep's runs per model, the one merged at the
    paper's t (or the closest) stands for it. With nothing but t varying, every t gets its bar.
    """
    benches = benchmark_keys(runs)
    if not benches:
        return None
    plt = _pyplot()
    import numpy as np

    keys = varying_choices(runs)
    if keys:
        runs = closest_to_t(runs, keys, paper.SLERP_T)
    groups = list(benches) + ([HEADLINE_METRIC] if any(HEADLINE_METRIC in r.metrics for r in runs) else [])
    series: list[tuple[str, list[float | None], dict]] = []
    for run in runs:
        values = [run.metrics.get(benches[g]) if g in benches else run.metrics.get(g) for g in groups]
        series.append((run_label(run, keys), values, {}))
    ours = [v for _, vals, _ in series for v in vals if v is not None]
    scale = paper_scale(ours)
    if show_paper and HEADLINE_METRIC in groups:
        for model in dict.fromkeys(r.choices.get("model") for r in runs if comparable_with_paper(r)):
            published = paper.average_for_choice(model)
            if published:
                values = [paper.BENCHMARK_SCORES.get(published.model, {}).get(_bench_name(g)) for g in groups[:-1]]
                values = [None if v is None else v * scale for v in values] + [published.value * scale]
                series.append((f"paper: {published.model}", values, PAPER_STYLE))
    x = np.arange(len(groups))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.1 * len(groups) + 0.3 * len(series)), 4.4))
    for i, (label, values, style) in enumerate(series):
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=label, **style)
    ax.set_xticks(
        x,
        [paper.BENCHMARK_TITLES.get(_bench_name(g), _bench_name(g)) if g in benches else "average" for g in groups],
        rotation=20,
        ha="right",
    )
    ax.set_ylabel("score" + (" (fraction)" if scale != 1.0 else ""))
    ax.set_title("Arabic benchmarks per model")
    ax.grid(axis="y", alpha=0.3)
    _legend(ax)
    return fig


def _bench_name(group: str) -> str:
    """``oall/arabic_mmlu`` -> ``arabic_mmlu``: the paper's table knows benchmarks by their last name. A stand-in
    (``local/<name>``) keeps its whole name: it is labelled as a stand-in and never meets a published score."""
    return group if group.startswith("local/") else group.rsplit("/", 1)[-1]


def translator_scores(runs: list[Run], show_paper: bool = True):
    """BLEU and chrF++ per test set, one bar per distinct translator; the paper's before/after beside ([S])."""
    sets = translator_keys(runs)
    if not sets:
        return None
    plt = _pyplot()
    import numpy as np

    variants = translator_variants(runs)
    keys = varying_choices(variants)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    for ax, kind, title in ((axes[0], "bleu", "BLEU"), (axes[1], "chrf", "chrF++")):
        names = [s for s in sets if kind in sets[s]]
        series: list[tuple[str, list[Any], dict[str, Any]]] = [
            (run_label(v, keys, with_t=False) if keys else v.name, [v.metrics.get(sets[s][kind]) for s in names], {})
            for v in variants
        ]
        if show_paper:
            names = names + ["paper test set"]
            series = [(label, vals + [None], style) for label, vals, style in series]
            published = paper.TRANSLATOR_BLEU if kind == "bleu" else paper.TRANSLATOR_CHRF
            for label, score in published.items():
                series.append((f"paper: {label}", [None] * (len(names) - 1) + [score.value], PAPER_STYLE))
        x = np.arange(len(names))
        width = 0.8 / max(len(series), 1)
        for i, (label, values, style) in enumerate(series):
            style = dict(style)
            if label.startswith("paper: LFM2"):
                style["hatch"] = ".."
            heights = [np.nan if v is None else v for v in values]
            ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=label, **style)
        ax.set_xticks(x, names, rotation=15, ha="right")
        ax.set_title(f"translator {title}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    return fig


PLOTS: dict[str, Callable[..., Any]] = {
    "metric_vs_t": metric_vs_t,
    "benchmarks_by_model": benchmarks_by_model,
    "translator_scores": translator_scores,
}


def draw_all(runs: list[Run], out_dir: str | Path, show_paper: bool = True) -> dict[str, Path]:
    """Every plot the runs support, saved as ``<out_dir>/<name>.png``; returns the written files."""
    written = {}
    for name, draw in PLOTS.items():
        fig = draw(runs, show_paper=show_paper)
        if fig is not None:
            written[name] = save(fig, Path(out_dir) / f"{name}.png")
    return written
