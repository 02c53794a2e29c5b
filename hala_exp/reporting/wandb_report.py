"""The same comparison as a W&B Report (wandb-workspaces), over the W&B runs of one group.

Every job of a sweep logs into one W&B group, one W&B run per stage that ran (``job_type`` = the stage
kind, summary metrics named relative to the step: ``average``, ``arabic_exams/acc_norm``,
``heldout/bleu``), so the report selects the group's ``eval`` runs. The t axis reads the W&B config key
``T_CONFIG_KEY``: every stage run's W&B config is the job's whole resolved config (plus ``stage`` and
``step_config``), so ``merge.t`` is there. Building the report object needs no network; ``save()`` does (and an
API key in ``WANDB_API_KEY``). Entity and project must be given: the library's default entity lookup
would call the API.
"""

from __future__ import annotations

from typing import Any

from hala_exp.reporting import paper
from hala_exp.reporting.runs import (
    BENCHMARK_STEP,
    HEADLINE_METRIC,
    TRANSLATOR_STEP,
    Run,
    benchmark_keys,
    translator_keys,
)

T_CONFIG_KEY = "merge.t"


def stage_metric(key: str) -> str:
    """``eval/arabic_exams/acc_norm`` -> ``arabic_exams/acc_norm``: stage runs log names relative to the step."""
    return key.split("/", 1)[1]


def build_wandb_report(runs: list[Run], entity: str, project: str, group: str | None = None) -> Any:
    """A ``wandb_workspaces.reports.v2.Report`` comparing the runs' group; not saved."""
    import wandb_workspaces.reports.v2 as wr

    groups = sorted({r.group for r in runs if r.group})
    group = group or (groups[0] if len(groups) == 1 else None)
    if not group:
        raise ValueError(f"runs span groups {groups or '(none)'}: pass the W&B group to report on")
    # Both eval steps (benchmarks and translator) are stage kind "eval".
    runset = wr.Runset(
        entity=entity, project=project, name=group, filters=f"Group = '{group}' and JobType = '{BENCHMARK_STEP}'"
    )
    average = stage_metric(HEADLINE_METRIC)
    panels: list[Any] = [
        wr.ScatterPlot(title=f"{HEADLINE_METRIC} vs slerp t", x=wr.Config(T_CONFIG_KEY), y=average),
    ]
    benches: list[Any] = [stage_metric(k) for k in benchmark_keys(runs).values()]
    if benches:
        panels.append(wr.BarPlot(title="Arabic benchmarks", metrics=benches + [average], orientation="v"))
    translation: list[Any] = [
        stage_metric(key)
        for pair in translator_keys(runs).values()
        for key in pair.values()
        if key.startswith(TRANSLATOR_STEP + "/")
    ]
    if translation:
        panels.append(wr.BarPlot(title="Translator BLEU / chrF++", metrics=translation, orientation="v"))
    reference = "; ".join(f"{s.model} {s.value:.2f}" for s in paper.AVERAGES.values())
    return wr.Report(
        entity=entity,
        project=project,
        title=f"hala_exp: {group}"[:128],
        description=f"{len(runs)} pipeline run(s) of group {group}",
        blocks=[
            wr.H1(f"Group {group}"),
            wr.P(
                f"Hala six-benchmark means ({paper.MEAN_OF_TABLE}): {reference}; comparable only with runs that "
                f"log six_benchmark_mean (the six on hub data). The paper merges at t = {paper.SLERP_T:g} ([S])."
            ),
            wr.PanelGrid(runsets=[runset], panels=panels),
        ],
    )
