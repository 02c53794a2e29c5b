"""Free-space check before a stage runs: fail with one line instead of a disk-full error hours in.

A stage module may define ``estimate_output_bytes(config, inputs) -> int``; otherwise the estimate comes
from its kind: quantize and merge need about the size of their input model's weights, train four times that
(``MODEL_COPIES``); translate about its local source files times ``TRANSLATION_GROWTH``. The model stage
offers its own estimate (a de-quantised GGUF package).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hala_exp.core.errors import InsufficientSpace
from hala_exp.core.housekeeping import human, tree_size

# Our choice: Arabic text takes about 2 bytes per character in UTF-8 where English takes 1, and a translate
# artifact keeps the source beside its translation plus per-shard copies.
TRANSLATION_GROWTH = 3.0
# Copies of the input model's weights a stage writes (our choice): quantize and merge write one model (FP8 is
# smaller, so 1 is an upper bound); train keeps a checkpoint (weights plus Adam's two moments: 3) and exports
# the fine-tuned model (1).
MODEL_COPIES = {"quantize": 1, "merge": 1, "train": 4}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def model_bytes(path: str | Path | None) -> int:
    """Bytes of a local model's weights (0 for a hub id or anything not on disk)."""
    if not path:
        return 0
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    if not p.is_dir():
        return 0
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES)


def estimate_output_bytes(kind: str, module: Any, config: Any, inputs: dict[str, dict[str, str]]) -> int:
    own = getattr(module, "estimate_output_bytes", None)
    if own is not None:
        return int(own(config, inputs))
    if kind == "quantize" and getattr(config, "method", None) == "none":
        return 0  # passes its input through
    if kind in MODEL_COPIES:
        return MODEL_COPIES[kind] * model_bytes((inputs.get("model") or {}).get("model"))
    if kind == "translate":
        files = getattr(module, "input_files", None)
        sources = [Path(f) for f in (files(config) if files else [])]
        return int(TRANSLATION_GROWTH * sum(tree_size(f) if f.is_dir() else f.stat().st_size for f in sources))
    return 0


def check_free_space(step: str, kind: str, module: Any, config: Any, inputs: dict, out_dir: Path) -> int:
    """Raise InsufficientSpace when the estimate exceeds the free space where the stage writes."""
    need = estimate_output_bytes(kind, module, config, inputs)
    if need <= 0:
        return need
    probe = Path(out_dir)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        raise InsufficientSpace(
            f"stage {step} ({kind}) needs about {human(need)} in {out_dir} but {human(free)} is free; "
            "free space or move paths.cache_dir"
        )
    return need
