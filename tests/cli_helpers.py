"""Run `python -m hala_exp` in this process, and a config search path with a model-free pipeline.

``fake_pipeline_conf`` writes ``pipeline/fakes.yaml`` (the fake stage kinds of ``pipeline_fakes``: a source
and a doubler) plus any extra config files; with ``pipeline_fakes.patch`` the real entry point (Hydra, run
directories, tracking, summary) runs in seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

FAKE_PIPELINE = """\
stages: [source, double]
objective: double/value
steps:
  source:
    kind: model
    config: {value: 3, runtime: {sleep: 0}}
  double:
    kind: train
    inputs: {data: source}
    config: {factor: 2}
"""


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`python -m hala_exp ARGS` in this process; returns the exit code and everything it printed."""
    from hala_exp import __main__ as app

    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # main() sets it; monkeypatch restores it afterwards
    monkeypatch.setattr(sys, "argv", ["hala_exp", *args])
    try:
        app.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def fake_pipeline_conf(root: Path, extra: dict[str, str] | None = None) -> str:
    """Write the search-path folder; returns the override that adds it (`hydra.searchpath=[file://...]`)."""
    (root / "pipeline").mkdir(parents=True, exist_ok=True)
    (root / "pipeline" / "fakes.yaml").write_text(FAKE_PIPELINE)
    for rel, text in (extra or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return f"hydra.searchpath=[file://{root}]"
