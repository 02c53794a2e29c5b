"""Comparison reports over pipeline runs and sweeps (``python -m hala_exp.reporting``).

``runs``: reading ``summary.json`` files and the comparison tables; ``plots``: matplotlib figures;
``render``: Markdown and HTML; ``wandb_report``: the W&B Report; ``example``: a synthetic sweep to try
the report and the notebook without running the pipeline.
"""
