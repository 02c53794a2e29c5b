"""Where evaluation files live: package assets, the shared data root, or plain paths."""

from __future__ import annotations

from pathlib import Path

from hala_exp.data.sources import PACKAGE_SCHEME, resolve_path

# The directory above the hala_exp package: the repository root in a checkout.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve(path: str) -> Path:
    """``package://hala_exp/...`` -> inside the installed package; an absolute path as it is; a relative path
    against the project root (not the current directory), so ``../shared/data`` means the same from any cwd."""
    if path.startswith(PACKAGE_SCHEME):
        return resolve_path(path)
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()
