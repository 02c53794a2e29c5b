"""`python -m hala_exp [overrides]`: compose the config with Hydra, validate it, run the pipeline.

Only hydra/omegaconf are imported at start-up, so `--cfg job`, `--help` and config errors are instant.

``main`` wraps Hydra's entry point: it refuses secrets on the command line before Hydra writes anything,
and turns every expected failure (Hydra's own override errors included) into one line and an exit code:
2 for the user's mistakes, 1 for the environment's (``hala_exp.core.errors``); ``HALA_DEBUG=1`` adds the
traceback.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
import traceback
from pathlib import Path
from typing import NoReturn, cast

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("hala_exp")

# Choices that name a run in W&B and in reports.
TAGGED_GROUPS = ("model", "translator", "data", "quantize", "translate", "train", "merge", "eval", "language")


def _register_resolvers() -> None:
    # `${hala_uid:}` in conf/hydra: a per-process suffix that keeps runs started in the same second apart.
    # Cached, and Hydra copies the resolver cache into every sweep job's config: one value per sweep.
    if not OmegaConf.has_resolver("hala_uid"):
        OmegaConf.register_resolver("hala_uid", _run_suffix, use_cache=True)


def _run_suffix() -> str:
    return secrets.token_hex(3)


_register_resolvers()


# An absolute path: Hydra resolves a relative one against the caller, which differs between `python -m hala_exp`
# and the `hala-exp` console script (that imports this module as hala_exp.__main__).
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(config_path=CONF_DIR, config_name="config")
def app(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    try:
        saved = list((run_dir / hc.output_subdir).glob("*.yaml")) if hc.output_subdir else []
        if multirun:
            saved.append(Path(hc.sweep.dir) / "multirun.yaml")  # the sweep's whole config, written once
        _redact_saved_yaml(saved)
        return _run(cfg, hc, run_dir)
    except Exception as e:
        if not multirun:
            _exit(e, log.error)
        from hala_exp.core.errors import describe

        # A sweep job's failure belongs to the sweeper (Optuna records a failed trial and goes on): log the
        # line in the job's log and let Hydra collect the exception; main() prints it if the sweep stops.
        log.error(describe(e)[1])
        raise


def _run(cfg: DictConfig, hc, run_dir: Path) -> float | None:
    from hala_exp.core.pipeline import Pipeline, format_table, git_commit
    from hala_exp.core.tracking import redact

    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    group = cfg.logger.group or (Path(hc.sweep.dir).name if multirun else run_dir.name)
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra") and v is not None}
    tags = [f"{g}:{choices[g]}" for g in TAGGED_GROUPS if g in choices]
    pipeline = Pipeline.from_config(cfg, group=group, tags=tags)
    summary_path = run_dir / "summary.json"
    run_info = {
        "name": run_dir.name if not multirun else f"{group}/{hc.job.num}",
        "dir": str(run_dir),
        "group": group,
        "overrides": redact(list(hc.overrides.task)),
        "choices": choices,
        "git_commit": git_commit(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    summary = pipeline.run(summary_path, run_info, cast(dict, OmegaConf.to_container(cfg, resolve=True)))
    print(format_table(summary))
    if "pending" in summary:
        print(f"Pending: {summary['pending']}\nRerun the same command once the other jobs are done.")
    print(f"Run summary: {summary_path}")
    return summary["metrics"].get(pipeline.objective) if pipeline.objective else None


def _redact_saved_yaml(paths: list[Path]) -> None:
    """Hydra saved config.yaml, hydra.yaml, overrides.yaml (and a sweep's multirun.yaml) before the app ran:
    redact secrets in place (a secret reaching the config from a config file, or a sweep parameter)."""
    from hala_exp.core.store import atomic_write_text
    from hala_exp.core.tracking import redact

    for path in sorted(p for p in paths if p.is_file()):
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        clean = redact(data)
        if clean != data:
            atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(clean)))


def refuse_secret_overrides(argv: list[str]) -> None:
    """A secret given as an override would be written by Hydra to .hydra/, the log and summary.json:
    refuse it before Hydra runs, and say which environment variable to use instead."""
    from hala_exp.core.schema import ConfigError
    from hala_exp.core.tracking import env_var_for, secret_override_key

    for arg in argv:
        key = secret_override_key(arg)
        if key is not None:
            raise ConfigError(
                f"{key}: secrets are not accepted on the command line (Hydra would write them to disk); "
                f"set the environment variable {env_var_for(key)} instead"
            )


def _exit(exc: BaseException, say=None) -> NoReturn:
    from hala_exp.core.errors import debug, describe

    code, line = describe(exc)
    if debug():
        traceback.print_exception(exc)
    (say or (lambda msg: print(msg, file=sys.stderr)))(line)
    sys.exit(code)


def main() -> None:
    """Console entry point (`python -m hala_exp`, `hala-exp`)."""
    try:
        refuse_secret_overrides(sys.argv[1:])
    except Exception as e:
        _exit(e)
    # Hydra's own errors (bad overrides, unknown options, an output directory it cannot create) are raised to
    # us instead of being printed with a traceback and exit code 1.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        app()
    except Exception as e:
        _exit(e)


if __name__ == "__main__":
    main()
