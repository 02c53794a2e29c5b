"""The one path resolver of configured files (mix sources, parallel text, test sets, benchmark files).

* ``package://<package>/<path inside it>``: a file shipped inside an installed package
  (``package://hala_exp/assets/embedded/sft_en.jsonl``). Works from any directory, needs no Hydra resolver.
* An absolute path (``~`` expanded): as it is.
* A relative path: from the **project root** (the directory holding ``conf/`` and ``hala_exp/``), never
  from the current directory. Configs are written next to the project (``../shared/data``), and the jobs
  that read them start wherever Hydra multirun, SLURM or a notebook put them; the project root is the one
  base that means the same file in all of them. (With a non-editable install there is no project: give
  absolute or ``package://`` paths.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE_SCHEME = "package://"
# The directory above the hala_exp package: the repository root in a checkout.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve(path: str | Path) -> Path:
    """A configured path -> an absolute path (rules in the module docstring)."""
    path = str(path)
    if path.startswith(PACKAGE_SCHEME):
        package, _, rel = path[len(PACKAGE_SCHEME) :].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"{path}: package {package!r} is not installed")
        return Path(list(spec.submodule_search_locations)[0]) / rel
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p).resolve()
