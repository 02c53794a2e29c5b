"""Protected spans round-trip byte-exact, and a translation that loses a span cannot be restored."""

import pytest

from hala_exp.translation import spans
from hala_exp.translation.segments import has_letters, join, split

TRICKY = [
    # nested fences: a ```` fence holding a ``` fence
    "Here is markdown:\n\n````markdown\nText\n```python\nprint('hi')\n```\nmore\n````\n\nDone.",
    "Unclosed fence:\n```js\nlet x = 1;\n",
    "~~~\ncode with ``` inside\n~~~\nafter",
    "Inline `a`, double ``code with ` tick`` and `x = {y}`.",
    r"Math $\frac{a}{b^{2}}$ and $$\sum_{i=1}^{n} \{x_i\}$$ and \(\sqrt[3]{x}\).",
    r"Block:\begin{align}a &= \frac{1}{2} \\ \begin{cases} x \end{cases}\end{align} end.",
    r"Loose \textbf{bold {nested} text} command and \alpha.",
    "It costs $5 and $10, not math.",
    "راجع https://example.com/path?q=1&r=(2)، ثم www.test.org/عربي.",
    "الرابط (https://ar.wikipedia.org/wiki/Foo_(bar)) مهم.",
    "Mail me at first.last+tag@mail.example.co.uk, or أرسل إلى info@site.sa.",
    "Hello {name}, you have {0} items, {{ jinja }} and ${HOME} with %(count)d and %s.",
    "A literal marker [[0]] and [[12]] in the source.",
    "Mixed: see `https://not-a-span-inside-code.com` and https://x.io/a_b.",
    "",
    "Plain prose with no spans at all.",
]


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_byte_exact(text):
    p = spans.protect(text)
    assert spans.restore(p.text, p.spans) == text
    # what the translator sees has none of the protected content
    assert all(s not in p.text for s in p.spans if not spans.MARKER_RE.fullmatch(s))


def test_expected_spans_are_found():
    p = spans.protect(TRICKY[0])
    assert p.spans[0].startswith("````markdown") and p.spans[0].endswith("````")
    assert "print('hi')" not in p.text
    p = spans.protect(TRICKY[4])
    assert p.spans == [r"$\frac{a}{b^{2}}$", r"$$\sum_{i=1}^{n} \{x_i\}$$", r"\(\sqrt[3]{x}\)"]
    assert spans.protect(TRICKY[7]).spans == []  # currency, not math
    p = spans.protect(TRICKY[8])
    assert p.spans == ["https://example.com/path?q=1&r=(2)", "www.test.org/"]
    assert spans.protect(TRICKY[9]).spans == ["https://ar.wikipedia.org/wiki/Foo_(bar)"]
    assert spans.protect(TRICKY[10]).spans == ["first.last+tag@mail.example.co.uk", "info@site.sa"]
    assert spans.protect(TRICKY[11]).spans == ["{name}", "{0}", "{{ jinja }}", "${HOME}", "%(count)d", "%s"]
    assert spans.protect(TRICKY[13]).spans == ["`https://not-a-span-inside-code.com`", "https://x.io/a_b"]


def test_translated_markers_restore_in_new_positions_and_arabic_digits():
    p = spans.protect("Run `ls` then open https://a.b/c.")
    translated = "افتح [[١]] بعد تشغيل [[0]]."
    assert spans.restore(translated, p.spans) == "افتح https://a.b/c بعد تشغيل `ls`."


@pytest.mark.parametrize("broken", ["only [[0]]", "[[0]] [[1]] [[1]]", "[[0]] [[1]] [[2]]", "none"])
def test_lost_duplicated_or_unknown_markers_are_not_guessed(broken):
    p = spans.protect("Run `ls` then open https://a.b/c.")
    assert spans.restore(broken, p.spans) is None


def test_kinds_can_be_switched_off():
    assert spans.protect("see https://a.b", kinds=["email"]).spans == []


def test_segments_rejoin_in_order_under_budget():
    words = lambda s: len(s.split())  # noqa: E731
    text = ("First sentence here. Second one follows! Third? " * 5).strip() + "\n\n[[0]]\n\n" + "x " * 30
    pieces = split(text, words, budget=7)
    assert join([p.text for p in pieces]) == text
    for p in pieces:
        if p.translate:
            assert words(p.text) <= 7 and has_letters(p.text)
        else:
            assert not has_letters(p.text) or p.text.strip() == ""


def test_marker_lines_are_not_sent_to_the_translator():
    p = spans.protect("Run this:\n```sh\nls -la\n```\nIt lists files.")
    pieces = split(p.text, lambda s: len(s.split()), budget=50)
    assert [x.text for x in pieces if x.translate] == ["Run this:", "It lists files."]
    assert join([x.text for x in pieces]) == p.text
