"""A synthetic sweep directory in the pipeline's ``summary.json`` format.

For trying the report and the notebook without running anything, and for their tests. The numbers are
made up (a smooth function of t and model size plus a little noise) and every run says so in its name.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from hala_exp.reporting.paper import BENCHMARKS

STEPS = (
    "teacher",
    "quantize",
    "translate_seed",
    "bilingual",
    "translator_base",
    "train_translator",
    "eval_translator",
    "translate_sft",
    "base",
    "train",
    "merge",
    "eval",
)
PER_T_STEPS = ("merge", "eval")  # what a t sweep recomputes


def write_example_sweep(
    sweep_dir: str | Path, t_values=(0.0, 0.5, 1.0), models=("lfm2_tiny",), group: str | None = None, seed: int = 0
) -> list[Path]:
    """Write ``<sweep_dir>/<job>/summary.json`` for every (model, t); returns the job directories."""
    sweep_dir = Path(sweep_dir)
    group = group or sweep_dir.name
    rng = random.Random(seed)
    jobs: list[Path] = []
    for m, model in enumerate(models):
        for i, t in enumerate(t_values):
            job = len(jobs)
            run_dir = sweep_dir / str(job)
            run_dir.mkdir(parents=True, exist_ok=True)
            first_of_model = i == 0
            stages = {
                step: {
                    "kind": "eval" if step.startswith("eval") else step,
                    "fingerprint": f"{step}-{m}" + (f"-{t:g}" if step in PER_T_STEPS else ""),
                    "status": "ran"
                    if (step in PER_T_STEPS or (first_of_model and (m == 0 or step in ("base", "train"))))
                    else "cached",
                    "artifact": str(run_dir / "artifact" / step),
                    "seconds": rng.uniform(0.1, 5.0),
                    "wandb_run_id": None,
                }
                for step in STEPS
            }
            strength = 0.30 + 0.05 * m + 0.08 * t * (1 - t)  # peaks between base and SFT model
            metrics = {f"eval/{b}/acc_norm": round(strength + rng.uniform(-0.03, 0.03), 4) for b in BENCHMARKS}
            metrics["eval/average"] = round(sum(metrics.values()) / len(BENCHMARKS), 4)
            metrics["eval/six_benchmark_mean"] = metrics["eval/average"]  # it fakes the paper's six on hub data
            metrics.update(
                {
                    "eval_translator/heldout/bleu": 12.5 + 3 * m,
                    "eval_translator/heldout/chrf": 35.0 + 4 * m,
                    "train/loss": round(2.0 - 0.2 * m, 3),
                }
            )
            summary = {
                "run": {
                    "name": f"example-{model}-t{t:g}",
                    "dir": str(run_dir),
                    "group": group,
                    "overrides": [f"model={model}", f"merge.t={t}"],
                    "choices": {
                        "model": model,
                        "data": "embedded",
                        "quantize": "fp8_dynamic",
                        "merge": "slerp",
                        "train": "cpu_tiny",
                        "logger": "none",
                    },
                    "git_commit": None,
                    "started": "2026-01-01T00:00:00",
                },
                "stages": stages,
                "metrics": metrics,
                "config": {"merge": {"method": "slerp", "t": t}, "model": {"name": model}},
            }
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
            jobs.append(run_dir)
    return jobs
