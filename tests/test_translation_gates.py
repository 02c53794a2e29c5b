"""Each quality gate rejects its case and lets a good translation through (both directions)."""

import pytest

from hala_exp.translation.config import GateConfig
from hala_exp.translation.gates import check, collapsed_outputs, longest_loop, script_ratio

SRC = "The weather is nice today, so we will walk to the park after lunch."
GOOD_AR = "الطقس جميل اليوم، لذلك سنمشي إلى الحديقة بعد الغداء."
AR_REFUSALS = [r"(?:عذرًا|عذرا|آسف)[،,]?\s*(?:لكن(?:ني)?\s*)?(?:لا\s+(?:أستطيع|يمكنني))"]
CFG = GateConfig()


def test_good_translation_passes_both_directions():
    assert check(SRC, GOOD_AR, "Arabic", CFG, AR_REFUSALS) is None
    assert check(GOOD_AR, SRC, "Latin", CFG) is None


@pytest.mark.parametrize(
    "output,reason",
    [
        ("", "empty"),
        ("   \n ", "empty"),
        (SRC, "copy"),
        ("I'm sorry, but I can't translate this text.", "refusal"),
        ("عذرًا، لا أستطيع ترجمة هذا النص لأنه غير مناسب.", "refusal"),
        ("The weather is nice today but this is still English text here.", "script"),
        ("الطقس", "length_ratio"),
        (GOOD_AR + " " + "الطقس جميل " * 30, "length_ratio"),
        ("الطقس جميل " + "جدا " * 12, "repetition"),
    ],
)
def test_each_gate_rejects_its_case(output, reason):
    assert check(SRC, output, "Arabic", CFG, AR_REFUSALS) == reason


def test_repetition_in_source_is_not_a_loop():
    src = "ha " * 12 + "said the clown, laughing at the joke."
    out = "ها " * 12 + "قال المهرج وهو يضحك على النكتة."
    assert check(src, out, "Arabic", CFG) is None


def test_refusal_in_source_may_be_translated():
    src = "I'm sorry, but I can't help with that request today."
    assert check(src, "عذرًا، لكن لا يمكنني المساعدة في هذا الطلب اليوم.", "Arabic", CFG, AR_REFUSALS) is None


def test_gates_can_be_disabled():
    assert check(SRC, "", "Arabic", GateConfig(enabled=False)) is None


def test_script_ratio_and_loop_helpers():
    assert script_ratio("abc", "Latin") == 1.0
    assert script_ratio("123", "Arabic") is None
    assert script_ratio("مرحبا abc", "Arabic") == pytest.approx(5 / 8)
    assert longest_loop("abc abc abc abc abc ") == 5
    assert longest_loop("no loops in this sentence") == 1


NUM_SRC = "In 2023 the library lent 1,200 books to 350 readers."
NUM_AR = "في عام 2023 أعارت المكتبة 1,200 كتاب إلى 350 قارئًا."


@pytest.mark.parametrize(
    "output",
    [
        NUM_AR,
        "في عام ٢٠٢٣ أعارت المكتبة ١٬٢٠٠ كتاب إلى ٣٥٠ قارئًا.",
        "في عام 2023 أعارت المكتبة 1200 كتاب إلى 350 قارئًا.",
    ],
)
def test_numbers_gate_passes_the_sources_numbers_in_any_digits(output):
    assert check(NUM_SRC, output, "Arabic", CFG) is None
    assert check(output, NUM_SRC, "Latin", CFG) is None  # AR->EN: Arabic-Indic digits in the source


def test_numbers_gate_rejects_an_output_that_drops_or_changes_a_number():
    assert check(NUM_SRC, "في عام 2023 أعارت المكتبة كتبًا كثيرة إلى 350 قارئًا.", "Arabic", CFG) == "numbers"
    assert check(NUM_SRC, NUM_AR.replace("350", "530"), "Arabic", CFG) == "numbers"
    assert check(NUM_SRC, "كان سامي يعيش في حي هادئ مع عائلته الكبيرة.", "Arabic", CFG) == "numbers"
    assert check(NUM_SRC, "كان سامي يعيش في حي هادئ مع عائلته الكبيرة.", "Arabic", GateConfig(numbers=False)) is None


def test_numbers_gate_exempts_single_digits_and_ordinals():
    src = "She was born on the 21st of May and has 3 brothers in the 1990s."
    assert check(src, "وُلدت في الحادي والعشرين من مايو ولديها ثلاثة إخوة في التسعينيات.", "Arabic", CFG) is None


def _translate_shard(translate, sources):
    """What the translate stage does with one shard: translate every turn, find collapsed outputs, gate."""
    outputs = [translate(s) for s in sources]
    collapsed = collapsed_outputs(zip(sources, outputs), CFG)
    return [check(s, o, "Arabic", CFG, collapsed=collapsed) for s, o in zip(sources, outputs)]


SHARD = [
    "The weather is nice today, so we will walk to the park.",
    "My brother works as a doctor in the city hospital.",
    "Please close the window before you leave the house.",
    "We read three books about history last summer.",
]
SHARD_AR = {
    SHARD[0]: "الطقس جميل اليوم، لذلك سنمشي إلى الحديقة.",
    SHARD[1]: "يعمل أخي طبيبًا في مستشفى المدينة.",
    SHARD[2]: "من فضلك أغلق النافذة قبل أن تغادر المنزل.",
    SHARD[3]: "قرأنا ثلاثة كتب عن التاريخ في الصيف الماضي.",
}


def test_collapsed_translator_gets_its_rows_rejected():
    """A translator that writes one fluent Arabic sentence whatever the source passes every per-turn gate."""
    one = "كان سامي يعيش في حي هادئ مع عائلته."
    assert all(check(s, one, "Arabic", CFG) is None for s in SHARD)
    assert _translate_shard(lambda s: one, SHARD) == ["collapsed"] * 4
    # collapsed on three of the four sources: those three go, the real translation stays
    mixed = lambda s: SHARD_AR[s] if s == SHARD[3] else one  # noqa: E731
    assert _translate_shard(mixed, SHARD) == ["collapsed"] * 3 + [None]


def test_distinct_translations_and_short_shared_ones_are_not_collapsed():
    assert _translate_shard(SHARD_AR.get, SHARD) == [None] * 4
    thanks = ["Thanks!", "Thank you.", "Thank you so much", "Thanks a lot."]  # short sources may share one
    assert collapsed_outputs([(s, "شكرًا جزيلًا لك.") for s in thanks], CFG) == frozenset()
    # the same source repeated (a shared system prompt) is one source, not many
    assert collapsed_outputs([(SHARD[0], SHARD_AR[SHARD[0]])] * 5, CFG) == frozenset()
    assert collapsed_outputs([(s, "كان سامي.") for s in SHARD], GateConfig(collapse_min_sources=None)) == frozenset()
