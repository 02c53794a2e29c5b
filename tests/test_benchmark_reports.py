"""Each benchmark script's pure report function, rendered on small fixed measurements: a formatting bug
fails here, not in a results file (results are written whole by the scripts, never patched by hand)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import common  # noqa: E402

FACTS = {
    "command": ".venv/bin/python benchmarks/x.py --quick",
    "commit": "abc1234567",
    "machine": "Test CPU, 2 cores",
    "date": "2026-12-01 12:00 UTC",
    "load_start": 1.25,
    "load_end": 3.5,
}


def _table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row (header and separator rows included)."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("|")
    ]
    widths = {len(r) for r in rows}
    assert len(widths) <= 1 or _tables_consistent(text), f"ragged table rows: {widths}"
    return rows


def _tables_consistent(text: str) -> bool:
    """Every table (a block of consecutive '|' lines) has one width."""
    blocks, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(line.strip().strip("|").count("|"))
        elif cur:
            blocks.append(cur)
            cur = []
    return all(len(set(b)) == 1 for b in blocks)


def _assert_header(text: str, title: str) -> None:
    assert text.startswith(f"## {title}\n")
    for fact in ("`.venv/bin/python benchmarks/x.py --quick`", "`abc1234567`", "Test CPU, 2 cores", "2026-12-01"):
        assert fact in text
    assert "1.2 at the start, 3.5 at the end" in text  # load average recorded, rounded to one decimal
    assert _tables_consistent(text)


def test_spread_and_interleaving():
    s = common.Spread.of([3.0, 1.0, 2.0, 10.0, 2.5])
    assert (s.median, s.low, s.high, s.n) == (2.5, 1.0, 10.0, 5)
    assert s.fmt(".1f") == "2.5 (1.0–10.0)"
    with pytest.raises(ValueError):
        common.Spread.of([])
    calls = []
    out = common.interleaved({"a": lambda: calls.append("a") or 1.0, "b": lambda: calls.append("b") or 2.0}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]  # one of each per round, the order rotating
    assert out == {"a": [1.0] * 3, "b": [2.0] * 3}
    seen = iter(range(100))
    out = common.interleaved({"a": lambda: next(seen), "b": lambda: next(seen)}, 2, warmup=1)
    assert out == {"a": [3, 4], "b": [2, 5]}  # round 0 (values 0, 1) dropped; round 1 runs b first


def test_pipeline_report_and_collect(tmp_path):
    import run

    times = {run.DRY: [1.2, 1.4, 1.3, 1.5, 1.1], run.COLD: [150.0, 140, 160, 155, 145], run.WARM: [1.5] * 5}
    text = run.report(FACTS, times)
    _assert_header(text, "Pipeline start-up and the embedded default")
    rows = _table_rows(text)
    assert rows[2] == [run.DRY, "1.30 (1.10–1.50)", "<= 1.5 s"]
    assert rows[3][1] == "150.00 (140.00–160.00)"
    assert "Warm / cold (medians): 0.010." in text

    (tmp_path / "zeta.md").write_text("# Zeta\n\nz\n")
    (tmp_path / "pipeline.md").write_text(text)
    page = run.collect(sorted(tmp_path.glob("*.md")))
    assert page.startswith("# Benchmark results\n")
    assert page.index("## Pipeline start-up") < page.index("## Zeta")  # pipeline first, top heading demoted


def test_train_report():
    import train_throughput as tt

    def side(tps, step):
        return {"tokens_per_s": tps, "step_s": step, "padding": [0.1] * len(tps)}

    runs = {
        tt.OURS: side([200, 210, 190, 205, 200], [0.50, 0.48, 0.52, 0.49, 0.50]),
        tt.BARE: side([204, 212, 196, 208, 203], [0.49, 0.47, 0.50, 0.48, 0.49]),
        tt.BARE_FULL: side([100] * 5, [1.0] * 5),
        tt.TRL_DEFAULT: side([100] * 5, [1.0] * 5),
        tt.TRL_TUNED: side([160] * 5, [0.6] * 5),
    }
    setup = dict(
        parameters=5.5e6, shape={"hidden_size": 256}, threads=2, examples=256, batch=8, steps=32, rounds=5, warmup=1
    )
    text = tt.report(FACTS, setup, runs)
    _assert_header(text, "Train stage throughput (CPU)")
    rows = _table_rows(text)
    assert rows[2] == [tt.OURS, "200 (190–210)", "0.500 (0.480–0.520)", "10.0%"]
    assert len(rows) == 2 + len(runs)
    assert "hala_exp vs TRL tuned, real tokens/s: **1.25 (1.19–1.31)x** (goal >= 1.3x: not met)" in text
    assert "vs TRL defaults, real tokens/s: 2.00 (1.90–2.10)x" in text
    # overhead per round: +2.04, +2.13, +4.00, +2.08, +2.04 % -> median +2.08 %
    assert "**+2.1%** (+2.0%–+4.0%; goal <= 5%: met)" in text
    assert "1 warm-up round(s) ran first and are not counted." in text


def test_sweep_report():
    from collections import Counter

    import sweep_economy as se

    rounds = [
        dict(first_run=30.0 + i, sweep=20.0, cold=[30.0] * 5, sweep_steps=Counter(merge=4, eval=4),
             cold_steps=Counter(train=5, merge=5))
        for i in range(5)
    ]  # fmt: skip
    text = se.report(FACTS, se.T_POINTS, rounds)
    _assert_header(text, "Sweep economy: slerp-t sweep after a full run vs full runs from cold caches")
    rows = _table_rows(text)
    assert rows[2] == ["first full run (fills the cache)", "32.0 (30.0–34.0)", "all"]
    assert rows[3][2] == "eval x4, merge x4"
    assert rows[5][1] == "150.0 (150.0–150.0)"
    assert "**7.5 (7.5–7.5)x** less wall time than 5 cold full runs" in text


def test_translate_report():
    import translate_throughput as tp

    runs = {tp.STAGE: [10.0, 11.0, 9.0, 10.5, 10.0], tp.RAW: [12.0, 11.0, 9.9, 12.6, 11.0], tp.NAIVE: [40.0] * 5}
    setup = dict(model="M", threads=2, sentences=32, words="3-8", max_new_tokens=96, batch=16, rounds=5)
    check = dict(identical=31, differing=["s7"], ended_at_eos=30, output_tokens=1000, kept=20,
                 rejects={"gate_script": 12})  # fmt: skip
    text = tp.report(FACTS, setup, runs, check)
    _assert_header(text, "Translate throughput (translate stage vs raw batched generate)")
    rows = _table_rows(text)
    assert rows[2] == ["**translate stage**", "10.00 (9.00–11.00)", "3.20", "100.0", "1.00 (1.00–1.00)x"]
    assert rows[3][0] == tp.RAW and rows[3][4] == "1.10 (1.00–1.20)x"  # paired per round, not ratio of medians
    assert "**1.10 (1.00–1.20)x**" in text
    assert "**31/32** (differing ids: s7)." in text
    assert "ended at end-of-sequence: 30/32 (2 hit the 96-token cap)" in text
    assert "rejects by reason: {'gate_script': 12}." in text


def test_few_shot_prefix_report():
    import few_shot_prefix as fsp

    runs = {
        "fp32": {fsp.OFF: [16.0, 15.0, 17.0], fsp.ON: [4.0, 3.0, 4.25]},
        "FP8": {fsp.OFF: [24.0] * 3, fsp.ON: [3.0] * 3},
    }
    setup = dict(model="M", sentences=16, batch=16, penalty=1.2, threads=2, rounds=3)
    check = {
        "fp32": dict(
            shared=417, prompt_tokens=426, identical=16, redone=0, chrf={fsp.OFF: 39.44, fsp.ON: 39.44}, alone=16
        ),
        "FP8": dict(shared=417, prompt_tokens=426, identical=5, redone=2, chrf={fsp.OFF: 38.0, fsp.ON: 40.06}, alone=4),
    }
    text = fsp.report(FACTS, setup, runs, check)
    _assert_header(text, "Few-shot prefix cache (the embedded default's teacher)")
    rows = _table_rows(text)
    # per-round ratios off/on: 4.0, 5.0, 4.0 -> median 4.0
    assert rows[3] == ["fp32", fsp.ON, "4.00 (3.00–4.25)", "4.00", "4.00 (4.00–5.00)x", "16/16", "0/16"]
    assert rows[2][4:] == ["1.00 (1.00–1.00)x", "-", "-"]
    assert rows[5][4:] == ["8.00 (8.00–8.00)x", "5/16", "2/16"]
    assert "- FP8: 417 prompt tokens shared of 426 per prompt on average; 5/16 rows" in text
    assert "chrF++ 38.0 with the prefix cache off, 40.1 with the prefix cache on; with the cache off, 4/16 rows" in text


def test_scale_report():
    import scale

    def size(rows, wall, anon_mb):
        return dict(rows=rows, wall_s=wall, phases={"translate": wall / 2, "tokenize": wall / 4, "loader": wall / 4},
                    peak_anon=anon_mb * 2**20, peak_arrow=64 * 2**20, disk=rows * 2000)  # fmt: skip

    sizes = [size(10_000, 10.0, 500), size(100_000, 100.0, 1000), size(1_000_000, 1200.0, 1200)]
    sizes[0]["phase_peaks"] = {"translate": 400 * 2**20, "tokenize": 500 * 2**20, "loader": 300 * 2**20}
    sizes[0]["translate_parts"] = {"plan": 1.0, "generate": 2.25, "rows": 1.5}
    jobs = [
        dict(jobs=1, wall_s=100.0, shards=[100], segments=[5000], dup_shards=0, dup_segments=0, lost=0, identical=True),
        dict(jobs=4, wall_s=30.0, shards=[25, 25, 25, 25], segments=[1250, 1250, 1250, 1300], dup_shards=0,
             dup_segments=50, lost=0, identical=False),
    ]  # fmt: skip
    tok = {"rows": 100_000, "tokens": 46_500_000, "base": 140.0, "note": None,
           "paths": {"today's path": 140.0, "datasets.map, num_proc=2": 70.0}}  # fmt: skip
    setup = {"tokenizer": "T", "batch": 8, "jobs_rows": 100_000, "jobs_mode": "static shards"}
    text = scale.report(FACTS, setup, sizes, jobs, tok)
    _assert_header(text, "Scale: the data path at growing sizes")
    rows = _table_rows(text)
    assert rows[4] == ["1,000,000", "1200.0", "833", "600.0", "300.0", "300.0", "1200", "64", "1907"]
    assert "- Peak anonymous MB by phase at 10,000 rows: translate 400, tokenize 500, loader 300." in text
    assert "- Translate's passes at 10,000 rows: plan 1.0 s, generate 2.2 s, rows 1.5 s (the rest" in text
    assert "**1.20x** (goal <= 1.5x: met); at 1,000,000: 1.17 GB (goal < 4 GB at 1M rows: met)" in text
    assert "per row, 1,000,000 vs 100,000 rows: **1.20x** (goal flat within 1.5x: met)" in text
    # slope 200 MB per 900k rows -> 1200 + 200/900k * 3.5M = 1977.8 MB = 1.9 GB
    assert "peak anonymous memory **1.9 GB** (goal < 8 GB: met)" in text
    assert "| 4 | 30.0 | 25, 25, 25, 25 | 1250, 1250, 1250, 1300 | 0 | 50 | 0 | NO |" in text
    assert "4 jobs generated 5,050 segments in all vs 5,000 for one job (NOT equal)" in text
    assert "| datasets.map, num_proc=2 | 70.0 | 2.00x |" in text
    empty = scale.report(FACTS, setup, sizes[:1], [], None)  # one size: no ratios, no extrapolation
    assert "extrapolation" not in empty and _tables_consistent(empty)
