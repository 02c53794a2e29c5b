"""Published figures of the Hala report (Hammoud, Zbeeb, Ghanem; arXiv 2509.14008), for drawing beside ours.

The report itself could not be read offline. Every figure here carries the source tag under which
``../shared/PAPER.md`` lists it, and is cited by that source, never as the report when the tag is not [P]:

* [P] the report's abstract, its ACL Anthology page and the released model cards' metadata;
* [A] the same authors' later AraLingBench paper (arXiv 2511.14295), Table 4, which reprints Hala's
  per-benchmark scores; the six-benchmark means below are recomputed from that table;
* [S] secondary reviews that probably read the PDF (not the authors); [U] found nowhere (our choice).

Our config choices map to these figures through ``MODEL_FIGURES`` (the ``model`` group's option names):
a run of ``model=lfm2_1.2b`` is compared with Hala-1.2B. Tiny and embedded models have no published
counterpart, so reports show no paper figure beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

CITATION = "Hammoud, Zbeeb, Ghanem: Hala Technical Report, arXiv 2509.14008 (2025)"

# The six benchmarks whose mean the report's headline compares ([S]; the names and per-benchmark columns
# are [A]: AraLingBench Table 4). Names are our metric namespace: eval/<name>/<metric>.
BENCHMARKS = ("alghafa", "arabic_mmlu", "arabic_exams", "madinah_qa", "aratrust", "arabic_mmlu_ht")
BENCHMARK_TITLES = {
    "alghafa": "AlGhafa",
    "arabic_mmlu": "ArabicMMLU",
    "arabic_exams": "EXAMS",
    "madinah_qa": "MadinahQA",
    "aratrust": "AraTrust",
    "arabic_mmlu_ht": "ArbMMLU-HT",
}

SOURCE_TAGS = {
    "P": "arXiv 2509.14008 (abstract / ACL Anthology page / model cards)",
    "A": "AraLingBench, arXiv 2511.14295, Table 4 (reprints Hala's scores)",
    "S": "secondary reviews of arXiv 2509.14008 (not the authors)",
    "U": "not published: our choice",
}
ARALINGBENCH_TABLE = "[A] " + SOURCE_TAGS["A"]
MEAN_OF_TABLE = "[A] mean of the six per-benchmark scores of " + SOURCE_TAGS["A"] + ", recomputed"
TRANSLATOR_SOURCE = "[S] " + SOURCE_TAGS["S"] + ": translator evaluation on an EN->AR MMLU translation set"


@dataclass(frozen=True)
class PaperScore:
    """One published number: what it measures, its value, and its source (tag first)."""

    model: str  # the model as the sources name it
    metric: str  # our metric key relative to its step, e.g. "six_benchmark_mean" or "bleu"
    value: float
    source: str  # "[tag] where"


# Per-benchmark zero-shot scores (percent), lighteval OALL v2 tasks ([A] AraLingBench Table 4).
BENCHMARK_SCORES: dict[str, dict[str, float]] = {
    "Hala-9B": {
        "alghafa": 78.3,
        "arabic_mmlu": 65.6,
        "arabic_exams": 53.8,
        "madinah_qa": 70.4,
        "aratrust": 89.6,
        "arabic_mmlu_ht": 61.4,
    },
    "Fanar-1-9B-Instruct": {
        "alghafa": 76.4,
        "arabic_mmlu": 65.8,
        "arabic_exams": 52.7,
        "madinah_qa": 73.4,
        "aratrust": 88.3,
        "arabic_mmlu_ht": 58.6,
    },
    "Hala-1.2B": {
        "alghafa": 59.2,
        "arabic_mmlu": 48.6,
        "arabic_exams": 43.4,
        "madinah_qa": 41.6,
        "aratrust": 71.7,
        "arabic_mmlu_ht": 44.2,
    },
    "Hala-700M": {
        "alghafa": 55.5,
        "arabic_mmlu": 45.9,
        "arabic_exams": 40.6,
        "madinah_qa": 34.7,
        "aratrust": 65.2,
        "arabic_mmlu_ht": 39.4,
    },
    "Hala-350M": {
        "alghafa": 51.4,
        "arabic_mmlu": 41.2,
        "arabic_exams": 36.9,
        "madinah_qa": 34.5,
        "aratrust": 52.1,
        "arabic_mmlu_ht": 35.4,
    },
}


def _mean_of_six(model: str) -> PaperScore:
    scores = BENCHMARK_SCORES[model]
    return PaperScore(model, "six_benchmark_mean", sum(scores[b] for b in BENCHMARKS) / len(BENCHMARKS), MEAN_OF_TABLE)


# Six-benchmark mean per model, recomputed from the [A] table (69.85 for Hala-9B and 51.45 for Hala-1.2B;
# reviews [S] quote 69.9 and 51.4). Fanar-1-9B-Instruct is Hala-9B's base.
AVERAGES = {model: _mean_of_six(model) for model in BENCHMARK_SCORES}

# Translator quality, LFM2-1.2B base -> fine-tuned Hala translator, on the report's EN->AR MMLU translation
# set ([S]: size and construction of the set unknown).
TRANSLATOR_BLEU = {
    "LFM2-1.2B (base)": PaperScore("LFM2-1.2B", "bleu", 16.0, TRANSLATOR_SOURCE),
    "Hala translator": PaperScore("LFM2-1.2B fine-tuned (Hala translator)", "bleu", 48.2, TRANSLATOR_SOURCE),
}
TRANSLATOR_CHRF = {
    "LFM2-1.2B (base)": PaperScore("LFM2-1.2B", "chrf", 43.2, TRANSLATOR_SOURCE),
    "Hala translator": PaperScore("LFM2-1.2B fine-tuned (Hala translator)", "chrf", 64.2, TRANSLATOR_SOURCE),
}

# Our `model` config options -> the Hala model trained from that base ([P] for Fanar-1-9B-Instruct -> Hala-9B;
# [S] for LFM2-350M/700M/1.2B -> Hala-350M/700M/1.2B).
MODEL_FIGURES = {
    "lfm2_350m": "Hala-350M",
    "lfm2_700m": "Hala-700M",
    "lfm2_1.2b": "Hala-1.2B",
    "fanar_9b": "Hala-9B",
}

# The slerp t the report merges each SFT model with its base at ([P] slerp; t = 0.5 is [S]).
SLERP_T = 0.5

# Hardware of the report's runs: 8x H100 ([S]; one node of 8 is our reading).
GPUS_PER_NODE = 8

# Limitation the sources name: MSA only, no dialects ([S]); the per-variety FLORES table answers it.
LIMITATION_MSA_ONLY = "[S] the model and its data are Modern Standard Arabic only (no dialects)"


def average_for_choice(model_choice: str | None) -> PaperScore | None:
    """The published six-benchmark mean of the Hala model built from our ``model`` option, if any."""
    name = MODEL_FIGURES.get(model_choice or "")
    return AVERAGES.get(name) if name else None


def benchmark_scores_for_choice(model_choice: str | None) -> tuple[str, dict[str, float]] | None:
    """(Hala model, {benchmark: published score}) for our ``model`` option, if any."""
    name = MODEL_FIGURES.get(model_choice or "")
    return (name, BENCHMARK_SCORES[name]) if name in BENCHMARK_SCORES else None
