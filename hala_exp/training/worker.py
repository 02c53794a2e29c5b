"""Subprocess entry point for multi-device fits: ``python -m hala_exp.training.worker <request.json>``.

Lightning's DDP/FSDP launchers start one process per device by re-executing the current command; run
from here, that command is this worker and not the Hydra app, so the pipeline is never re-launched.
The request is ``FitRequest.to_json()``, rebuilt here through the config schema. Rank 0 appends metrics to
``<request>.metrics.jsonl`` (the stage forwards them to its logger) and writes ``<request>.result.json``
when done. Exit code 3: preempted by SIGTERM after checkpointing (rerun to resume).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

PREEMPTED = 3  # exit code: stopped on SIGTERM after checkpointing


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s [%(process)d] %(message)s")
    request_path = Path(argv[0])
    from hala_exp.training.fit import FitRequest, Preempted, fit

    request = FitRequest.from_json(json.loads(request_path.read_text()))
    metrics_path = request_path.with_suffix(".metrics.jsonl")

    def log_fn(metrics: dict, step: int | None = None) -> None:
        with open(metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, "metrics": metrics}) + "\n")

    try:
        result = fit(request, log_fn)
    except Preempted as e:
        logging.getLogger(__name__).warning("%s", e)
        return PREEMPTED
    if result:  # rank 0 only
        tmp = request_path.with_suffix(".result.json.tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(request_path.with_suffix(".result.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
