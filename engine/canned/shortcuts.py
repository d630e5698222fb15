"""Canned messages' shortcuts: the word an agent types after ``#`` to get one message first.

A message may have a title, a shortcut and a reading (how the title is read, such as the kana of
a Japanese title); all three are searched with its text (`engine.canned.book`). The shortcut also
ranks first: `ShortcutIndex` finds the messages whose normalised shortcut is a query with one
dictionary probe. A shortcut holds no white space and no ``#``, since it is typed after one and
`engine.canned.text.query_of` stops at white space.

Pure: no I/O, no trio, no clocks.
"""

from __future__ import annotations

from .records import CannedError, CannedMessage
from .text import is_shortcut, normalize

__all__ = ["ShortcutIndex", "check_labels"]


def check_labels(title: object, shortcut: object, reading: object) -> None:
    """``CannedError("invalid")`` unless the title, shortcut and reading are strings (maybe
    empty) and the shortcut is one word without ``#``."""
    for value, what in ((title, "a title"), (shortcut, "a shortcut"), (reading, "a reading")):
        if not isinstance(value, str):
            raise CannedError("invalid", f"{what} must be a string, not {value!r}")
    assert isinstance(shortcut, str)
    if not is_shortcut(shortcut):
        raise CannedError("invalid", f"a shortcut is one word without '#', not {shortcut!r}")


class ShortcutIndex:
    """The ids of the messages that have each normalised shortcut."""

    def __init__(self) -> None:
        self._ids: dict[str, set[str]] = {}

    def ids(self, norm: str) -> set[str] | None:
        """The messages whose shortcut normalises to ``norm`` (None or empty: none)."""
        return self._ids.get(norm)

    def add(self, message: CannedMessage) -> None:
        if message.shortcut:
            self._ids.setdefault(normalize(message.shortcut), set()).add(message.id)

    def remove(self, message: CannedMessage) -> None:
        if message.shortcut:
            key = normalize(message.shortcut)
            ids = self._ids.get(key)
            if ids is not None:
                ids.discard(message.id)
                if not ids:
                    del self._ids[key]
