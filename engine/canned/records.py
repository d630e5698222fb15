"""Canned messages' records: categories, messages, a snapshot of a book, and the book's errors."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class CannedCategory:
    """A named group of canned messages."""

    id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CannedMessage:
    """One canned message; ``department`` None means it is shared by all departments."""

    id: str
    text: str
    category: str  # a CannedCategory id
    department: str | None = None
    created_at: float  # wall-clock seconds since the epoch; newer messages rank first on ties
    title: str = ""  # a short name agents see in the list; searched
    shortcut: str = ""  # a word typed after '#' that ranks this message first; no white space
    reading: str = ""  # how the title is read (a Japanese title's kana); searched


@dataclass(frozen=True, slots=True, kw_only=True)
class CannedUse:
    """How many times one agent picked one canned message."""

    agent_id: str
    message_id: str
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CannedSnapshot:
    """Everything a `CannedBook` holds, for a store to persist."""

    categories: tuple[CannedCategory, ...]
    messages: tuple[CannedMessage, ...]
    uses: tuple[CannedUse, ...]


CannedErrorCode = Literal["not_found", "category_not_empty", "invalid"]
DeleteMode = Literal["refuse", "delete", "move"]


class CannedError(Exception):
    """A request the book refuses: ``code`` says why in a word, ``message`` in a sentence."""

    def __init__(self, code: CannedErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: CannedErrorCode = code
        self.message = message


class Unchanged(enum.Enum):
    """The type of `UNCHANGED`, the default of arguments for which None is a meaningful value."""

    UNCHANGED = "unchanged"


UNCHANGED: Final = Unchanged.UNCHANGED
