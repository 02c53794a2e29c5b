"""Protected spans: code, math, markup, paths, URLs, e-mails and placeholders never reach the translator.

``protect`` replaces each span with a numbered marker ``[[i]]`` (ASCII brackets and digits: translators copy
them through), ``restore`` puts the original bytes back. A translation whose markers are missing, duplicated
or unknown cannot be restored: ``restore`` returns None and the caller rejects the row rather than guess.
A literal ``[[i]]`` already in the source is itself protected, so markers are never ambiguous.

Kinds, in priority order (an earlier kind claims its text first; later ones never reach inside it):
fenced and indented code blocks (CommonMark; an indented block without a code signal is prose), display
math, inline code, inline math, HTML/XML tags (with their attributes, comments, ``<?xml?>`` / ``<!DOCTYPE>``),
URLs, e-mails, file-system paths (POSIX and Windows, so ``C:\\Users\\new`` holds no false LaTeX
``\\new``), LaTeX commands, template placeholders (Jinja / Django ``{{ }}`` ``{% %}`` ``{# #}``, Python
``{name!r:>10}``, ICU ``{count, plural, ...}``, ``${VAR}``) and printf specifiers (``%.2f``, ``%-5d``,
``%(name)s``, ``%%``; a ``%`` after a digit or before a space is prose: "100% done"). Tags are kept whole,
``alt`` and ``title`` text included: translating attribute text would need the tag split around it, and a
translator that breaks a quote breaks the page, so we keep it untranslated. Only the tags are protected:
the text between them is translated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = (
    "code_fence",
    "indented_code",
    "math_block",
    "inline_code",
    "math_inline",
    "html_tag",
    "url",
    "email",
    "path",
    "latex_command",
    "placeholder",
    "printf",
)

MARKER_RE = re.compile(r"\[\[\s*([0-9\u0660-\u0669\u06f0-\u06f9]+)\s*\]\]")  # Arabic-Indic digits accepted back
_DIGITS = str.maketrans(
    "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u06f0\u06f1\u06f2\u06f3"
    "\u06f4\u06f5\u06f6\u06f7\u06f8\u06f9",
    "01234567890123456789",
)
_MASK = "\ue000"  # private-use character standing in for text already claimed by a span

_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
_BEGIN_END = re.compile(r"\\(begin|end)\{([^{}\n]+)\}")
_DISPLAY_MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]", re.S)
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.S)
# Pandoc's rule for $...$: no space after the opening or before the closing $, no digit after the closing one
# (so "costs $5 and $10" is prose, not math).
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?=[^\s$])(?:\\.|[^$\\\n])+?(?<=[^\s\\])\$(?!\d)|\\\(.+?\\\)", re.S)
# Not after a letter: "Files\\App" (the rest of a Windows path with a space) and "a\\nb" are not LaTeX.
_LATEX_CMD = re.compile(r"(?<![A-Za-z])\\[A-Za-z]+")
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]"
_URL = re.compile(rf"(?:\b(?:https?|ftp)://|\bwww\.){_URL_CHARS}+")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_PLACEHOLDER = re.compile(
    r"\{\{[^{}\n]{1,80}\}\}"  # Jinja / Django / mustache variables
    r"|\{%-?[^{}\n]{1,200}?-?%\}"  # Jinja / Django statements: {% if x %}, {%- endfor -%}
    r"|\{#[^{}\n]{0,200}?#\}"  # Jinja comments
    r"|\$\{[A-Za-z_][\w.]*\}"  # shell / JS template
    # str.format: {}, {0}, {name}, {obj.attr[key]}, {name!r}, {value:>10.2f}
    r"|\{(?:[A-Za-z_]\w*|\d+)?(?:\.[A-Za-z_]\w*|\[[^\[\]{}\s]+\])*(?:![rsa])?(?::[^{}\s]*)?\}"
)
# ICU MessageFormat argument with a type: {count, plural, one {# item} other {# items}}, {n, number}.
_ICU_START = re.compile(
    r"\{\s*[A-Za-z_]\w*\s*,\s*(?:plural|select|selectordinal|number|date|time|spellout|ordinal|duration)\b"
)
# printf: %[(name)][flags][width][.precision][length]conversion, or %%. Not after a letter, digit or %, no
# space flag, and no letter right after the conversion: "100% done", "50%off", "a % b" stay prose.
_PRINTF = re.compile(
    r"%%"
    r"|(?<![\w%])%(?:\([A-Za-z_]\w*\))?[-+#0]*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t)?"
    r"[diouxXeEfFgGcrsaAp](?![A-Za-z])"
)
_BOOLEAN_ATTRS = (
    "disabled|checked|selected|hidden|required|readonly|multiple|autofocus|async|defer|controls|autoplay|loop"
    "|muted|open|novalidate|allowfullscreen|nowrap"
)
# A tag: attributes are name=value (quoted or bare) or a known boolean name, so "if a<b and c>d" is prose.
_HTML_TAG = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?[A-Za-z][^<>]*?\?>|<!DOCTYPE[^<>]*>"
    r"|</?[A-Za-z][\w:.-]*"
    rf"(?:\s+(?:[A-Za-z_:][\w:.-]*\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+)|(?:{_BOOLEAN_ATTRS})(?![\w=-])))*"
    r"\s*/?>",
    re.S | re.I,
)
_PATH_CHARS = r"[\w.@%+~{}$-]"
_POSIX_PATH = re.compile(rf"(?<![\w/.~:\\])(?:(?:~|\.{{1,2}})(?:/{_PATH_CHARS}+)+|(?:/{_PATH_CHARS}+){{2,}})/?")
_WIN_FORBIDDEN = r"[^\\/:*?\"<>|\s]"
_WINDOWS_PATH = re.compile(
    rf"\"[A-Za-z]:\\[^\"\n]*\""  # quoted: may hold spaces ("C:\\Program Files\\App")
    rf"|(?<![\w\\])[A-Za-z]:\\(?:{_WIN_FORBIDDEN}+\\)*{_WIN_FORBIDDEN}*"
    rf"|(?<![\w\\])\\\\[\w.$-]+(?:\\{_WIN_FORBIDDEN}+)+"  # UNC: \\\\server\\share\\...
)
_LIST_ITEM = re.compile(r"^[ \t]{0,3}(?:[-*+]|\d{1,9}[.)])[ \t]")
# Indented text in chat data is often prose (an indented recipe or poem); a block counts as code only when a
# line shows a code signal: punctuation prose rarely has, a call, a keyword at the start, or a shell prompt.
_CODE_SIGNAL = re.compile(
    r"[;{}=<>\[\]]|[A-Za-z0-9_]\(|^\s*(?:def|class|return|import|from|for|while|if|else|elif|try|except|print"
    r"|var|let|const|function|public|private|static|void|int|#include|SELECT|INSERT|UPDATE|DELETE)\b|^\s*[$>#]\s",
    re.M,
)


@dataclass
class Protected:
    text: str  # the source with markers in place of spans
    spans: list[str]  # spans[i] is what marker [[i]] stands for

    @property
    def protected_chars(self) -> int:
        return sum(len(s) for s in self.spans)


def marker(i: int) -> str:
    return f"[[{i}]]"


def protect(text: str, kinds: tuple[str, ...] | list[str] = KINDS) -> Protected:
    ranges: list[tuple[int, int]] = []
    masked = text

    def claim(found: list[tuple[int, int]]) -> None:
        nonlocal masked
        for start, end in found:
            if end > start and _MASK not in masked[start:end]:
                ranges.append((start, end))
                masked = masked[:start] + _MASK * (end - start) + masked[end:]

    claim([m.span() for m in MARKER_RE.finditer(masked)])  # literal markers in the source: always protected
    finders = {
        "code_fence": _fences,
        "indented_code": _indented_code,
        "math_block": lambda t: _environments(t) + [m.span() for m in _DISPLAY_MATH.finditer(t)],
        "inline_code": lambda t: [m.span() for m in _INLINE_CODE.finditer(t)],
        "html_tag": lambda t: [m.span() for m in _HTML_TAG.finditer(t)],
        "math_inline": lambda t: [m.span() for m in _INLINE_MATH.finditer(t)],
        "latex_command": _latex_commands,
        "url": _urls,
        "email": lambda t: [m.span() for m in _EMAIL.finditer(t)],
        "path": _paths,
        "placeholder": lambda t: _icu_arguments(t) + [m.span() for m in _PLACEHOLDER.finditer(t)],
        "printf": lambda t: [m.span() for m in _PRINTF.finditer(t)],
    }
    for kind in KINDS:  # fixed priority order: outer constructs first
        if kind in kinds:
            claim(finders[kind](masked))
    ranges.sort()
    parts: list[str] = []
    spans: list[str] = []
    pos = 0
    for start, end in ranges:
        parts.append(text[pos:start])
        parts.append(marker(len(spans)))
        spans.append(text[start:end])
        pos = end
    parts.append(text[pos:])
    return Protected("".join(parts), spans)


def restore(translated: str, spans: list[str]) -> str | None:
    """Put spans back; None when the markers in ``translated`` are not exactly 0..n-1, each once."""
    found = [int(m.group(1).translate(_DIGITS)) for m in MARKER_RE.finditer(translated)]
    if sorted(found) != list(range(len(spans))):
        return None
    return MARKER_RE.sub(lambda m: spans[int(m.group(1).translate(_DIGITS))], translated)


def strip_markers(text: str) -> str:
    """The prose of a protected text (what quality gates look at)."""
    return MARKER_RE.sub(" ", text)


def _fences(text: str) -> list[tuple[int, int]]:
    """CommonMark fences: closed by a line of the same character at least as long as the opening, so a
    ```` fence can hold ``` fences. An unclosed fence runs to the end of the text."""
    found, pos, lines = [], 0, text.splitlines(keepends=True)
    i = 0
    offsets = []
    for line in lines:
        offsets.append(pos)
        pos += len(line)
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i].rstrip("\r\n"))
        if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence = m.group(1)
            close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
            j = i + 1
            while j < len(lines) and not close.match(lines[j].rstrip("\r\n")):
                j += 1
            end_line = min(j, len(lines) - 1)
            end = offsets[end_line] + len(lines[end_line].rstrip("\r\n"))
            found.append((offsets[i], end))
            i = end_line + 1
        else:
            i += 1
    return found


def _environments(text: str) -> list[tuple[int, int]]:
    r"""\begin{env} ... \end{env}, nesting-aware; unclosed environments are left to latex_command."""
    found, stack = [], []
    for m in _BEGIN_END.finditer(text):
        if m.group(1) == "begin":
            stack.append((m.group(2), m.start()))
        elif stack and stack[-1][0] == m.group(2):
            _, start = stack.pop()
            if not stack:
                found.append((start, m.end()))
    return found


def _latex_commands(text: str) -> list[tuple[int, int]]:
    r"""A command with its [optional] and {balanced} arguments: \frac{a}{b^{2}}, \sqrt[3]{x}, \alpha."""
    found = []
    for m in _LATEX_CMD.finditer(text):
        end = m.end()
        while end < len(text) and text[end] in "[{":
            close = _balanced(text, end)
            if close is None:
                break
            end = close
        found.append((m.start(), end))
    return found


def _balanced(text: str, start: int) -> int | None:
    opener = text[start]
    closer = "}" if opener == "{" else "]"
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "\n" and i + 1 < len(text) and text[i + 1] == "\n":
            return None  # never across a blank line
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _urls(text: str) -> list[tuple[int, int]]:
    """URLs end before trailing punctuation, and before a closing bracket they did not open."""
    found = []
    for m in _URL.finditer(text):
        url = m.group(0)
        while url:
            if url[-1] in ".,;:!?'\"*":
                url = url[:-1]
            elif url[-1] == ")" and url.count("(") < url.count(")"):
                url = url[:-1]
            elif url[-1] == "]" and url.count("[") < url.count("]"):
                url = url[:-1]
            else:
                break
        if len(url) > len("http://"):
            found.append((m.start(), m.start() + len(url)))
    return found


def restore_lenient(translated: str, spans: list[str]) -> str:
    """Best effort for evaluation: known markers restored, unknown ones dropped."""

    def put(m: re.Match) -> str:
        i = int(m.group(1).translate(_DIGITS))
        return spans[i] if i < len(spans) else ""

    return MARKER_RE.sub(put, translated)


def _indented_code(text: str) -> list[tuple[int, int]]:
    """CommonMark indented code: lines indented 4+ columns after a blank line (or at the start), not a list's
    continuation, with a code signal; the block ends at its last indented line (trailing blanks stay prose)."""
    lines = text.splitlines(keepends=True)
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line)
    indented = [_is_indented(line) for line in lines]
    blank = [not line.strip() for line in lines]
    found, i = [], 0
    while i < len(lines):
        prev = i - 1
        if indented[i] and (i == 0 or blank[prev]) and not _in_list(lines, i):
            j = i
            while j + 1 < len(lines) and (indented[j + 1] or blank[j + 1]):
                j += 1
            while blank[j]:
                j -= 1
            end = offsets[j] + len(lines[j].rstrip("\r\n"))
            if _CODE_SIGNAL.search(text, offsets[i], end):
                found.append((offsets[i], end))
            i = j + 1
        else:
            i += 1
    return found


def _is_indented(line: str) -> bool:
    body = line.rstrip("\r\n")
    return bool(body.strip()) and (body.startswith("    ") or body.startswith("\t") or body.startswith(" \t"))


def _in_list(lines: list[str], i: int) -> bool:
    """The nearest non-blank line above is a list item or indented: this indent continues a list item."""
    for k in range(i - 1, -1, -1):
        if lines[k].strip():
            return bool(_LIST_ITEM.match(lines[k])) or lines[k][:1] in (" ", "\t")
    return False


def _paths(text: str) -> list[tuple[int, int]]:
    """POSIX and Windows paths, without trailing sentence punctuation."""
    found = []
    for regex in (_WINDOWS_PATH, _POSIX_PATH):
        for m in regex.finditer(text):
            start, end = m.span()
            while end > start and text[end - 1] in ".,;:!?)" and text[start] != '"':
                end -= 1
            if end - start > 2:
                found.append((start, end))
    return found


def _icu_arguments(text: str) -> list[tuple[int, int]]:
    """ICU arguments with a type, to their balanced closing brace (plural cases nest braces)."""
    found: list[tuple[int, int]] = []
    for m in _ICU_START.finditer(text):
        end = _balanced(text, m.start())
        if end is not None and not any(s <= m.start() < e for s, e in found):
            found.append((m.start(), end))
    return found
