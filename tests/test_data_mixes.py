"""Mixes on Arrow (hala_exp.data.mixes): the same rows as the list-based mix before, memory-mapped, bounded
quarantine, ids never repaired, and empty sources refused when the pipeline plans."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from data_mix_inputs import write_inputs

from hala_exp.core.schema import ConfigError
from hala_exp.data.jsonl import RAW_PREFIX
from hala_exp.data.mixes import MIX_FILE, build_mix
from hala_exp.data.sources import input_files

FIXTURE = Path(__file__).parent / "fixtures" / "mix_before_arrow.json"
CONF = Path(__file__).resolve().parents[1] / "conf"


def _jsonl(path: Path, rows: list) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _lamini(name: str, path: str, **amount) -> dict:
    return {"seed": 0, "sources": [{"name": name, "adapter": "lamini", "path": path, **(amount or {"fraction": 1.0})}]}


@pytest.mark.parametrize("name", ["instructions", "pairs"])
def test_index_sampling_gives_exactly_the_rows_of_the_list_based_mix(name, tmp_path):
    """Same ids, order, content, per-source counts and reject counts as load_mix at 6aecafc (fixture)."""
    expected = json.loads(FIXTURE.read_text(encoding="utf-8"))[name]
    built = build_mix(write_inputs(tmp_path / "in")[name], tmp_path / "mix", target_language="ar")
    assert list(built.dataset) == expected["rows"]  # every column, no null extras in a one-schema mix
    assert list(built.rows()) == expected["rows"]
    assert built.per_source == expected["per_source"]
    assert built.rejects == expected["rejects"]


def test_mix_is_memory_mapped_from_its_directory_and_reused(tmp_path):
    mix = write_inputs(tmp_path / "in")["instructions"]
    built = build_mix(mix, tmp_path / "mix")
    assert [f["filename"] for f in built.dataset.cache_files] == [str(tmp_path / "mix" / MIX_FILE)]
    visible = sorted(p.name for p in (tmp_path / "mix").iterdir() if not p.name.startswith("."))
    assert visible == ["mix.arrow", "mix.json", "rejects.jsonl"]  # the per-source scratch files are gone
    stamp = (tmp_path / "mix" / MIX_FILE).stat().st_mtime_ns
    again = build_mix(mix, tmp_path / "mix")
    assert (tmp_path / "mix" / MIX_FILE).stat().st_mtime_ns == stamp and again.per_source == built.per_source
    other = build_mix({**mix, "seed": 8}, tmp_path / "mix")  # another config in the same directory: rebuilt
    assert [r["id"] for r in other.dataset] != [r["id"] for r in built.dataset]


def test_mixed_schemas_keep_null_extras_out_of_rows(tmp_path):
    mix = {
        "seed": 0,
        "sources": [
            {
                "name": "lam",
                "adapter": "lamini",
                "path": _jsonl(tmp_path / "l.jsonl", [{"instruction": "I", "response": "R"}]),
                "count": 1,
            },
            {
                "name": "par",
                "adapter": "parallel",
                "path": _jsonl(tmp_path / "p.jsonl", [{"en": "Hi.", "ar": "مرحبا."}]),
                "count": 2,
            },
        ],
    }
    built = build_mix(mix, tmp_path / "mix", target_language="ar")
    rows = list(built.rows())
    assert "messages_en" not in rows[0] and rows[1]["messages_en"] == [{"role": "user", "content": "Hi."}]
    assert [r["id"].endswith("#r1") for r in rows] == [False, False, True]


def test_rejects_keep_a_bounded_prefix_with_hash_and_length(tmp_path):
    huge = {"instruction": "x" * 300_000, "response": "A."}
    path = _jsonl(tmp_path / "s.jsonl", [{"instruction": "ok", "response": "fine"}, huge])
    built = build_mix(_lamini("lam", path), tmp_path / "mix")
    (entry,) = [json.loads(line) for line in built.rejects_path.read_text(encoding="utf-8").splitlines()]
    whole = json.dumps(huge, ensure_ascii=False)
    assert entry["reason"] == "too_long" and entry["line"] == 2 and entry["source"] == "lam"
    assert entry["raw"] == whole[:RAW_PREFIX] and entry["chars"] == len(whole)
    assert entry["sha256"] == hashlib.sha256(whole.encode()).hexdigest()


def test_non_string_ids_are_quarantined_never_replaced(tmp_path):
    rows = [
        {"id": 7, "instruction": "int ids keep their digits", "response": "r"},
        {"id": 1.5, "instruction": "i", "response": "r"},
        {"id": ["a"], "instruction": "i", "response": "r"},
        {"id": True, "instruction": "i", "response": "r"},
        {"id": "  ", "instruction": "i", "response": "r"},
        {"instruction": "no id: a content hash", "response": "r"},
    ]
    built = build_mix(_lamini("lam", _jsonl(tmp_path / "s.jsonl", rows)), tmp_path / "mix")
    ids = [r["id"] for r in built.dataset]
    assert ids[0] == "7" and len(ids) == 2 and len(ids[1]) == 20
    assert built.rejects == {"lam": {"id_not_string": 3, "missing_id": 1}}


def test_a_source_that_selects_no_row_is_an_error_naming_it(tmp_path):
    path = _jsonl(tmp_path / "s.jsonl", [{"instruction": "", "response": "r"}])
    with pytest.raises(ValueError, match=r"source 'only_bad': no row selected \(0 valid, 1 quarantined"):
        build_mix(_lamini("only_bad", path), tmp_path / "mix")
    assert json.loads((tmp_path / "mix" / "rejects.jsonl").read_text())["reason"] == "empty:instruction"  # kept


def test_planning_refuses_empty_sources_and_fractions_that_select_nothing(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"source 'e': .*empty.jsonl is empty"):
        input_files(_lamini("e", str(empty)))
    with pytest.raises(ConfigError, match=r"source 'c': .*empty.jsonl is empty"):
        input_files(_lamini("c", str(empty), count=3))
    (tmp_path / "zero.jsonl").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"source 'z': .*zero.jsonl is empty"):
        input_files(_lamini("z", str(tmp_path / "zero.jsonl")))
    four = _jsonl(tmp_path / "four.jsonl", [{"instruction": f"i{i}", "response": "r"} for i in range(4)])
    with pytest.raises(ConfigError, match=r"source 'f': fraction 0.1 of the 4 row\(s\) in .*four.jsonl selects no row"):
        input_files(_lamini("f", four, fraction=0.1))
    assert input_files(_lamini("f", four, fraction=0.2)) == [four]  # round(0.8) = 1 row


def test_empty_source_is_a_plan_error_of_the_step_before_any_compute(tmp_path):
    from hydra import compose, initialize_config_dir

    from hala_exp.core.pipeline import Pipeline

    empty = tmp_path / "orca.jsonl"
    empty.write_text("", encoding="utf-8")
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose(config_name="config", overrides=[f"paths.output_dir={tmp_path / 'out'}"])
    cfg.data.seed.sources[0].path = str(empty)
    with pytest.raises(ConfigError, match=r"pipeline.steps.translate_seed.config: source 'orca_embedded': .* is empty"):
        Pipeline.from_config(cfg, group="t")
    assert not (tmp_path / "out").exists()


BUILD_SCRIPT = """
import json, logging, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from data_mix_inputs import write_inputs
from hala_exp.data.mixes import build_mix
mix = write_inputs(Path({inputs!r}))["instructions"]
while time.time() < {start}:
    time.sleep(0.001)
messages = []


class Keep(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())


logger = logging.getLogger("hala_exp.data.mixes")
logger.setLevel(logging.INFO)
logger.addHandler(Keep())
built = build_mix(mix, Path({out!r}))
print(json.dumps({{"reused": any("reusing" in m for m in messages), "ids": [r["id"] for r in built.dataset]}}))
"""


@pytest.mark.slow  # three interpreters importing datasets: ~20 s on two busy cores
def test_jobs_started_together_build_the_mix_once(tmp_path):
    import os
    import subprocess
    import sys
    import time

    write_inputs(tmp_path / "in")  # the files exist before the jobs start
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    script = BUILD_SCRIPT.format(
        tests=str(Path(__file__).parent), inputs=str(tmp_path / "in"), out=str(tmp_path / "mix"), start=time.time() + 8
    )
    jobs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env) for _ in range(3)
    ]
    results = [json.loads(job.communicate(timeout=120)[0]) for job in jobs]
    assert sorted(r["reused"] for r in results) == [False, True, True]
    expected = [r["id"] for r in json.loads(FIXTURE.read_text(encoding="utf-8"))["instructions"]["rows"]]
    assert all(r["ids"] == expected for r in results)
