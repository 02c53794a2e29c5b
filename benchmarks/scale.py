"""Scale benchmark: a synthetic English SFT mix through the real data path, at growing sizes.

    .venv/bin/python benchmarks/scale.py --sizes 10000,100000,1000000   # the issue's sizes: 1M may take an hour
    .venv/bin/python benchmarks/scale.py --quick                        # 2000,10000 rows: development only

Data (our choice, issue 11's figures): Open-Orca-like rows, one of a few fixed system prompts, a question
of 8-60 words and an answer of 20-300 words (uniform integers), words drawn from the package's embedded
English text, sentences of 6-20 words, answers in paragraphs of up to 80 words; seeded, so every size is
the same generator.

Per size, in a fresh child process (so its memory is its own): the translate stage's ``run(ctx)`` (mix
building, span protection, segmentation, segment cache, gates, shards, assembly) with the model replaced
at the backend boundary by a LABELLED STAND-IN (``StandInBackend``: it returns the segment with every word
replaced by its fixed Arabic word, markers kept, so gates and span restoration pass as with a good
translator); then tokenization of the translated rows for training and one epoch of the training
DataLoader (batches collated, no model, no optimizer). The parent samples the child's process tree every
0.2 s: anonymous memory (RssAnon, i.e. RSS minus file-backed pages, summed over processes) and, apart,
resident pages of memory-mapped Arrow files (from /proc/<pid>/smaps, every 2 s).

Concurrency: 1, 2 and 4 identical jobs started at the same moment on one translate stage (same config, same
output directory; the stage's leases share the shards): each job's shards committed, segments generated,
duplicated work, lost rows, and whether the output equals a single job's byte for byte after sorting by id.

Tokenization: the train stage's ``prepare_examples`` (``datasets.map``) with num_proc 1 vs 2.
Writes benchmarks/results/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, finish, header, run_facts, write_result  # noqa: E402

QUESTION_WORDS, ANSWER_WORDS = (8, 60), (20, 300)  # issue 11's distribution (Open-Orca-like), uniform
SENTENCE_WORDS, PARAGRAPH_WORDS = (6, 20), 80  # our choice
SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are an AI assistant. You will be given a task. You must generate a detailed and long answer.",
    "You are a helpful assistant, who always provides an explanation. Answer as if to a five year old.",
    "The user gives you a task with some instructions. Follow the instructions as faithfully as you can.",
]  # a handful of fixed system prompts, as Open-Orca rows carry (paraphrased; our choice)
ARABIC_WORDS = (
    "كتاب بيت شمس قمر ماء نهر بحر جبل شجرة وردة مدينة طريق باب نافذة مدرسة معلم طالب قلم ورقة سوق خبز "
    "حليب تفاح عمل وقت يوم ليلة صباح مساء صديق عائلة أب أم أخ أخت طفل لغة كلمة سؤال جواب فكرة علم فن "
    "لون أحمر أخضر كبير صغير جديد قديم جميل سريع بطيء"
).split()  # the stand-in's fixed output vocabulary (our choice)
FULL_ROWS = 4_500_000  # the Hala SFT corpus size (../shared/PAPER.md)
GOALS = {"peak_ratio": 1.5, "peak_1m_gb": 4.0, "peak_4_5m_gb": 8.0, "time_ratio": 1.5, "map_np2": 1.6}  # issue 11


# ------------------------------------------------------------------------------------------- the report
def report(facts: dict, setup: dict, sizes: list[dict], jobs: list[dict], tokenization: dict | None) -> str:
    """Markdown for one run. ``sizes``: per size rows, wall and per-phase seconds, memory peaks (bytes),
    disk bytes; ``jobs``: per job count, each job's shards/segments/wall, duplicates, lost, identical."""
    lines = header("Scale: the data path at growing sizes", facts)
    lines += [
        f"Synthetic Open-Orca-like English mix: questions {QUESTION_WORDS[0]}-{QUESTION_WORDS[1]} words, answers "
        f"{ANSWER_WORDS[0]}-{ANSWER_WORDS[1]} words (uniform), one of {len(SYSTEM_PROMPTS)} system prompts; "
        f"translate stage with a **labelled stand-in engine** (each word -> its fixed Arabic word; gates, spans, "
        f"segment cache, shards and assembly run for real), then tokenization ({setup['tokenizer']}) and one "
        f"DataLoader epoch (batch {setup['batch']}, no model). One run per size, each in a fresh process.",
        "",
        "| rows | wall s | rows/s | translate s | tokenize s | loader epoch s | peak anon MB | Arrow mmap MB "
        "| disk MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sizes:
        p = s["phases"]
        lines.append(
            f"| {s['rows']:,} | {s['wall_s']:.1f} | {s['rows'] / s['wall_s']:.0f} | {p.get('translate', 0):.1f} | "
            f"{p.get('tokenize', 0):.1f} | {p.get('loader', 0):.1f} | {s['peak_anon'] / 2**20:.0f} | "
            f"{s['peak_arrow'] / 2**20:.0f} | {s['disk'] / 2**20:.0f} |"
        )
    lines.append("")
    for s in sizes:
        if s.get("phase_peaks"):
            per = ", ".join(f"{ph} {v / 2**20:.0f}" for ph, v in s["phase_peaks"].items())
            lines.append(f"- Peak anonymous MB by phase at {s['rows']:,} rows: {per}.")
    for s in sizes:
        parts = s.get("translate_parts")
        if parts:
            per = ", ".join(f"{name} {sec:.1f} s" for name, sec in parts.items())
            lines.append(f"- Translate's passes at {s['rows']:,} rows: {per} (the rest: source mix and assembly).")
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        slope_mem = (b["peak_anon"] - a["peak_anon"]) / (b["rows"] - a["rows"])
        slope_s = (b["wall_s"] - a["wall_s"]) / (b["rows"] - a["rows"])
        mem_full = b["peak_anon"] + slope_mem * (FULL_ROWS - b["rows"])
        time_full = b["wall_s"] + slope_s * (FULL_ROWS - b["rows"])
        mem_ratio = b["peak_anon"] / max(a["peak_anon"], 1)
        time_ratio = (b["wall_s"] / b["rows"]) / (a["wall_s"] / a["rows"])
        at_1m = _met(b["peak_anon"] / 2**30 < GOALS["peak_1m_gb"]) if b["rows"] >= 1_000_000 else ": not measured"
        full_met = _met(mem_full / 2**30 < GOALS["peak_4_5m_gb"])
        lines += [
            f"- Peak anonymous memory, {b['rows']:,} vs {a['rows']:,} rows: **{mem_ratio:.2f}x** "
            f"(goal <= {GOALS['peak_ratio']}x{_met(mem_ratio <= GOALS['peak_ratio'])}); at {b['rows']:,}: "
            f"{b['peak_anon'] / 2**30:.2f} GB (goal < {GOALS['peak_1m_gb']:.0f} GB at 1M rows{at_1m}).",
            f"- Wall time per row, {b['rows']:,} vs {a['rows']:,} rows: **{time_ratio:.2f}x** "
            f"(goal flat within {GOALS['time_ratio']}x{_met(time_ratio <= GOALS['time_ratio'])}).",
            f"- Linear extrapolation from the two largest sizes to {FULL_ROWS:,} rows: peak anonymous memory "
            f"**{mem_full / 2**30:.1f} GB** (goal < {GOALS['peak_4_5m_gb']:.0f} GB{full_met}), "
            f"wall time {time_full / 3600:.1f} h, disk {(b['disk'] / b['rows']) * FULL_ROWS / 2**30:.1f} GB.",
            "",
        ]
    if jobs:
        lines += [
            f"Concurrent jobs on one {setup['jobs_rows']:,}-row translate stage (started together; "
            f"{setup['jobs_mode']}):",
            "",
            "| jobs | total wall s | row shards per job | segments per job | duplicated shards | duplicated segments "
            "| lost rows | output = 1 job's |",
            "|---:|---:|---|---|---:|---:|---:|---|",
        ]
        for j in jobs:
            lines.append(
                f"| {j['jobs']} | {j['wall_s']:.1f} | {', '.join(map(str, j['shards']))} | "
                f"{', '.join(map(str, j['segments']))} | {j['dup_shards']} | {j['dup_segments']} | {j['lost']} | "
                f"{'yes' if j['identical'] else 'NO'} |"
            )
        one = next((j for j in jobs if j["jobs"] == 1), None)
        lines.append("")
        if one:
            for j in jobs:
                if j["jobs"] > 1:
                    same = sum(j["segments"]) == sum(one["segments"])
                    lines.append(
                        f"- {j['jobs']} jobs generated {sum(j['segments']):,} segments in all vs "
                        f"{sum(one['segments']):,} for one job ({'equal' if same else 'NOT equal'})."
                    )
        lines.append("")
    if tokenization:
        base = tokenization.get("base")
        lines += [
            f"Tokenization of {tokenization['rows']:,} translated rows ({tokenization['tokens']:,} tokens):",
            "",
            "| path | wall s | speed-up vs the first row |",
            "|---|---:|---:|",
        ]
        for name, secs in tokenization["paths"].items():
            ratio = f"{base / secs:.2f}x" if base and secs else "-"
            lines.append(f"| {name} | {secs:.1f} | {ratio} |")
        if tokenization.get("note"):
            lines += ["", f"- {tokenization['note']}"]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _met(ok: bool) -> str:
    return ": met" if ok else ": NOT met"


# ------------------------------------------------------------------------------------------- the data
def english_words() -> list[str]:
    from hala_exp.core.model_dirs import embedded_texts

    words = {w.lower() for t in embedded_texts() for w in re.findall(r"[A-Za-z]{2,12}", t)}
    return sorted(words)


def generate_mix(path: Path, n: int, seed: int = 0) -> dict:
    """Write ``n`` synthetic chat rows to ``path`` (JSONL); returns counts."""
    rng = random.Random(seed)
    vocab = english_words()
    n_words = 0

    def prose(words: int, paragraphs: bool) -> str:
        out, para, left, in_para = [], [], words, 0
        while left > 0:
            k = min(left, rng.randint(*SENTENCE_WORDS))
            s = rng.choices(vocab, k=k)
            para.append(" ".join(s).capitalize() + ".")
            left, in_para = left - k, in_para + k
            if paragraphs and in_para >= PARAGRAPH_WORDS and left > 0:
                out.append(" ".join(para))
                para, in_para = [], 0
        out.append(" ".join(para))
        return "\n\n".join(out)

    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            q, a = rng.randint(*QUESTION_WORDS), rng.randint(*ANSWER_WORDS)
            n_words += q + a
            row = {
                "id": f"orca-{i:08d}",
                "messages": [
                    {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)},
                    {"role": "user", "content": prose(q, False)},
                    {"role": "assistant", "content": prose(a, True)},
                ],
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"rows": n, "words": n_words, "bytes": path.stat().st_size}


# ------------------------------------------------------------------------------------------- the stand-in
class StandInBackend:
    """LABELLED STAND-IN for a translation model, at the backend boundary only: every request's segment comes
    back with each word replaced by a fixed Arabic word (chosen by a stable hash of the word, sentence
    punctuation kept) and span markers kept. Counts what it generates."""

    devices = 1
    _SEGMENT = re.compile(r"to Arabic: (.*?)<\|im_end\|>", re.S)  # the benchmark's own prompt template

    def __init__(self, model_path: str, log_path: Path | None):
        from hala_exp.core.model_dirs import load_tokenizer
        from hala_exp.translation.spans import MARKER_RE

        self.tok, self.marker, self.log_path = load_tokenizer(model_path), MARKER_RE, log_path
        self._ids: dict[tuple[str, bool], list[int]] = {}  # (source word, after a space) -> output token ids

    def _word_ids(self, word: str, spaced: bool) -> list[int]:
        """The output's ids word by word: a byte-level BPE never merges across the space before a word, so
        this equals tokenizing the joined output, without tokenizing it again for every segment."""
        ids = self._ids.get((word, spaced))
        if ids is None:
            out = word if self.marker.fullmatch(word) else _arabic(word)
            ids = self._ids[(word, spaced)] = self.tok((" " if spaced else "") + out, add_special_tokens=False)[
                "input_ids"
            ]
        return ids

    def generate(self, requests, on_done) -> None:
        from hala_exp.translation.backends import Generation

        gens = []
        prompts = self.tok.batch_decode([r.prompt_ids for r in requests], skip_special_tokens=False)
        for r, prompt in zip(requests, prompts):
            m = self._SEGMENT.search(prompt)
            words = self.marker.sub(lambda x: f" {x.group(0)} ", m.group(1) if m else "").split()
            ids = [t for i, w in enumerate(words) for t in self._word_ids(w, i > 0)]
            gens.append(Generation(r.key, ids[: r.max_new_tokens], len(r.prompt_ids)))
        on_done(gens)
        if self.log_path:  # the keys go straight to the log: the stand-in holds nothing per segment
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.writelines(r.key + "\n" for r in requests)


def _arabic(word: str) -> str:
    core = word.rstrip(".,;:!?")
    return ARABIC_WORDS[zlib.crc32(core.lower().encode()) % len(ARABIC_WORDS)] + word[len(core) :]


def install_stand_in(log_path: Path | None) -> None:
    """Replace the engine's backend factory (and nothing else) with the stand-in."""
    from hala_exp.translation import engine

    engine.make_backend = lambda model_path, *_, **__: StandInBackend(model_path, log_path)


def tiny_model_dir(out: Path) -> Path:
    """A tokenizer (byte-level BPE on the embedded text) and a tiny model beside it: the stand-in never runs it."""
    from hala_exp.core.model_dirs import build_model, build_tokenizer, embedded_texts, save_model_dir

    if (out / "config.json").exists():
        return out
    tok = build_tokenizer(embedded_texts() + [" ".join(ARABIC_WORDS)] * 20)
    return save_model_dir(build_model("lfm2", tok, seed=0), tok, out)


def shard_rows(n: int) -> int:
    """Rows per shard: 1000 (our choice) at scale, smaller for small runs so several jobs have shards to share."""
    return max(10, min(1000, n // 40))


def translate_config(source: Path, shard_size: int):
    from hala_exp.core.schema import build
    from hala_exp.stages import translate as stage

    return build(
        stage.Config,
        {
            "source": {"sources": [{"name": "orca", "adapter": "messages", "path": str(source), "fraction": 1.0}]},
            "prompt": {"template": "Translate from {source_name} to {target_name}: {text}", "chat_template": True},
            "language": {"code": "ar", "name": "Arabic", "flores": "arb_Arab", "script": "Arabic"},
            "translate": {
                "engine": {
                    "max_new_tokens": 4096,
                    "max_segment_tokens": 1024,
                    "runtime": {"generate_batch_size": 64, "progress": False, "device": "cpu"},
                },
                "shard_size": shard_size,
            },
        },
        "translate",
    )


# ------------------------------------------------------------------------------------------- child work
def child_size(work: Path, n: int, marks: Path) -> dict:
    """One size: generate, translate (stand-in), tokenize, one loader epoch. Phase marks go to ``marks``."""
    from hala_exp.core.stage import StageContext
    from hala_exp.stages import translate as stage

    def mark(name: str) -> None:
        with open(marks, "a") as fh:
            fh.write(f"{name} {time.time()}\n")

    model = tiny_model_dir(work / "model")
    install_stand_in(None)
    source = work / "source.jsonl"
    generate_mix(source, n)
    phases: dict[str, float] = {}
    mark("translate")
    t = time.perf_counter()
    out = work / "translate"
    cfg = translate_config(source, shard_rows(n))
    parts = _time_passes(stage._Work, {"plan": "plan", "generate": "generate_plan", "rows": "take_and_translate"})
    stage.run(StageContext("translate", "translate", cfg, {"model": {"model": str(model)}}, out))
    phases["translate"] = time.perf_counter() - t
    mark("tokenize")
    t = time.perf_counter()
    examples, tok = tokenize(translated(out), model, work / "tokenized")
    phases["tokenize"] = time.perf_counter() - t
    mark("loader")
    t = time.perf_counter()
    loader_epoch(examples, tok)
    phases["loader"] = time.perf_counter() - t
    mark("end")
    return {"phases": phases, "translate_parts": parts}


def _time_passes(cls, names: dict[str, str]) -> dict[str, float]:
    """Observation only: wrap the stage's pass methods to add up their wall time (the methods run unchanged)."""
    spent = dict.fromkeys(names, 0.0)

    def timed(label, method):
        def run(*a, **kw):
            t = time.perf_counter()
            try:
                return method(*a, **kw)
            finally:
                spent[label] += time.perf_counter() - t

        return run

    for label, attr in names.items():
        setattr(cls, attr, timed(label, getattr(cls, attr)))
    return spent


def tokenize(data: Path, model: Path, cache_dir: Path, num_proc: int = 1):
    """The train stage's tokenization (``prepare_examples``: ``datasets.map`` into a memory-mapped cache entry)."""
    from hala_exp.core.model_dirs import load_tokenizer
    from hala_exp.training.chat import resolve_template
    from hala_exp.training.examples import prepare_examples

    tok = load_tokenizer(str(model))
    template = resolve_template(tok, None)
    examples = prepare_examples(
        str(data), tok, template, masking="assistant_turns", max_length=4096, too_long="truncate",
        end_of_turn=None, cache_dir=cache_dir, quarantine_path=None, num_proc=num_proc,
    )  # fmt: skip
    return examples, tok


def translated(out: Path) -> Path:
    """What the train stage reads from a translate stage: its Arrow file when it has one, else its JSONL."""
    return out / "data.arrow" if (out / "data.arrow").exists() else out / "data.jsonl"


def loader_epoch(examples, tok, batch: int = 8) -> int:
    from hala_exp.training.batches import BatchPlan, DataPosition, make_loader

    plan = BatchPlan(
        examples.lengths(), examples.trainable_counts(), batch, packing=False, max_length=4096,
        batching="length_grouped", seed=0,
    )  # fmt: skip
    n = 0
    for b in make_loader(examples, plan, 0, tok.pad_token_id, DataPosition()):
        n += b["real_tokens"]
    return n


def child_job(work: Path, source: Path, model: Path, job: int, jobs: int) -> dict:
    """One of ``jobs`` concurrent jobs on the shared output ``work/translate``: imports, reports ready, then
    starts when the parent opens the gate (``work/go``), so every job starts at the same moment."""
    from hala_exp.core.stage import StageContext, StagePending
    from hala_exp.stages import translate as stage
    from hala_exp.translation import shards

    log = work / f"segments-job{job}.txt"
    install_stand_in(log)
    committed: list[int] = []  # shards this job translated and committed first
    lost_race: list[int] = []  # shards this job translated but another job committed first (work done twice)
    original = shards.ShardStore.commit

    def counting_commit(self, k, *a, **kw):  # observation only: the stage's own commit runs unchanged
        won = original(self, k, *a, **kw)
        (committed if won else lost_race).append(k)
        return won

    shards.ShardStore.commit = counting_commit
    cfg = translate_config(source, shard_rows(len(source.read_text(encoding="utf-8").splitlines())))
    (work / f"ready-{job}").touch()
    while not (work / "go").exists():
        time.sleep(0.005)
    t = time.perf_counter()
    status = "assembled"
    try:
        stage.run(StageContext("translate", "translate", cfg, {"model": {"model": str(model)}}, work / "translate"))
    except StagePending:
        status = "pending"
    segments = len(log.read_text().splitlines()) if log.exists() else 0
    return {
        "job": job,
        "wall_s": time.perf_counter() - t,
        "shards": committed,
        "redone": lost_race,
        "segments": segments,
        "status": status,
    }


# ------------------------------------------------------------------------------------------- measuring
class TreeSampler:
    """Samples a process and its descendants: summed RssAnon every ``every`` s, Arrow-mapped Rss every 10th."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int, int]] = []  # (time, anon bytes, arrow bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        i, arrow = 0, 0
        while not self._stop.is_set():
            try:
                procs = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            anon = sum(_status_kb(p.pid, "RssAnon") for p in procs) * 1024
            if i % 10 == 0:
                arrow = sum(_arrow_rss(p.pid) for p in procs)
            self.samples.append((time.time(), anon, arrow))
            i += 1
            self._stop.wait(self.every)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> tuple[int, int]:
        window = [s for s in self.samples if since <= s[0] <= until] or [(0, 0, 0)]
        return max(s[1] for s in window), max(s[2] for s in window)


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _arrow_rss(pid: int) -> int:
    """Resident bytes of this process's mappings of .arrow files (memory-mapped datasets)."""
    total, in_arrow = 0, False
    try:
        with open(f"/proc/{pid}/smaps") as fh:
            for line in fh:
                if not line[0].isupper() or ":" not in line.split()[0]:  # a mapping's header line
                    in_arrow = line.rstrip().endswith(".arrow")
                elif in_arrow and line.startswith("Rss:"):
                    total += int(line.split()[1]) * 1024
    except OSError:
        pass
    return total


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _child(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}  # fmt: skip
    return subprocess.Popen([sys.executable, __file__, *args], env=env, stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        sys.exit(f"child {proc.args[2:]} failed with exit status {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def measure_size(root: Path, n: int) -> dict:
    work = root / f"size-{n}"
    work.mkdir(parents=True)
    marks = work / "marks.txt"
    start = time.time()
    proc = _child(["--child-size", str(n), str(work), str(marks)])
    with TreeSampler(proc.pid) as sampler:
        res = _result(proc)
    wall = time.time() - start
    t = {k: float(v) for k, v in (line.split() for line in marks.read_text().splitlines())}
    anon, arrow = sampler.peak()
    phase_peaks = {
        ph: sampler.peak(t[ph], t[nxt])[0]
        for ph, nxt in zip(("translate", "tokenize", "loader"), ("tokenize", "loader", "end"))
    }
    disk = du(work) - (work / "source.jsonl").stat().st_size
    return {"rows": n, "wall_s": t["end"] - t["translate"], "process_s": wall, "phases": res["phases"],
            "peak_anon": anon, "peak_arrow": arrow, "phase_peaks": phase_peaks, "disk": disk,
            "translate_parts": res.get("translate_parts")}  # fmt: skip


def measure_jobs(root: Path, n: int, counts: list[int]) -> list[dict]:
    base = root / "jobs-source"
    base.mkdir(parents=True)
    source = base / "source.jsonl"
    generate_mix(source, n, seed=1)
    model = tiny_model_dir(base / "model")
    results, reference = [], None
    ids = {json.loads(line)["id"] for line in source.read_text(encoding="utf-8").splitlines()}
    for jobs in counts:
        work = root / f"jobs-{jobs}"
        work.mkdir()
        procs = [_child(["--child-job", str(work), str(source), str(model), str(j), str(jobs)]) for j in range(jobs)]
        while len(list(work.glob("ready-*"))) < jobs:  # every job has imported and built its config
            if any(p.poll() is not None for p in procs):
                break
            time.sleep(0.05)
        (work / "go").touch()
        per_job = [_result(p) for p in procs]
        wall = max(r["wall_s"] for r in per_job)
        out = work / "translate"
        rows = _jsonl_lines(out / "data.jsonl") + _jsonl_lines(out / "rejects.jsonl")
        got = [json.loads(r).get("id") for r in rows]
        written = [k for r in per_job for k in r["shards"] + r["redone"]]
        seg_logs = [
            set((work / f"segments-job{j}.txt").read_text().splitlines())
            if (work / f"segments-job{j}.txt").exists()
            else set()
            for j in range(jobs)
        ]
        dup_segments = sum(len(s) for s in seg_logs) - len(set().union(*seg_logs))
        canon = "\n".join(sorted(_jsonl_lines(out / "data.jsonl")))
        reference = canon if reference is None else reference
        results.append({
            "jobs": jobs, "wall_s": wall, "shards": [len(r["shards"]) for r in per_job],
            "segments": [r["segments"] for r in per_job], "dup_shards": len(written) - len(set(written)),
            "dup_segments": dup_segments, "lost": len(ids - set(got)), "duplicated_rows": len(got) - len(set(got)),
            "identical": canon == reference, "status": [r["status"] for r in per_job],
        })  # fmt: skip
    return results


def _jsonl_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []


def measure_tokenization(root: Path) -> dict | None:
    """``prepare_examples`` (``datasets.map``) with num_proc 1 and 2, each into a fresh cache, on this run's
    translated set nearest 100k rows (the issue's comparison size)."""
    done = list(root.glob("size-*/translate"))
    if not done:
        return None
    out = min(done, key=lambda p: abs(int(p.parent.name.split("-")[1]) - 100_000))
    model = out.parent / "model"
    paths: dict[str, float] = {}
    for num_proc in (1, 2):
        t = time.perf_counter()
        examples, _ = tokenize(translated(out), model, root / f"tokenize-np{num_proc}", num_proc)
        paths[f"prepare_examples (datasets.map), num_proc={num_proc}"] = time.perf_counter() - t
    note = (
        "The Python-list path these replace is gone from this commit; issue 11 measured it at 140 s and a "
        "2.18 GB peak for 100k rows (46.5M tokens), on this machine type, before the change."
    )
    base = next(iter(paths.values()))
    return {"rows": len(examples), "tokens": int(examples.lengths().sum()), "paths": paths, "base": base, "note": note}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-size":
        n, work, marks = int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
        print(json.dumps(child_size(work, n, marks)))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child-job":
        work, source, model = map(Path, sys.argv[2:5])
        print(json.dumps(child_job(work, source, model, int(sys.argv[5]), int(sys.argv[6]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--jobs", default="1,2,4", help="concurrent job counts ('' to skip)")
    ap.add_argument("--jobs-rows", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="sizes 2000,10000; jobs on 10000 rows")
    ap.add_argument("--work", help="working directory (default: a temporary one, removed)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.jobs_rows = "2000,10000", 10_000
    facts = run_facts("scale.py")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        root = Path(tmp)
        sizes = [measure_size(root, int(s)) for s in args.sizes.split(",") if s]
        counts = [int(j) for j in args.jobs.split(",") if j]
        jobs = measure_jobs(root, args.jobs_rows, counts) if counts else []
        tokenization = measure_tokenization(root)
    setup = {
        "tokenizer": "byte-level BPE on the embedded text",
        "batch": 8,
        "jobs_rows": args.jobs_rows,
        "jobs_mode": "identical jobs, same config and output directory; one job plans the distinct segments, "
        "then segment shards and row shards are claimed through the stage's leases; the job that finds every "
        "row shard done assembles",
    }
    write_result("scale.md", report(finish(facts), setup, sizes, jobs, tokenization))


if __name__ == "__main__":
    main()
