"""Draw the stand-in teacher's training pairs from Tatoeba ara-eng (how tatoeba_ara_eng_sample.jsonl was made).

    python -m hala_exp.assets.teacher.make_sample /path/to/shared/data/parallel/tatoeba_ara_eng

Keeps Modern Standard Arabic lines (label ``ara``), drops pairs whose English repeats an earlier one and pairs
with either side in the embedded held-out set (compared case-, space- and end-punctuation-insensitively), then
takes a seeded random ``COUNT`` and writes them in file order with their 1-based line number. The Arabic loses
its diacritics (harakat, superscript alef, tatweel): Tatoeba writes them on some words only, FLORES and the
held-out text do not, and a model this small otherwise spends its capacity and its outputs on them.
"""

from __future__ import annotations

import json
import random
import re
import sys
import unicodedata
from pathlib import Path

STEM = "tatoeba-test-v2021-08-07"
COUNT = 4000  # our choice: enough for a 1.7 M-parameter model to write Arabic, small enough to ship (~0.4 MB)
SEED = 0
OUT = Path(__file__).with_name("tatoeba_ara_eng_sample.jsonl")
HELDOUT = Path(__file__).parents[1] / "embedded" / "parallel_heldout.jsonl"
DIACRITICS = re.compile("[\u064b-\u0652\u0670\u0640]")  # fathatan..sukun, superscript alef, tatweel


def undiacritized(text: str) -> str:
    return DIACRITICS.sub("", text)


def key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).strip(" .?!؟")


def heldout_keys(path: Path = HELDOUT) -> set[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {key(r["en"]) for r in rows} | {key(r["ar"]) for r in rows}


def draw(tatoeba_dir: Path, count: int = COUNT, seed: int = SEED) -> list[dict]:
    labels, en, ar = (
        (tatoeba_dir / f"{STEM}.{ext}").read_text(encoding="utf-8").splitlines() for ext in ("ara.labels", "eng", "ara")
    )
    if not len(labels) == len(en) == len(ar):
        raise ValueError(f"{tatoeba_dir}: {STEM}.* files are not line-aligned ({len(labels)}, {len(en)}, {len(ar)})")
    excluded, seen, rows = heldout_keys(), set(), []
    for line, (label, e, a) in enumerate(zip(labels, en, ar), start=1):
        e, a = e.strip(), undiacritized(a).strip()
        if label != "ara" or not e or not a or key(e) in excluded or key(a) in excluded or key(e) in seen:
            continue
        seen.add(key(e))
        rows.append({"line": line, "en": e, "ar": a})
    if len(rows) < count:
        raise ValueError(f"{tatoeba_dir}: only {len(rows)} usable pairs, {count} asked")
    return sorted(random.Random(seed).sample(rows, count), key=lambda r: r["line"])


def main(argv: list[str]) -> None:
    rows = draw(Path(argv[0]))
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{OUT}: {len(rows)} pairs")


if __name__ == "__main__":
    main(sys.argv[1:])
