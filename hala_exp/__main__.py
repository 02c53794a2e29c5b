"""`python -m hala_exp [overrides]`: compose the config with Hydra, validate it, run the pipeline.

Only hydra/omegaconf are imported at start-up, so `--cfg job`, `--help` and config errors are instant.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import cast

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("hala_exp")

# Choices that name a run in W&B and in reports.
TAGGED_GROUPS = ("model", "translator", "data", "quantize", "translate", "train", "merge", "eval", "language")


@hydra.main(config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from hala_exp.core.pipeline import Pipeline, format_table, git_commit
    from hala_exp.core.schema import ConfigError

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    group = cfg.logger.group or (Path(hc.sweep.dir).name if multirun else run_dir.name)
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and v is not None}
    tags = [f"{g}:{choices[g]}" for g in TAGGED_GROUPS if g in choices]
    try:
        pipeline = Pipeline.from_config(cfg, group=group, tags=tags)
    except ConfigError as e:
        log.error("config error: %s", e)
        sys.exit(2)
    summary_path = run_dir / "summary.json"
    run_info = {
        "name": run_dir.name if not multirun else f"{group}/{hc.job.num}",
        "dir": str(run_dir),
        "group": group,
        "overrides": list(hc.overrides.task),
        "choices": choices,
        "git_commit": git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        summary = pipeline.run(summary_path, run_info, cast(dict, OmegaConf.to_container(cfg, resolve=True)))
    except ConfigError as e:
        log.error("config error: %s", e)
        sys.exit(2)
    print(format_table(summary))
    if "pending" in summary:
        print(f"Pending: {summary['pending']}\nRerun the same command once the other jobs are done.")
    print(f"Run summary: {summary_path}")
    return summary["metrics"].get(pipeline.objective) if pipeline.objective else None


if __name__ == "__main__":
    main()
