"""Deterministic source files for the mix-equivalence test (tests/test_data_mixes.py).

``write_inputs(dir)`` writes small sources in four schemas (hashed and given ids, bad rows, an id shared
across sources, up-sampling, a parallel source) and returns two mix configs over them. The expected rows in
``tests/fixtures/mix_before_arrow.json`` were recorded from the list-based ``load_mix`` of commit 6aecafc
(before mixes moved to Arrow) with ``python tests/data_mix_inputs.py``, run against that commit.
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def _text(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + f" #{i}."


def _write(path: Path, rows: list) -> str:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return str(path)


def write_inputs(root: Path) -> dict[str, dict]:
    root.mkdir(parents=True, exist_ok=True)
    orca = [
        {
            "system_prompt": "Be brief." if i % 3 == 0 else "",
            "question": _text(i, 5 + i % 9),
            "response": _text(i + 1, 9),
        }
        for i in range(40)
    ]
    orca[5] = {"question": "no answer"}  # missing:response
    orca.insert(11, "not json {")
    orca.append(dict(orca[3]))  # same content -> same hashed id -> duplicate_id
    lamini = [{"id": f"lam-{i}", "instruction": _text(i, 6), "response": _text(i + 2, 8)} for i in range(30)]
    lamini[7]["instruction"] = "   "  # empty:instruction
    share = [
        {
            "id": f"sg-{i}",
            "conversations": [
                {"from": "system", "value": "You are helpful."},
                {"from": "human", "value": _text(i, 4)},
                {"from": "gpt", "value": _text(i + 5, 12)},
            ][(i % 2) :],
        }
        for i in range(12)
    ]
    share[4]["id"] = "lam-3"  # an id already taken by another source: duplicate_id
    parallel = [{"en": _text(i, 6), "ar": "مرحبا " * (1 + i % 4) + f"{i}"} for i in range(15)]
    parallel[2]["ar"] = ""  # empty:ar
    instructions = {
        "seed": 7,
        "sources": [
            {"name": "orca", "adapter": "open_orca", "path": _write(root / "orca.jsonl", orca), "fraction": 0.4},
            {"name": "lam", "adapter": "lamini", "path": _write(root / "lamini.jsonl", lamini), "fraction": 2.5},
            {"name": "share", "adapter": "sharegpt", "path": _write(root / "share.jsonl", share), "count": 20},
        ],
    }
    pairs = {
        "seed": 3,
        "sources": [
            {"name": "par", "adapter": "parallel", "path": _write(root / "par.jsonl", parallel), "count": 5},
            {
                "name": "embedded",
                "adapter": "parallel",
                "path": "package://hala_exp/assets/embedded/parallel_train.jsonl",
                "fraction": 0.5,
            },
        ],
    }
    return {"instructions": instructions, "pairs": pairs}


def _record() -> None:  # run against the commit whose output is recorded
    import tempfile

    from hala_exp.data.sources import load_mix, reject_counts

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, mix in write_inputs(Path(tmp)).items():
            rows, rejects, per_source = load_mix(mix, target_language="ar")
            out[name] = {"rows": rows, "per_source": per_source, "rejects": reject_counts(rejects)}
    target = Path(__file__).parent / "fixtures" / "mix_before_arrow.json"
    target.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    _record()
