"""Local copies of benchmark data in the layout lighteval's built-in Arabic tasks read.

A built-in task keeps its prompt function and metric; only ``hf_repo`` (a local directory) and ``hf_subset``
(a config of that directory) change. Each task family gets one directory whose README declares one config
per subset (``configs: [{config_name, data_files: [{split, path}]}]``, the datasets library's own format),
with the task's own split names, so nothing else in the task config has to move.

Formats read (the files in ../shared/data/benchmarks and the embedded asset):

* ``exams``: EXAMS rows ``{id, question, A, B, C, D, answer}``; the subject is the id's prefix
  (``"Islamic Studies-0"``) or ``subject`` from the config -> ``arabic_exams``
* ``exams_alghafa``: the same rows in AlGhafa's schema (AlGhafa's ``mcq_exams_test_ar`` is EXAMS; one
  subset of AlGhafa's nine, and the same questions as ``arabic_exams``: never both in one average)
* ``aratrust``: ``{category, question, A, B, C, answer}`` with Arabic letter answers (a bare ا is أ)
* ``arabicmmlu``: ArabicMMLU's CSV (Question, Context, Option 1..5, Answer Key, Subject, Level, is_few_shot);
  subsets are "Subject (Level)" as on the hub; could feed ``madinah_qa`` (its subsets are named like ArabicMMLU's
  "Arabic Language (General)" / "(Grammar)"), but not beside ``arabic_mmlu`` from the same file: the
  benchmarks config refuses one file counted twice in the average
* ``mmlu_translated``: header-less CSV ``question,A,B,C,D,answer`` per subject (``<subject>_test.csv``,
  ``<subject>_dev.csv``) -> ``arabic_mmlu_ht`` (a machine-translated stand-in for the human translation)
* ``acva``: ``{id, question, answer: نعم|لا}``, subset = id prefix -> ``acva``

Rows that cannot be converted are quarantined with a reason and counted.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hala_exp.core.schema import ConfigError
from hala_exp.data.jsonl import read_jsonl
from hala_exp.data.paths import resolve

Format = Literal["exams", "exams_alghafa", "aratrust", "arabicmmlu", "mmlu_translated", "acva"]
LEVELS = {
    "High": "High School",
    "Middle": "Middle School",
    "Primary": "Primary School",
    "Univ": "University",
    "Prof": "Professional",
}
ARABIC_LETTERS = ["أ", "ب", "ج", "د", "هـ"]


@dataclass
class LocalSource:
    """Local data for one lighteval task family (the task name before ``:``)."""

    format: Format
    path: str  # a file (exams, aratrust, arabicmmlu, acva) or a directory (mmlu_translated: <dir>/test*, dev*)
    dev_path: str | None = None  # few-shot rows in the same format (exams, acva)
    subject: str | None = None  # exams: the topic when ids carry none (the embedded set)

    def local_files(self) -> list[str]:
        return [str(resolve(p)) for p in (self.path, self.dev_path) if p]


@dataclass
class Converted:
    """subset -> split -> rows in the task's hub schema, and rejected rows per reason."""

    subsets: dict[str, dict[str, list[dict]]] = field(default_factory=dict)
    rejects: dict[str, int] = field(default_factory=dict)

    def add(self, subset: str, split: str, row: dict) -> None:
        self.subsets.setdefault(subset, {}).setdefault(split, []).append(row)

    def reject(self, reason: str) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1


def convert(src: LocalSource, eval_split: str, dev_split: str) -> Converted:
    out = Converted()
    reader = {
        "exams": _exams,
        "exams_alghafa": _exams_alghafa,
        "aratrust": _aratrust,
        "arabicmmlu": _arabicmmlu,
        "mmlu_translated": _mmlu_translated,
        "acva": _acva,
    }[src.format]
    reader(resolve(src.path), src, out, eval_split, dev_split)
    if src.dev_path and src.format in ("exams", "exams_alghafa", "acva"):
        reader(resolve(src.dev_path), src, out, dev_split, dev_split)
    return out


def write_task_dir(converted: Converted, directory: Path) -> Path:
    """One ``<subset>__<split>.jsonl`` per subset and split, declared as configs in README.md."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["---", "configs:"]
    for i, (subset, splits) in enumerate(sorted(converted.subsets.items())):
        lines.append(f"- config_name: {json.dumps(subset, ensure_ascii=False)}")
        lines.append("  data_files:")
        for split, rows in sorted(splits.items()):
            name = f"subset{i}__{split}.jsonl"
            with open(directory / name, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            lines.append(f"  - split: {split}")
            lines.append(f"    path: {name}")
    lines.append("---")
    (directory / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


# ---------------------------------------------------------------------------------------------- readers
def _jsonl(path: Path, required: list[str], out: Converted) -> list[dict]:
    rows = read_jsonl(path, required=required)
    for reason, n in rows.reject_counts().items():
        out.rejects[reason] = out.rejects.get(reason, 0) + n
    return rows.rows


def _exams_rows(path: Path, src: LocalSource, out: Converted):
    for row in _jsonl(path, ["question", "A", "B", "C", "D", "answer"], out):
        if row["answer"] not in ("A", "B", "C", "D"):
            out.reject("answer_not_A_to_D")
            continue
        subject = src.subject or str(row.get("subject") or row.get("id", "")).rsplit("-", 1)[0] or "general"
        yield row, subject


def _exams(path: Path, src: LocalSource, out: Converted, split: str, _dev: str) -> None:
    for row, subject in _exams_rows(path, src, out):
        out.add(
            "default", split, {k: row[k] for k in ("question", "A", "B", "C", "D", "answer")} | {"subject": subject}
        )


def _exams_alghafa(path: Path, src: LocalSource, out: Converted, split: str, _dev: str) -> None:
    for row, _ in _exams_rows(path, src, out):
        out.add(
            "mcq_exams_test_ar",
            split,
            {
                "query": row["question"],
                "sol1": row["A"],
                "sol2": row["B"],
                "sol3": row["C"],
                "sol4": row["D"],
                "label": "ABCD".index(row["answer"]),
            },
        )


def _aratrust(path: Path, src: LocalSource, out: Converted, split: str, _dev: str) -> None:
    for row in _jsonl(path, ["category", "question", "A", "B", "C", "answer"], out):
        answer = row["answer"].strip().replace("ا", "أ") if row["answer"].strip() == "ا" else row["answer"].strip()
        if answer not in ARABIC_LETTERS[:3]:
            out.reject("answer_not_arabic_letter")
            continue
        # The hub's subset names drop the spaces: "Mental Health" -> "MentalHealth".
        out.add(
            row["category"].replace(" ", ""),
            split,
            {"Question": row["question"], "A": row["A"], "B": row["B"], "C": row["C"], "Answer": answer},
        )


def _arabicmmlu(path: Path, src: LocalSource, out: Converted, split: str, dev: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file not found: {path}")
    with open(path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if not row.get("Question") or row.get("Answer Key") not in ("A", "B", "C", "D", "E"):
                out.reject("missing_question_or_answer")
                continue
            level = LEVELS.get(row.get("Level") or "", row.get("Level") or "")
            subset = f"{row['Subject']} ({level})" if level else row["Subject"]
            keep = {
                k: (row.get(k) or None)
                for k in (
                    "Question",
                    "Context",
                    "Answer Key",
                    "Option 1",
                    "Option 2",
                    "Option 3",
                    "Option 4",
                    "Option 5",
                )
            }
            out.add(subset, dev if row.get("is_few_shot") == "1" else split, keep)


def _mmlu_translated(path: Path, src: LocalSource, out: Converted, split: str, dev: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"benchmark directory not found: {path} (expected <subject>_test.csv files)")
    files = sorted(path.rglob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{path}: no <subject>_test.csv / <subject>_dev.csv files")
    for f in files:
        subject, _, kind = f.stem.rpartition("_")
        target = dev if kind == "dev" else split
        with open(f, encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                if len(row) != 6 or row[5] not in ("A", "B", "C", "D"):
                    out.reject("not_question_A_B_C_D_answer")
                    continue
                out.add(subject, target, {"question": row[0], "choices": row[1:5], "answer": "ABCD".index(row[5])})


def _acva(path: Path, src: LocalSource, out: Converted, split: str, _dev: str) -> None:
    for row in _jsonl(path, ["id", "question", "answer"], out):
        answer = {"نعم": "صح", "لا": "خطأ", "صح": "صح", "خطأ": "خطأ"}.get(row["answer"].strip())
        if answer is None:
            out.reject("answer_not_yes_no")
            continue
        # Hub subset names use underscores where the ids have spaces ("Arab Empire" -> "Arab_Empire").
        out.add(row["id"].rsplit("-", 1)[0].replace(" ", "_"), split, {"question": row["question"], "answer": answer})


def check_subset(task: str, converted: Converted, subset: str, split: str) -> None:
    if not converted.subsets.get(subset, {}).get(split):
        have = sorted(converted.subsets)
        raise ConfigError(
            f"{task}: the local data has no {split!r} rows for subset {subset!r}; subsets with rows: {have}"
        )
