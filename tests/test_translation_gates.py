"""Each quality gate rejects its case and lets a good translation through (both directions)."""

import pytest

from hala_exp.translation.config import GateConfig
from hala_exp.translation.gates import check, longest_loop, script_ratio

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
