"""Protected spans round-trip byte-exact, and a translation that loses a span cannot be restored."""

import re

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


def test_single_line_cuts_at_every_line_break_and_rejoins_exactly():
    words = lambda s: len(s.split())  # noqa: E731
    text = "a line.\nanother line."
    assert [p.text for p in split(text, words, budget=50)] == [text], "by default short lines travel together"
    pieces = split(text, words, budget=50, single_line=True)
    assert [(p.text, p.translate) for p in pieces] == [("a line.", True), ("\n", False), ("another line.", True)]
    # Under a budget, a long line is still cut at sentences then words, and no piece sent holds a line break.
    text = "One two three. Four five six seven eight nine ten.\n  [[0]]\nShort one.\n\nNext paragraph here."
    pieces = split(text, words, budget=4, single_line=True)
    assert join([p.text for p in pieces]) == text
    sent = [p.text for p in pieces if p.translate]
    assert sent == ["One two three.", "Four five six seven", "eight nine ten.", "Short one.", "Next paragraph here."]
    assert all(words(t) <= 4 and "\n" not in t for t in sent)


def test_marker_lines_are_not_sent_to_the_translator():
    p = spans.protect("Run this:\n```sh\nls -la\n```\nIt lists files.")
    pieces = split(p.text, lambda s: len(s.split()), budget=50)
    assert [x.text for x in pieces if x.translate] == ["Run this:", "It lists files."]
    assert join([x.text for x in pieces]) == p.text


# ------------------------------------------------------------------ wider kinds (printf, markup, paths, templates)
WIDER = {
    "printf": ("Total: %.2f, left %-5d, done %% and %(name)s.", ["%.2f", "%-5d", "%%", "%(name)s"]),
    "html_tag": (
        'Click <a href="https://x.io/?a=1&b=2" title="Open the page">here</a> or <img src="/i/cat.png" alt="A cat"/>.',
        ['<a href="https://x.io/?a=1&b=2" title="Open the page">', "</a>", '<img src="/i/cat.png" alt="A cat"/>'],
    ),
    "xml_tag": (
        '<?xml version="1.0"?><note lang="en">Remember me</note>',
        ['<?xml version="1.0"?>', '<note lang="en">', "</note>"],
    ),
    "indented_code": (
        "Run this:\n\n    for i in range(3):\n        print(i)\n\nThen stop.",
        ["    for i in range(3):\n        print(i)"],
    ),
    "windows_path": (
        r'Open C:\Users\new\table.txt, \\server\share\report.docx or "C:\Program Files\App\app.exe".',
        [r"C:\Users\new\table.txt", r"\\server\share\report.docx", r'"C:\Program Files\App\app.exe"'],
    ),
    "posix_path": (
        "Edit /etc/nginx/nginx.conf, then run ./bin/start.sh and ~/notes.",
        ["/etc/nginx/nginx.conf", "./bin/start.sh", "~/notes"],
    ),
    "jinja": (
        "Hello {{ user.name }}{% if admin %}, admin{% endif %}{# greeting #}!",
        ["{{ user.name }}", "{% if admin %}", "{% endif %}", "{# greeting #}"],
    ),
    "python_format": (
        "Dear {name!r}, you owe {amount:>10.2f} since {0} and {}.",
        ["{name!r}", "{amount:>10.2f}", "{0}", "{}"],
    ),
    "icu": (
        "You have {count, plural, one {# new message} other {# new messages}} since {when, date}.",
        ["{count, plural, one {# new message} other {# new messages}}", "{when, date}"],
    ),
}


@pytest.mark.parametrize("name", list(WIDER))
def test_wider_kinds_are_found_and_restored_byte_exact(name):
    text, expected = WIDER[name]
    p = spans.protect(text)
    assert p.spans == expected
    assert spans.restore(p.text, p.spans) == text
    # a translator that changes every Latin letter around the markers leaves each span byte-exact
    from test_translation_support import arabize

    restored = spans.restore(arabize(p.text), p.spans)
    assert restored is not None and all(span in restored for span in expected)


@pytest.mark.parametrize(
    "text",
    [
        "The job is 100% done, 50%off today, and a % b is the remainder; 20 % of people agree.",
        "If a<b and c>d then a < b; use either/or, 1/2 cup, km/h and /etc alone.",
        'A set {the red one} and a brace { x } and JSON {"a": 1} stay prose.',
    ],
)
def test_prose_that_looks_like_a_span_stays_prose(text):
    assert spans.protect(text).spans == []


def test_markup_inside_math_and_code_stays_with_them():
    assert spans.protect("If $a<b>c$ then `<div>` is code and <i>this</i> is markup.").spans == [
        "$a<b>c$",
        "`<div>`",
        "<i>",
        "</i>",
    ]


def test_paths_hold_no_false_latex_spans():
    text = r"Save to C:\Users\alpha\beta.txt or D:\new\frac.tex, then \textbf{bold} it."
    p = spans.protect(text)
    assert p.spans == [r"C:\Users\alpha\beta.txt", r"D:\new\frac.tex", r"\textbf{bold}"]
    # Only a path's first word is a path when an unquoted name has a space; the rest is not LaTeX either.
    assert spans.protect(r"In C:\Program Files\App there.").spans == [r"C:\Program"]


def test_indented_lines_that_continue_a_list_or_have_no_code_signal_are_prose():
    text = "Steps:\n\n1. Install it.\n\n    Then read the notes.\n\nDone."
    assert spans.protect(text).spans == []
    recipe = "Ingredients:\n\n    two cups of water\n    one egg (optional)\n    vanilla\n\nMix them."
    assert spans.protect(recipe).spans == []  # indented prose in chat data: translated, not kept as code


# ------------------------------------------------------------------ the translate stage rejects damaged spans
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from test_translation_support import tiny_model

    return tiny_model(tmp_path_factory.mktemp("models"))


def _rows(text: str) -> list[dict]:
    prose = "Please explain the following example to a new reader in plain words"
    return [{"id": "w0", "source": "s", "messages": [{"role": "user", "content": f"{prose}.\n\n{text}\n\nThank you."}]}]


def _translate(model_dir, out_dir, monkeypatch, text, transform):
    from test_translation_support import context, install_fake, stage_config

    from hala_exp.stages import translate as stage

    install_fake(monkeypatch, transform=transform)
    cfg = stage_config(translate={"engine": {"max_new_tokens": 256}, "protect": {"kinds": list(spans.KINDS)}})
    return stage.translate_rows(context(cfg, model_dir, out_dir), _rows(text), [])


@pytest.mark.parametrize("name", list(WIDER))
def test_a_translator_that_damages_a_span_gets_the_row_rejected(name, model_dir, tmp_path, monkeypatch):
    from test_translation_support import arabize, read_jsonl

    text, expected = WIDER[name]
    # A translator that mangles every Latin letter: the protected spans come back byte-exact all the same.
    ok = _translate(model_dir, tmp_path / "ok", monkeypatch, text, arabize)
    assert ok.metrics["rows"] == 1, ok.details["rejects_by_reason"]
    content = read_jsonl(tmp_path / "ok" / "data.jsonl")[0]["messages"][0]["content"]
    assert all(span in content for span in expected)
    # One that loses a marker, or invents one: the row is rejected, not guessed.
    drop = lambda t: arabize(re.sub(r"\[\[\d+\]\]", "", t, count=1))  # noqa: E731
    invent = lambda t: arabize(t) + " [[0]]"  # noqa: E731
    for i, damage in enumerate((drop, invent)):
        bad = _translate(model_dir, tmp_path / f"bad{i}", monkeypatch, text, damage)
        if damage is drop and name == "indented_code":  # a block on its own lines is never sent: nothing to lose
            assert bad.metrics["rows"] == 1
            continue
        assert bad.metrics["rows"] == 0 and bad.details["rejects_by_reason"] == {"spans_not_restored": 1}
