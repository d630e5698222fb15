"""Canned messages: categories, per-department visibility, per-agent use counts, and suggestions.

Help desk agents keep canned messages (greetings, instructions, answers to frequent questions),
grouped in categories and tied to one department or shared by all departments (department
``None``). While an agent types a chat message, the frontend sends the draft; when the draft ends
in ``#`` followed by some text (see `query_of`), the engine answers with suggestions from
`CannedBook.suggest`; the agent picks one (`CannedBook.pick`, which counts a use for that agent) or
dismisses the list. `fill_placeholders` fills ``{visitor.name}`` and the like into the picked text.

This module is pure and in memory: no I/O, no trio, no clocks. A store persists a book through
`CannedBook.snapshot` and rebuilds it with the constructor or `CannedBook.from_snapshot`.

Theory of operation
===================

Normalisation and word starts are described in `engine.canned.text`.

What is matched
    The query matches anywhere in a message's *searchable text*: its text (placeholders included,
    as typed), title, shortcut and reading, normalised and joined so that no query matches across
    two of them (`engine.canned.text.searchable_text`). A message titled ``お礼`` with the reading
    ``おれい`` is found by ``#おれい``. Category names are not searched.

Ranking
    A message matches the query *by its shortcut* when its normalised shortcut is the query, *at a
    word start* when some occurrence of the query begins at a word start of its searchable text,
    and *inside a word* otherwise. Suggestions come in the order: shortcut matches, then
    word-start matches (a shortcut the query only begins is one of these), then inside-word
    matches; then more uses by the asking agent first; then newer first
    (``created_at`` descending); then ``id`` ascending. Only messages of the agent's departments
    and shared messages are suggested. The empty query (``#`` alone) lists every visible message
    by the agent's uses, then newest first.

Slots, the index and the lookup over it are described in `engine.canned.index`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator
from dataclasses import replace
from itertools import islice
from typing import Final

from .index import IndexEntry, SlotIndex, merge, rank
from .records import (
    UNCHANGED,
    CannedCategory,
    CannedError,
    CannedMessage,
    CannedSnapshot,
    CannedUse,
    DeleteMode,
    Unchanged,
)
from .shortcuts import ShortcutIndex, check_labels
from .text import mark, marked_query, normalize, query_of, searchable_text

__all__ = ["CannedBook", "searchable"]


def searchable(message: CannedMessage) -> str:
    """What a query is matched against: the normalised text, title, shortcut and reading of
    ``message`` (see `searchable_text`)."""
    return searchable_text(message.text, message.title, message.shortcut, message.reading)


def _newest_first(message: CannedMessage) -> tuple[float, str]:
    return (-message.created_at, message.id)


# ---------------------------------------------------------------------------------------------
# The book


def _invalid_text(value: object, what: str) -> CannedError | None:
    if not isinstance(value, str) or not value.strip():
        return CannedError("invalid", f"{what} must be a non-empty string, not {value!r}")
    return None


def _check_text(value: object, what: str) -> None:
    error = _invalid_text(value, what)
    if error is not None:
        raise error


def _check_department(department: object) -> None:
    if department is not None:
        _check_text(department, "a department id")


_NO_IDS: Final[frozenset[str]] = frozenset()


class CannedBook:
    """Canned messages, their categories and per-agent use counts, with a suggestion index.

    Every change keeps the index current (see the module docstring). Methods raise `CannedError`
    with code ``"not_found"`` for an unknown id, ``"category_not_empty"`` when deleting a category
    that holds messages without saying what becomes of them, and ``"invalid"`` for anything else
    they refuse: a blank id, name or text, an id already taken, a ``created_at`` that is not
    finite, a use count below 1, a bad ``limit`` or delete mode.
    """

    def __init__(
        self,
        *,
        categories: Iterable[CannedCategory] = (),
        messages: Iterable[CannedMessage] = (),
        uses: Iterable[CannedUse] = (),
    ) -> None:
        self._categories: dict[str, CannedCategory] = {}
        self._entries: dict[str, IndexEntry] = {}
        self._uses: dict[str, dict[str, int]] = {}  # agent id -> message id -> count
        self._index = SlotIndex()
        self._shortcuts = ShortcutIndex()
        for category in categories:
            self.add_category(category.id, category.name)
        for message in messages:
            self._admit(message)
        for use in uses:
            self._check_message(use.message_id)
            _check_text(use.agent_id, "an agent id")
            if not isinstance(use.count, int) or use.count < 1:
                raise CannedError("invalid", f"a use count must be at least 1, not {use.count!r}")
            counts = self._uses.setdefault(use.agent_id, {})
            counts[use.message_id] = counts.get(use.message_id, 0) + use.count
        self._index.rebuild(self._entries.values())

    @classmethod
    def from_snapshot(cls, snapshot: CannedSnapshot) -> CannedBook:
        """A book holding what ``snapshot`` holds."""
        return cls(categories=snapshot.categories, messages=snapshot.messages, uses=snapshot.uses)

    def snapshot(self) -> CannedSnapshot:
        """Everything the book holds: categories by id, messages newest first, uses sorted."""
        return CannedSnapshot(
            categories=tuple(self._categories[key] for key in sorted(self._categories)),
            messages=tuple(self.messages()),
            uses=tuple(
                CannedUse(agent_id=agent, message_id=message, count=count)
                for agent in sorted(self._uses)
                for message, count in sorted(self._uses[agent].items())
            ),
        )

    # -- categories ---------------------------------------------------------------------------

    def categories(self) -> list[CannedCategory]:
        """All categories, by normalised name, then id."""
        return sorted(self._categories.values(), key=lambda c: (normalize(c.name), c.id))

    def category(self, category_id: str) -> CannedCategory:
        """The category ``category_id``."""
        found = self._categories.get(category_id)
        if found is None:
            raise CannedError("not_found", f"no canned category {category_id!r}")
        return found

    def add_category(self, category_id: str, name: str) -> CannedCategory:
        """Add and return a new category."""
        _check_text(category_id, "a category id")
        _check_text(name, "a category name")
        if category_id in self._categories:
            raise CannedError("invalid", f"canned category {category_id!r} already exists")
        category = CannedCategory(id=category_id, name=name)
        self._categories[category_id] = category
        return category

    def rename_category(self, category_id: str, name: str) -> CannedCategory:
        """Rename category ``category_id`` and return it as it is now."""
        category = self.category(category_id)
        _check_text(name, "a category name")
        category = replace(category, name=name)
        self._categories[category_id] = category
        return category

    def delete_category(
        self, category_id: str, *, messages: DeleteMode = "refuse", move_to: str | None = None
    ) -> None:
        """Delete category ``category_id``, saying what becomes of the messages it holds.

        ``messages="refuse"`` refuses with ``"category_not_empty"`` if it holds any;
        ``"delete"`` deletes them (with their use counts); ``"move"`` moves them to the category
        ``move_to``, which must exist and differ. ``move_to`` is only for ``"move"``.
        """
        self.category(category_id)
        if messages == "move":
            if move_to is None or move_to == category_id:
                raise CannedError("invalid", "moving messages needs another category in move_to")
            self.category(move_to)
        elif messages not in ("refuse", "delete"):
            raise CannedError("invalid", f"unknown delete mode {messages!r}")
        elif move_to is not None:
            raise CannedError("invalid", f"move_to is only for messages='move', not {messages!r}")
        held = [e.message.id for e in self._entries.values() if e.message.category == category_id]
        if held and messages == "refuse":
            raise CannedError(
                "category_not_empty",
                f"canned category {category_id!r} holds {len(held)} message(s): "
                "say whether to delete or move them",
            )
        for message_id in held:
            if move_to is not None:
                self.edit_message(message_id, category=move_to)
            else:
                self.delete_message(message_id)
        del self._categories[category_id]

    # -- messages -----------------------------------------------------------------------------

    def message(
        self, message_id: str, *, departments: Collection[str] | None = None
    ) -> CannedMessage:
        """The message ``message_id``; with ``departments``, only if it is visible to them.

        A message of another department is answered exactly as an unknown id is (``not_found``),
        so that its existence is not revealed.
        """
        return self._check_message(message_id, departments).message

    def messages(
        self, *, departments: Collection[str] | None = None, category: str | None = None
    ) -> list[CannedMessage]:
        """Messages newest first: all, or those visible to ``departments``, or of ``category``.

        A message is visible to a set of departments when it is tied to one of them or shared.
        """
        wanted = None if departments is None else self._department_set(departments)
        return sorted(
            (
                entry.message
                for entry in self._entries.values()
                if (category is None or entry.message.category == category)
                and (
                    wanted is None
                    or entry.message.department is None
                    or entry.message.department in wanted
                )
            ),
            key=_newest_first,
        )

    def add_message(self, message: CannedMessage) -> CannedMessage:
        """Add ``message``, whose id must be new and whose category must exist; return it."""
        self._index.add(self._admit(message))
        return message

    def edit_message(
        self,
        message_id: str,
        *,
        text: str | None = None,
        category: str | None = None,
        department: str | Unchanged | None = UNCHANGED,
        title: str | None = None,
        shortcut: str | None = None,
        reading: str | None = None,
    ) -> CannedMessage:
        """Change what is given of a message's text, category, department, title, shortcut and
        reading; return it.

        ``department=None`` makes it shared; leaving ``department`` out keeps it. An empty title,
        shortcut or reading removes it.
        """
        entry = self._check_message(message_id)
        old = entry.message
        if text is not None:
            _check_text(text, "a canned message's text")
        if category is not None:
            self.category(category)
        if not isinstance(department, Unchanged):
            _check_department(department)
        new = replace(
            old,
            text=old.text if text is None else text,
            category=old.category if category is None else category,
            department=old.department if isinstance(department, Unchanged) else department,
            title=old.title if title is None else title,
            shortcut=old.shortcut if shortcut is None else shortcut,
            reading=old.reading if reading is None else reading,
        )
        check_labels(new.title, new.shortcut, new.reading)
        if new.shortcut != old.shortcut:
            self._shortcuts.remove(old)
            self._shortcuts.add(new)
        norm = searchable(new)
        if norm != entry.norm:
            self._index.retext(entry, norm)
        if new.department != old.department:
            self._index.move(entry, old.department, new.department)
        entry.message = new
        return new

    def delete_message(self, message_id: str) -> None:
        """Delete a message and every agent's use count of it."""
        entry = self._check_message(message_id)
        self._shortcuts.remove(entry.message)
        del self._entries[message_id]
        self._index.remove(entry, len(self._entries))
        for agent_id in [agent for agent, counts in self._uses.items() if message_id in counts]:
            counts = self._uses[agent_id]
            del counts[message_id]
            if not counts:
                del self._uses[agent_id]

    # -- uses ---------------------------------------------------------------------------------

    def pick(
        self, message_id: str, *, agent_id: str, departments: Collection[str] | None = None
    ) -> CannedMessage:
        """Count one use of a message by an agent, who picked it; return the message.

        With ``departments`` (the agent's), a message not visible to them is ``not_found``.
        """
        entry = self._check_message(message_id, departments)
        _check_text(agent_id, "an agent id")
        counts = self._uses.setdefault(agent_id, {})
        counts[message_id] = counts.get(message_id, 0) + 1
        return entry.message

    def use_count(self, message_id: str, agent_id: str) -> int:
        """How many times ``agent_id`` picked ``message_id`` (0 for unknown ids)."""
        return self._uses.get(agent_id, {}).get(message_id, 0)

    # -- suggestions --------------------------------------------------------------------------

    def suggest(
        self, draft: str, *, departments: Collection[str], agent_id: str, limit: int = 10
    ) -> list[CannedMessage]:
        """Suggestions for a draft: `search` for `query_of` the draft, none when that is None."""
        query = query_of(draft)
        if query is None:
            return []
        return self.search(query, departments=departments, agent_id=agent_id, limit=limit)

    def search(
        self, query: str, *, departments: Collection[str], agent_id: str, limit: int = 10
    ) -> list[CannedMessage]:
        """At most ``limit`` messages matching ``query`` for an agent of ``departments``.

        Best first; see the module docstring for matching and ranking.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise CannedError("invalid", f"limit must be a positive integer, not {limit!r}")
        wanted = self._department_set(departments)
        index = self._index
        if index.dirty:
            index.rebuild(self._entries.values())
        norm = normalize(query)
        visible = index.visible(wanted)
        if norm:
            marked = marked_query(norm)
            contains = index.contains_candidates(norm) & visible
            starts = index.starts.get(norm[:3], 0) & contains if marked is not None else 0
        else:
            marked = None
            contains = starts = visible
        if not contains:
            return []
        # Whether the bitmaps hold exactly the matches, so that no substring test is needed.
        exact_contains = len(norm) <= 2
        exact_starts = len(norm) <= 3
        counts = self._uses.get(agent_id, {})

        def at_start(entry: IndexEntry) -> bool:
            return not norm or (marked is not None and marked in entry.marked)

        def visible_to_agent(entry: IndexEntry) -> bool:
            return entry.message.department is None or entry.message.department in wanted

        def by_use(entry: IndexEntry) -> tuple[int, float, str]:
            return (-counts.get(entry.message.id, 0), *rank(entry))

        # First the messages whose shortcut is the query; they are skipped further down.
        shortcut_ids = self._shortcuts.ids(norm) if norm else None
        shortcut_hits: list[IndexEntry] = []
        placed = _NO_IDS
        if shortcut_ids:
            shortcut_hits = sorted(
                (e for e in map(self._entries.__getitem__, shortcut_ids) if visible_to_agent(e)),
                key=by_use,
            )
            placed = frozenset(e.message.id for e in shortcut_hits)

        # Placed by direct substring tests: the agent's used messages, and the strays.
        used_starts: list[IndexEntry] = []
        used_inside: list[IndexEntry] = []
        for message_id in counts:
            if placed and message_id in placed:
                continue
            entry = self._entries[message_id]
            if visible_to_agent(entry):
                if at_start(entry):
                    used_starts.append(entry)
                elif norm in entry.norm:
                    used_inside.append(entry)
        stray_starts: list[IndexEntry] = []  # in rank order, as index.strays
        stray_inside: list[IndexEntry] = []
        skip = counts.keys() | placed if placed else counts  # placed already, or by use
        for entry in index.strays:
            if entry.message.id not in skip and visible_to_agent(entry):
                if at_start(entry):
                    stray_starts.append(entry)
                elif norm in entry.norm:
                    stray_inside.append(entry)

        def read_starts() -> Iterator[IndexEntry]:
            for entry in index.read(starts):
                if entry.message.id not in skip and (exact_starts or at_start(entry)):
                    yield entry

        def read_inside() -> Iterator[IndexEntry]:
            for entry in index.read(contains & ~starts if exact_starts else contains):
                if entry.message.id in skip:
                    continue  # placed already
                if not exact_contains and norm not in entry.norm:
                    continue
                if not exact_starts and at_start(entry):
                    continue  # placed already, with the word-start matches
                yield entry

        found = shortcut_hits
        found.extend(sorted(used_starts, key=by_use))
        found.extend(islice(merge(read_starts(), stray_starts), max(0, limit - len(found))))
        if len(found) < limit:
            found.extend(sorted(used_inside, key=by_use))
            found.extend(islice(merge(read_inside(), stray_inside), max(0, limit - len(found))))
        return [entry.message for entry in found[:limit]]

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _department_set(departments: Collection[str]) -> frozenset[str]:
        if isinstance(departments, str):
            raise CannedError("invalid", "departments must be a collection of ids, not one string")
        return frozenset(departments)

    def _check_message(
        self, message_id: str, departments: Collection[str] | None = None
    ) -> IndexEntry:
        entry = self._entries.get(message_id)
        if entry is not None and departments is not None:
            department = entry.message.department
            if department is not None and department not in self._department_set(departments):
                entry = None  # another department's: answered as if it did not exist
        if entry is None:
            raise CannedError("not_found", f"no canned message {message_id!r}")
        return entry

    def _admit(self, message: CannedMessage) -> IndexEntry:
        """Check a new message and hold it, not yet indexed."""
        _check_text(message.id, "a canned message id")
        _check_text(message.text, "a canned message's text")
        _check_department(message.department)
        created_at = message.created_at
        if not isinstance(created_at, int | float) or not math.isfinite(created_at):
            raise CannedError("invalid", f"created_at must be a finite number, not {created_at!r}")
        if message.id in self._entries:
            raise CannedError("invalid", f"canned message {message.id!r} already exists")
        self.category(message.category)
        check_labels(message.title, message.shortcut, message.reading)
        norm = searchable(message)
        entry = IndexEntry(message=message, norm=norm, marked=mark(norm))
        self._entries[message.id] = entry
        self._shortcuts.add(message)
        return entry
