"""Tokenized examples on Arrow: same rows for any num_proc, Arrow input preferred and quarantined like
JSONL, a tokenization killed with SIGKILL never half-trusted, and each DDP rank reading only its batches."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import chat_rows, write_rows

SETTINGS = {"masking": "assistant_turns", "max_length": 64, "too_long": "truncate", "end_of_turn": None}


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from hala_exp.core.model_dirs import build_tiny_model_dir, embedded_texts, load_tokenizer
    from hala_exp.training.chat import resolve_template

    root = tmp_path_factory.mktemp("examples")
    model_dir = build_tiny_model_dir(root / "base", embedded_texts(), "lfm2")
    tokenizer = load_tokenizer(str(model_dir))
    rows = chat_rows(300) + [{"id": "bad", "messages": [{"role": "user", "content": "x"}]}]
    data = write_rows(root / "data.jsonl", rows, ["{not json"])
    return root, model_dir, tokenizer, resolve_template(tokenizer, None), data


def prepare(tok, cache_dir, data=None, **extra):
    from hala_exp.training.examples import prepare_examples

    root, _, tokenizer, template, default_data = tok
    return prepare_examples(
        data or default_data, tokenizer, template, cache_dir=cache_dir, quarantine_path=None, **SETTINGS, **extra
    )


def columns(examples) -> dict:
    return {c: examples.dataset[c][:] for c in ("id", "input_ids", "labels", "length", "trainable")}


def test_num_proc_changes_nothing_but_speed(tok):
    root = tok[0]
    one = prepare(tok, root / "np1", num_proc=1)
    two = prepare(tok, root / "np2", num_proc=2)
    assert columns(one) == columns(two) and one.counts == two.counts
    assert one.counts["rows"] == 302 and one.counts["examples"] == len(one) == 300
    assert one.counts["quarantined/invalid_json"] == 1 and one.counts["quarantined/no_assistant_turn"] == 1
    assert one.counts["truncated"] > 0
    # lengths and trainable counts come back as numpy columns, without reading the token ids
    assert one.lengths().tolist() == [len(x) for x in one.dataset["input_ids"]]
    assert one.lengths().max() <= 64


def test_rows_are_read_as_views_and_collated_like_python_lists(tok):
    import numpy as np

    from hala_exp.training.batches import collate

    examples = prepare(tok, tok[0] / "views")
    picked = [3, 0, 17, 250]
    views = [examples.example(i) for i in picked]
    lists = [(examples.dataset[i]["input_ids"], examples.dataset[i]["labels"]) for i in picked]
    for (ids, labels), (ids_list, labels_list) in zip(views, lists):
        assert isinstance(ids, np.ndarray) and ids.tolist() == ids_list and labels.tolist() == labels_list
    for packing, rows_of in ((False, lambda ex: [[e] for e in ex]), (True, lambda ex: [ex[:2], ex[2:]])):
        a, b = collate(rows_of(views), 0, packing, 8), collate(rows_of(lists), 0, packing, 8)
        assert a.keys() == b.keys()
        flat = [(k, a[k], b[k]) for k in a if k != "pieces"]
        flat += [(k, pa[k], pb[k]) for pa, pb in zip(a["pieces"], b["pieces"], strict=True) for k in pa]
        for key, x, y in flat:
            assert (x == y).all() if hasattr(x, "shape") else x == y, key
    unpacked = collate([[e] for e in views], 0, False)
    width = max(len(ids) for ids, _ in views)
    assert unpacked["attention_mask"].sum(1).tolist() == sorted((len(ids) for ids, _ in views), reverse=True)
    assert unpacked["input_ids"].shape == (4, width) and str(unpacked["input_ids"].dtype) == "torch.int64"
    assert (unpacked["labels"][:, 0] == -100).all()  # an example's first token is never a target


def test_arrow_input_is_read_as_it_is_and_quarantined_by_row(tok):
    import datasets

    root = tok[0]
    jsonl = prepare(tok, root / "from_jsonl")
    rows = chat_rows(300) + [{"id": "bad", "source": "t", "messages": [{"role": "user", "content": "x"}]}]
    arrow_dir = root / "arrow_data"
    datasets.Dataset.from_list(rows).save_to_disk(str(arrow_dir))
    quarantine = root / "arrow_quarantine.jsonl"
    from hala_exp.training.examples import prepare_examples

    _, _, tokenizer, template, _ = tok
    arrow = prepare_examples(
        arrow_dir, tokenizer, template, cache_dir=root / "from_arrow", quarantine_path=quarantine, **SETTINGS
    )
    assert columns(arrow) == columns(jsonl)
    assert arrow.counts["quarantined/no_assistant_turn"] == 1 and arrow.counts["rows"] == 301
    reject = json.loads(quarantine.read_text().splitlines()[0])
    assert reject["line"] == 301 and '"bad"' in reject["raw"]

    # the Arrow file the data stages write (an IPC stream, messages as a list of role/content structs)
    import pyarrow as pa

    from hala_exp.data.arrow import turns_type, write_rows

    arrow_file = root / "data.arrow"
    schema = pa.schema([("id", pa.string()), ("messages", turns_type())])
    write_rows(arrow_file, schema, ({"id": r["id"], "messages": r["messages"]} for r in rows))
    from_file = prepare_examples(
        arrow_file, tokenizer, template, cache_dir=root / "from_arrow_file", quarantine_path=None, **SETTINGS
    )
    assert columns(from_file) == columns(jsonl) and from_file.counts == arrow.counts


KILL_CHILD = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import datasets
from hala_exp.core.model_dirs import load_tokenizer
from hala_exp.training import examples as ex
from hala_exp.training.chat import resolve_template

where = {where!r}
if where == "map":
    real = ex._tokenize_batch
    calls = []
    def killing(batch, **kw):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(batch, **kw)
    ex._tokenize_batch = killing
else:
    real_save = datasets.Dataset.save_to_disk
    def save_then_die(self, *a, **kw):
        real_save(self, *a, **kw)
        os.kill(os.getpid(), signal.SIGKILL)
    datasets.Dataset.save_to_disk = save_then_die
tok = load_tokenizer({model!r})
template = resolve_template(tok, None)
ex.prepare_examples({data!r}, tok, template, cache_dir={cache!r}, quarantine_path=None, **{settings!r})
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["map", "after_save"])
def test_tokenization_killed_with_sigkill_is_never_half_trusted(tok, where):
    root, model_dir, _, _, data = tok
    cache = root / f"killed_{where}"
    code = KILL_CHILD.format(
        tests=str(Path(__file__).parent),
        where=where,
        model=str(model_dir),
        data=str(data),
        cache=str(cache),
        settings=SETTINGS,
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    left = [p.name for p in cache.iterdir()]
    assert left and all(".partial-" in name for name in left)  # nothing under the entry's own name
    rerun = prepare(tok, cache)
    assert [p.name for p in cache.iterdir()] == [rerun.path.name]  # the dead attempt's partial is gone
    assert columns(rerun) == columns(prepare(tok, root / "clean"))


class RecordingExamples:
    """Examples that record which rows a loader reads."""

    def __init__(self, n: int):
        self.n, self.read = n, []

    def example(self, i):
        self.read.append(int(i))
        return [1, 2, 3 + i % 5], [-100, 2, 3 + i % 5]


def test_each_rank_reads_only_its_batches_and_resumes_without_reading_the_rest():
    import numpy as np

    from hala_exp.training.batches import BatchPlan, DataPosition, make_loader

    lengths = np.arange(40) % 7 + 3
    plan = BatchPlan(
        lengths, lengths - 1, 4, packing=False, max_length=16, batching="length_grouped", seed=3, world_size=2
    )
    per_rank = []
    for rank in (0, 1):
        examples = RecordingExamples(40)
        loader = make_loader(examples, plan, rank, 0, DataPosition())
        batches = list(loader)
        assert len(batches) == plan.batches_per_rank == 5
        mine = sorted(int(i) for b in plan.epoch(0)[rank] for i in b)
        assert sorted(examples.read) == mine
        per_rank.append(set(mine))
    assert not per_rank[0] & per_rank[1] and len(per_rank[0] | per_rank[1]) == 40

    examples = RecordingExamples(40)
    loader = make_loader(examples, plan, 1, 0, DataPosition())
    loader.load_state_dict({"epoch": 1, "done": 3})
    resumed = list(loader)
    assert [(b["epoch"], b["index"]) for b in resumed] == [(1, 3), (1, 4)]
    assert sorted(examples.read) == sorted(int(i) for b in plan.epoch(1)[1][3:] for i in b)
    assert [(b["epoch"], b["index"]) for b in loader][:1] == [(2, 0)]  # the next pass is the next epoch
