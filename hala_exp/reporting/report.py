"""Comparison report over pipeline runs: ``python -m hala_exp.reporting <sweep dir | run dirs...> [--out DIR]``.

Reads each run's ``summary.json`` and writes ``report.md`` and ``report.html`` (+ one PNG per plot) with a
table of every run's varying config choices, t and metrics; metric vs slerp t; per-benchmark bars per
model; BLEU/chrF++ of the translator variants; and the Hala report's published figures beside ours where
they exist. With ``--wandb-entity`` and ``--wandb-project`` it also saves a W&B Report of the runs' group
(needs W&B online). Examples::

    python -m hala_exp.reporting outputs/multirun/2026-11-27_10-00-00            # a sweep
    python -m hala_exp.reporting outputs/runs/A outputs/runs/B --out /tmp/cmp      # chosen runs
    python -m hala_exp.reporting <sweep> --wandb-entity me --wandb-project hala_exp

The functions below are what the analysis notebook calls.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hala_exp.reporting.plots import benchmarks_by_model, draw_all, metric_vs_t, translator_scores  # noqa: F401
from hala_exp.reporting.render import build_document, to_html, to_markdown
from hala_exp.reporting.runs import Run, comparison_table, load_runs, stage_table, varying_choices  # noqa: F401

log = logging.getLogger(__name__)


def default_out_dir(paths: list[str]) -> Path:
    """A sweep's report goes into the sweep directory; several run dirs need ``--out``."""
    if len(paths) == 1:
        return Path(paths[0]) / "report"
    raise ValueError("--out: required when comparing several directories")


def write_report(
    paths: list[str | Path], out_dir: str | Path | None = None, show_paper: bool = True
) -> dict[str, Path]:
    """Write report.md, report.html and the plots; returns {"markdown", "html", <plot name>: path}."""
    sources = [str(p) for p in paths]
    out = Path(out_dir) if out_dir else default_out_dir(sources)
    runs = load_runs(paths)
    out.mkdir(parents=True, exist_ok=True)
    images = draw_all(runs, out, show_paper=show_paper)
    doc = build_document(runs, images, out, sources)
    md, page = out / "report.md", out / "report.html"
    md.write_text(to_markdown(doc), encoding="utf-8")
    page.write_text(to_html(doc), encoding="utf-8")
    log.info("report of %d run(s): %s, %s", len(runs), md, page)
    return {"markdown": md, "html": page, **images}


def publish_wandb_report(paths: list[str | Path], entity: str, project: str, group: str | None = None) -> str:
    """Build and save the W&B Report of the runs' group (online); returns its URL."""
    from hala_exp.reporting.wandb_report import build_wandb_report

    report = build_wandb_report(load_runs(paths), entity=entity, project=project, group=group)
    report.save()
    return report.url


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hala_exp.reporting", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="a sweep directory (multirun/<time>), or run directories")
    parser.add_argument("--out", help="output directory (default: <sweep dir>/report)")
    parser.add_argument("--no-paper", action="store_true", help="leave the paper's figures out of the plots")
    parser.add_argument("--wandb-entity", help="with --wandb-project: also save a W&B Report (online)")
    parser.add_argument("--wandb-project")
    parser.add_argument("--wandb-group", help="W&B group to report on (default: the runs' group)")
    args = parser.parse_args(argv)
    if bool(args.wandb_entity) != bool(args.wandb_project):
        parser.error("--wandb-entity and --wandb-project go together")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        written = write_report(args.paths, args.out, show_paper=not args.no_paper)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, path in written.items():
        print(f"{name}: {path}")
    if args.wandb_entity:
        print(
            f"wandb report: {publish_wandb_report(args.paths, args.wandb_entity, args.wandb_project, args.wandb_group)}"
        )
    return 0
