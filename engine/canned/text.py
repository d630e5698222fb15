"""The text side of canned messages: a draft's ``#`` query, placeholders, and the normalisation
and word starts that matching uses (see `engine.canned.book` for the theory of operation).

Pure: no I/O, no trio, no clocks.

Normalisation
    Matching compares normalised text: ``NFKC(casefold(NFKC(text)))``, see `normalize`. NFKC folds
    widths (full-width Latin letters U+FF21... become ASCII, half-width katakana full-width ones)
    and compatibility forms (``ﬁ`` becomes ``fi``); casefold folds case (``STRASSE`` matches
    ``straße``); the second NFKC puts what casefold produced back into composed form. Katakana and
    hiragana are different letters and are not folded into each other. NUL, which the index uses
    as a marker, and U+001F, which joins the fields of a searchable text (`searchable_text`),
    become spaces.

Word starts
    Each character of a normalised text has a class: *non-word* (Unicode categories Z, P, S, C:
    spaces, punctuation, symbols, controls), *joiner* (combining marks, category M, and the
    prolonged sound mark ``ー`` U+30FC, which belongs to the word it is written in, kana of either
    kind), or a *word* class: Han (CJK ideographs and ``々〆〇``), hiragana, katakana, hangul,
    digit (other category N), or letter (every other category L, all other scripts together).
    Joiners are skipped: they are never a word start and do not change the class carried forward.
    Position ``i`` is a word start when its character has a word class that differs from the class
    of the nearest character before it that is not a joiner; the start of the text counts as
    non-word. So a word starts at the start of the text, after a space or punctuation, and where
    the script changes: ``Order123`` has starts at ``O`` and ``1``, ``ご返金の手続き`` at ``ご``,
    ``返``, ``の``, ``手`` and ``き``, and ``アカウント設定`` at ``ア`` and ``設``. Japanese has no
    spaces, so the script change is the only word boundary text can show without a dictionary: a
    run of kanji is one word, and so is a run of katakana.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final

# ---------------------------------------------------------------------------------------------
# Drafts and placeholders

_HASHES: Final = ("#", "\uff03")  # '#' and the full-width U+FF03 a Japanese input method types


def query_of(draft: str) -> str | None:
    """The canned-message query the agent is typing at the end of ``draft``, or None.

    The query is the text after the last ``#`` (or full-width U+FF03) of the draft, which is
    taken to end at the cursor: ``"Hello #ref"`` gives ``"ref"``, ``"#"`` alone gives ``""``
    (list everything), a draft without ``#`` gives None. Whitespace after that ``#`` means the agent
    has moved on, so ``"#ref and"`` gives None, as does ``"# ref"``. The character before the
    ``#`` does not matter, since Japanese is written without spaces (``"はい#返金"`` gives
    ``"返金"``). The query is returned as typed; `CannedBook.search` normalises it.
    """
    at = max(draft.rfind(mark) for mark in _HASHES)
    if at < 0:
        return None
    query = draft[at + 1 :]
    if any(ch.isspace() for ch in query):
        return None
    return query


PLACEHOLDER_DEFAULTS: Final[Mapping[str, str]] = {
    "visitor.name": "there",
    "visitor.email": "",
    "agent.name": "",
    "department.name": "",
}
"""The known placeholders and what each becomes when its value is missing or blank."""

_PLACEHOLDER: Final = re.compile(r"\{\{|\}\}|\{([^{}\s]*)\}")


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """``text`` with its placeholders filled from ``values``.

    A placeholder is a name of `PLACEHOLDER_DEFAULTS` in braces, written exactly
    (``{visitor.name}``, ``{visitor.email}``, ``{agent.name}``, ``{department.name}``). Its value
    is ``values[name]``; a missing value, or one that is empty or only whitespace, gives the name's
    default (``visitor.name`` gives ``"there"``, the others ``""``). Anything else in braces is
    left as typed (``{ticket.id}``, ``{Visitor.Name}``, ``{ visitor.name }``), even if ``values``
    has it.
    As in `str.format`, ``{{`` stands for ``{`` and ``}}`` for ``}``. Filled values are inserted
    as they are and never read for placeholders themselves.
    """

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        default = PLACEHOLDER_DEFAULTS.get(name)
        if default is None:
            return token
        value = values.get(name, "")
        return value if value.strip() else default

    return _PLACEHOLDER.sub(fill, text)


# ---------------------------------------------------------------------------------------------
# Normalisation and word starts

_MARK: Final = "\x00"  # stands before every word start in a marked text; normalize() removes it
_FIELD: Final = "\x1f"  # joins the fields of a searchable text; normalize() removes it

_NON_WORD: Final = 0
_JOINER: Final = 1
_DIGIT: Final = 2  # this and every class above it are word classes
_LETTER: Final = 3
_HAN: Final = 4
_HIRAGANA: Final = 5
_KATAKANA: Final = 6
_HANGUL: Final = 7

# Inclusive code point ranges of the scripts that get a class of their own, by first code point.
_SCRIPT_RANGES: Final[tuple[tuple[int, int, int], ...]] = (
    (0x1100, 0x11FF, _HANGUL),  # Hangul Jamo
    (0x3005, 0x3007, _HAN),  # iteration mark, closing mark, ideographic zero
    (0x3021, 0x3029, _HAN),  # Hangzhou numerals
    (0x3038, 0x303B, _HAN),  # Hangzhou numerals, vertical iteration mark
    (0x3041, 0x309F, _HIRAGANA),
    (0x30A0, 0x30FF, _KATAKANA),
    (0x3130, 0x318F, _HANGUL),  # Hangul Compatibility Jamo
    (0x31F0, 0x31FF, _KATAKANA),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF, _HAN),  # CJK Extension A
    (0x4E00, 0x9FFF, _HAN),  # CJK Unified Ideographs
    (0xA960, 0xA97F, _HANGUL),  # Hangul Jamo Extended-A
    (0xAC00, 0xD7FF, _HANGUL),  # Hangul Syllables, Jamo Extended-B
    (0xF900, 0xFAFF, _HAN),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F, _KATAKANA),  # half-width katakana (NFKC widens them first)
    (0x20000, 0x3FFFF, _HAN),  # CJK Extensions B and later
)

_CLASSES: dict[str, int] = {}  # a cache of _classify


def _classify(ch: str) -> int:
    major = unicodedata.category(ch)[0]
    if major == "M" or ch == "\u30fc":
        return _JOINER
    if major not in "LN":
        return _NON_WORD
    code = ord(ch)
    for low, high, script in _SCRIPT_RANGES:
        if low <= code <= high:
            return script
    return _DIGIT if major == "N" else _LETTER


def _class_of(ch: str) -> int:
    cls = _CLASSES.get(ch)
    if cls is None:
        cls = _CLASSES[ch] = _classify(ch)
    return cls


def normalize(text: str) -> str:
    """``text`` as suggestions compare it: NFKC, casefold, NFKC again, NUL and U+001F made
    spaces."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    if _MARK in folded:
        folded = folded.replace(_MARK, " ")
    return folded.replace(_FIELD, " ") if _FIELD in folded else folded


def searchable_text(*fields: str) -> str:
    """What a query is matched against: the normalised ``fields`` that are not empty, joined
    with U+001F. No query holds U+001F (`normalize` removes it), so none matches across two
    fields, and each field starts a word."""
    if len(fields) == 1 or not any(fields[1:]):
        return normalize(fields[0])
    return _FIELD.join(normalize(field) for field in fields if field)


def is_shortcut(text: str) -> bool:
    """Whether ``text`` can be a shortcut: typed after ``#``, so no white space and no ``#``."""
    return not any(ch.isspace() or ch in _HASHES for ch in text)


def mark(norm: str) -> str:
    """``norm`` with a NUL in front of every word start (see the module docstring)."""
    parts: list[str] = []
    prev = _NON_WORD
    for ch in norm:
        cls = _class_of(ch)
        if cls != _JOINER:
            if cls >= _DIGIT and cls != prev:
                parts.append(_MARK)
            prev = cls
        parts.append(ch)
    return "".join(parts)


def starts_of_marked(marked: str) -> list[int]:
    """The word starts of a marked text, as positions in the text without its marks."""
    starts: list[int] = []
    at = marked.find(_MARK)
    while at != -1:
        starts.append(at - len(starts))
        at = marked.find(_MARK, at + 1)
    return starts


def marked_query(query: str) -> str | None:
    """What ``query`` looks like in a marked text where it begins at a word start, or None.

    None when its first character is not a word character, so that it never begins at one.
    """
    marked = mark(query)
    return marked if marked.startswith(_MARK) else None


def index_keys(norm: str, marked: str) -> tuple[set[str], set[str]]:
    """The characters and bigrams of a text, and the characters, bigrams and trigrams that begin
    at a word start."""
    contained = set(norm)
    contained.update(map(str.__add__, norm, norm[1:]))
    starting: set[str] = set()
    for at in starts_of_marked(marked):
        starting.add(norm[at])
        starting.add(norm[at : at + 2])
        starting.add(norm[at : at + 3])
    return contained, starting
