"""Subprocess entry point for multi-device fits: ``python -m hala_exp.training.worker <request.json>``.

Lightning's DDP/FSDP launchers start one process per device by re-executing the current command; run
from here, that command is this worker and not the Hydra app, so the pipeline is never re-launched.
Rank 0 appends metrics to ``<request>.metrics.jsonl`` (the stage forwards them to its logger) and writes
``<request>.result.json`` when done.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s [%(process)d] %(message)s")
    request_path = Path(argv[0])
    request = json.loads(request_path.read_text())
    metrics_path = request_path.with_suffix(".metrics.jsonl")

    def log_fn(metrics: dict, step: int | None = None) -> None:
        with open(metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, "metrics": metrics}) + "\n")

    from hala_exp.training.fit import fit

    result = fit(request, log_fn)
    if result:  # rank 0 only
        tmp = request_path.with_suffix(".result.json.tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(request_path.with_suffix(".result.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
