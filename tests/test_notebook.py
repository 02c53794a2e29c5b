"""notebooks/analysis.ipynb executes top to bottom on a tiny sweep and draws its plots."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "analysis.ipynb"


def test_analysis_notebook_executes_on_a_sweep(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from hala_exp.reporting.example import write_example_sweep

    sweep_dir = tmp_path / "sweep"
    write_example_sweep(sweep_dir, t_values=(0.0, 0.5, 1.0), models=("lfm2_350m",))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    params[0].source = f"sweep_dir = {str(sweep_dir)!r}\nshow_paper = True"  # what papermill would inject
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert f"3 runs in {sweep_dir}" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3  # t curve, benchmarks, translator
    tables = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert tables.count("| example-lfm2_350m-t") >= 3  # the runs table rendered
