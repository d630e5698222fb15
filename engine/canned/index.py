"""The suggestion index of a canned book: slots, bitmaps of slots, strays, and the reads.

`engine.canned.book.CannedBook` keeps one `SlotIndex` current with every change and reads it to
answer a search; matching and ranking are described there. Pure: no I/O, no trio, no clocks.

Slots
    Every message has a *slot*, a small integer, and slot order is rank order: a higher slot is
    newer (and for equal ``created_at``, a smaller ``id``). A new message normally outranks every
    other and takes the next slot. One that does not (an import with an old ``created_at``, a
    clock that went back) takes the next slot too but is a *stray*: lookups leave strays out of
    the bitmaps they read and place them by direct substring tests, merging them in by rank. A
    deleted message leaves a hole. When there are more than `STRAY_LIMIT` strays, or more holes
    than messages, the book is *dirty* and the next lookup first rebuilds the index, giving every
    message its slot in order again (for 10,000 messages that takes a few tenths of a second, once
    per `STRAY_LIMIT` strays, which is why strays do not rebuild at once).

Index
    A set of messages is an ``int`` used as a bitmap of slots, so intersecting sets is ``&`` and
    listing them newest first is reading the bits from the top. The index keeps:

    - for every character and every pair of adjacent characters (bigram) of the normalised texts,
      the set of messages whose text contains it;
    - for every character, bigram and trigram that begins at a word start, the set of messages
      where it does (word starts are far fewer than characters, so trigrams cost little here and
      spare longer queries most candidates that have the first two characters at a word start
      but not the third);
    - for every department, and for shared messages, the set of its messages.

    - and, kept by the book beside this index, for every normalised shortcut, the ids of the
      messages that have it (`engine.canned.shortcuts.ShortcutIndex`: a dictionary lookup, so the
      shortcut tier costs one probe).

    Each message also keeps its searchable text and a *marked* copy of it, where a NUL stands in
    front of every word start. A query's own marked form (`engine.canned.text.marked_query`) has
    a NUL in front and wherever a word starts inside the query (a pure function of the query,
    because the class of a character before the query cannot matter once the query's first
    character is a word character). The query matches at a word start exactly when its marked
    form is a substring of the marked text.

Lookup
    For a normalised query ``q`` and the set ``V`` of visible messages:

    - contains: the set of ``q`` itself when it is one character, else the intersection of the
      sets of all its bigrams, and ``V``;
    - starts: the word-start set of ``q`` (up to three characters) or of its first three
      characters, intersected with *contains*.

    *contains* is exact for queries of one or two characters, *starts* for up to three. Beyond
    that they are candidates, and each candidate read is checked with a substring test (``q in
    text``, or the marked test for a word start). The agent's used messages are few and are
    ranked first by direct substring tests; then *starts* is read newest first, merged with the
    strays that match at a word start, until the list is full; then the same for the inside-word
    matches. Reading stops as soon as ``limit`` suggestions are found,
    so a lookup costs a few bitmap operations on ``ceil(slots / 30)`` machine words, one pass of
    ``bin()`` over each bitmap read, and work proportional to the suggestions and rejected
    candidates read.
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from .bitmaps import add_bit, bitmap_of, remove_bit, slots_desc
from .records import CannedMessage
from .text import index_keys, mark

__all__ = ["STRAY_LIMIT", "IndexEntry", "SlotIndex", "merge", "rank"]

STRAY_LIMIT: Final = 100
"""How many messages may have a slot out of rank order before the next lookup rebuilds."""


@dataclass(slots=True, eq=False)
class IndexEntry:
    message: CannedMessage
    norm: str  # the message's searchable text
    marked: str  # mark(norm)
    slot: int = -1  # -1 until indexed


def rank(entry: IndexEntry) -> tuple[float, str]:
    """The key that sorts entries newest first, then by id."""
    return (-entry.message.created_at, entry.message.id)


def _outranks(a: CannedMessage, b: CannedMessage) -> bool:
    """Whether ``a`` comes before ``b`` among suggestions with equal matches and uses."""
    return a.created_at > b.created_at or (a.created_at == b.created_at and a.id < b.id)


def merge(ranked: Iterator[IndexEntry], strays: list[IndexEntry]) -> Iterator[IndexEntry]:
    """Two sequences of entries in rank order as one."""
    return heapq.merge(ranked, strays, key=rank) if strays else ranked


class SlotIndex:
    """The bitmaps over the slots of a book's messages (see the module docstring)."""

    def __init__(self) -> None:
        self.slots: list[IndexEntry | None] = []  # slot -> entry, None for a hole
        self.holes = 0
        self.top: CannedMessage | None = None  # the best-ranked message that is not a stray
        self.strays: list[IndexEntry] = []  # messages whose slot is out of rank order, by rank
        self.stray_bits = 0  # the bitmap of their slots
        self.dirty = False  # too many strays or holes: rebuild before reading
        self.contains: dict[str, int] = {}  # character or bigram -> bitmap
        self.starts: dict[str, int] = {}  # 1 to 3 characters at a word start -> bitmap
        self.departments: dict[str | None, int] = {}  # department (None: shared) -> bitmap

    def add(self, entry: IndexEntry) -> None:
        """Give a held message the next slot and index it."""
        entry.slot = len(self.slots)
        self.slots.append(entry)
        bit = 1 << entry.slot
        if self.top is None or _outranks(entry.message, self.top):
            self.top = entry.message
        else:
            bisect.insort(self.strays, entry, key=rank)
            self.stray_bits |= bit
            if len(self.strays) > STRAY_LIMIT:
                self.dirty = True
        contained, starting = index_keys(entry.norm, entry.marked)
        add_bit(self.contains, contained, bit)
        add_bit(self.starts, starting, bit)
        department = entry.message.department
        self.departments[department] = self.departments.get(department, 0) | bit

    def retext(self, entry: IndexEntry, norm: str) -> None:
        """Index an entry under a new searchable text ``norm`` instead of its old one."""
        bit = 1 << entry.slot
        contained, starting = index_keys(entry.norm, entry.marked)
        remove_bit(self.contains, contained, bit)
        remove_bit(self.starts, starting, bit)
        entry.norm = norm
        entry.marked = mark(norm)
        contained, starting = index_keys(entry.norm, entry.marked)
        add_bit(self.contains, contained, bit)
        add_bit(self.starts, starting, bit)

    def move(self, entry: IndexEntry, old: str | None, new: str | None) -> None:
        """Move an entry from department ``old`` to ``new`` (None: shared)."""
        bit = 1 << entry.slot
        self._remove_department_bit(old, bit)
        self.departments[new] = self.departments.get(new, 0) | bit

    def remove(self, entry: IndexEntry, live: int) -> None:
        """Take an entry out, leaving a hole; ``live`` is how many messages remain."""
        bit = 1 << entry.slot
        contained, starting = index_keys(entry.norm, entry.marked)
        remove_bit(self.contains, contained, bit)
        remove_bit(self.starts, starting, bit)
        self._remove_department_bit(entry.message.department, bit)
        if self.stray_bits & bit:
            self.strays.remove(entry)
            self.stray_bits ^= bit
        self.slots[entry.slot] = None
        self.holes += 1
        if self.holes > live:
            self.dirty = True

    def rebuild(self, entries: Iterable[IndexEntry]) -> None:
        """Give every message its slot in rank order, without holes, and index them all again."""
        live = sorted(entries, key=lambda e: e.message.id, reverse=True)
        live.sort(key=lambda e: e.message.created_at)  # stable: oldest first, then id descending
        contained_slots: defaultdict[str, list[int]] = defaultdict(list)
        starting_slots: defaultdict[str, list[int]] = defaultdict(list)
        department_slots: defaultdict[str | None, list[int]] = defaultdict(list)
        for slot, entry in enumerate(live):
            entry.slot = slot
            contained, starting = index_keys(entry.norm, entry.marked)
            for key in contained:
                contained_slots[key].append(slot)
            for key in starting:
                starting_slots[key].append(slot)
            department_slots[entry.message.department].append(slot)
        self.contains = {key: bitmap_of(slots) for key, slots in contained_slots.items()}
        self.starts = {key: bitmap_of(slots) for key, slots in starting_slots.items()}
        self.departments = {key: bitmap_of(slots) for key, slots in department_slots.items()}
        self.slots = list(live)
        self.holes = 0
        self.top = live[-1].message if live else None
        self.strays = []
        self.stray_bits = 0
        self.dirty = False

    def visible(self, departments: Collection[str]) -> int:
        """The messages of ``departments`` and the shared ones."""
        visible = self.departments.get(None, 0)
        for department in departments:
            visible |= self.departments.get(department, 0)
        return visible

    def read(self, bitmap: int) -> Iterator[IndexEntry]:
        """The messages of ``bitmap`` that are not strays, best-ranked first."""
        slots = self.slots
        for slot in slots_desc(bitmap & ~self.stray_bits if self.stray_bits else bitmap):
            entry = slots[slot]
            assert entry is not None
            yield entry

    def contains_candidates(self, norm: str) -> int:
        """Messages holding every bigram of ``norm`` (its character, if it has only one)."""
        if len(norm) == 1:
            return self.contains.get(norm, 0)
        result = -1  # every bit set
        for bigram in set(map(str.__add__, norm, norm[1:])):
            posting = self.contains.get(bigram)
            if posting is None:
                return 0
            result &= posting
        return result

    def _remove_department_bit(self, department: str | None, bit: int) -> None:
        left = self.departments[department] & ~bit
        if left:
            self.departments[department] = left
        else:
            del self.departments[department]
