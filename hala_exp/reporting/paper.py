"""Published figures of the Hala report (arXiv 2509.14008), for drawing beside our own results.

Every number carries its source. Section and table numbers are left out where we could not read them in
the report's text (only its abstract and third-party summaries were reachable): those figures are the ones
transcribed in issue 5 of this repository, to be checked against the PDF. The report publishes the
six-benchmark average of each Hala model and of the strongest base it compares with, and the translator's
BLEU before and after fine-tuning. Per-benchmark
scores are left out here: we could not check them against the report's text, and a wrong reference is
worse than none (``BENCHMARK_SCORES`` stays empty until someone transcribes and cites them).

Our config choices map to these figures through ``MODEL_FIGURES`` (the ``model`` group's option names):
a run of ``model=lfm2_1.2b`` is compared with Hala-1.2B. Tiny and embedded models have no published
counterpart, so reports show no paper figure beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

ARXIV_ID = "2509.14008"
CITATION = "Hammoud, Zbeeb, Ghanem: Hala Technical Report, arXiv 2509.14008 (2025)"

# The six benchmarks the report averages (arXiv 2509.14008, evaluation: AlGhafa, ArabicMMLU, EXAMS,
# MadinahQA, AraTrust, ArbMMLU-HT; the Open Arabic LLM Leaderboard v2 set without the generative ALRAGE).
# Names are our metric namespace: eval/<name>/<metric>.
BENCHMARKS = ("alghafa", "arabic_mmlu", "arabic_exams", "madinah_qa", "aratrust", "arabic_mmlu_ht")
BENCHMARK_TITLES = {
    "alghafa": "AlGhafa",
    "arabic_mmlu": "ArabicMMLU",
    "arabic_exams": "EXAMS",
    "madinah_qa": "MadinahQA",
    "aratrust": "AraTrust",
    "arabic_mmlu_ht": "ArbMMLU-HT",
}


NANO_TABLE = "arXiv 2509.14008, nano (<= 2B) results table, average"
SMALL_TABLE = "arXiv 2509.14008, small (7-9B) results table, average"
TRANSLATION_TABLE = "arXiv 2509.14008, translator evaluation (fine-tuned LFM2-1.2B vs its base)"


@dataclass(frozen=True)
class PaperScore:
    """One published number: what it measures, its value, and where the report states it."""

    model: str  # the model as the report names it
    metric: str  # our metric key relative to its step, e.g. "average" or "bleu"
    value: float
    source: str  # section / table of arXiv 2509.14008


# Six-benchmark average (0-100) per model (arXiv 2509.14008, results tables of the "nano" <= 2B and "small"
# 7-9B categories, average column; transcribed in issue 5 of this repo, table number not checked).
AVERAGES = {
    "Hala-350M": PaperScore("Hala-350M", "average", 41.92, NANO_TABLE),
    "Hala-700M": PaperScore("Hala-700M", "average", 46.88, NANO_TABLE),
    "Hala-1.2B": PaperScore("Hala-1.2B", "average", 51.45, NANO_TABLE),
    "Hala-9B": PaperScore("Hala-9B", "average", 69.85, SMALL_TABLE),
    "Fanar-1-9B-Instruct": PaperScore("Fanar-1-9B-Instruct", "average", 69.20, SMALL_TABLE + " (Hala-9B's base)"),
}

# Translator quality, BLEU (arXiv 2509.14008, translator evaluation: the fine-tuned LFM2-1.2B translator
# against its base model on the report's own test set; transcribed in issue 5, table number not checked).
TRANSLATOR_BLEU = {
    "LFM2-1.2B (base)": PaperScore("LFM2-1.2B", "bleu", 16.0, TRANSLATION_TABLE),
    "Hala translator": PaperScore("LFM2-1.2B fine-tuned (Hala translator)", "bleu", 48.2, TRANSLATION_TABLE),
}

# Per-benchmark scores: not transcribed (see the module docstring). Shape: {model: {benchmark: value}}.
BENCHMARK_SCORES: dict[str, dict[str, float]] = {}

# Our `model` config options -> the Hala model trained from that base (arXiv 2509.14008, abstract and model
# cards: Hala-350M/700M/1.2B tune LFM2-350M/700M/1.2B; Hala-9B tunes Fanar-1-9B-Instruct).
MODEL_FIGURES = {
    "lfm2_350m": "Hala-350M",
    "lfm2_700m": "Hala-700M",
    "lfm2_1.2b": "Hala-1.2B",
    "fanar_9b": "Hala-9B",
}

# The slerp t the report merges with (arXiv 2509.14008, model merging, as stated in issue 5).
SLERP_T = 0.5

# Compute the report trains on: a budget of 8x H100 GPUs (arXiv 2509.14008; one node of 8 is our reading).
GPUS_PER_NODE = 8


def average_for_choice(model_choice: str | None) -> PaperScore | None:
    """The published six-benchmark average of the Hala model built from our ``model`` option, if any."""
    name = MODEL_FIGURES.get(model_choice or "")
    return AVERAGES.get(name) if name else None
