"""Canned messages for the engine: the in-memory `CannedBook`, written through to the store.

Theory of operation: the book answers suggestions from memory (a lookup never touches the disk);
every change is applied to the book first, which validates it, and then written to the store in
one transaction. If the write fails the book is rebuilt from the store, so memory never stays ahead
of what is committed, and the caller gets `EngineError("store_unavailable")`. The tables live here,
created when the engine starts, so the rest of the store needs to know nothing about them.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Collection, Mapping
from typing import ParamSpec, TypeVar

from ..model.errors import EngineError
from ..store.contract import Connection, Store
from .book import CannedBook
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
from .text import fill_placeholders

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS canned_categories (id TEXT PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS canned_messages (id TEXT PRIMARY KEY, text TEXT NOT NULL,"
    " category TEXT NOT NULL, department TEXT, created_at REAL NOT NULL,"
    " title TEXT NOT NULL DEFAULT '', shortcut TEXT NOT NULL DEFAULT '',"
    " reading TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS canned_uses (agent_id TEXT NOT NULL, message_id TEXT NOT NULL,"
    " count INTEGER NOT NULL, PRIMARY KEY (agent_id, message_id))",
)

Job = Callable[[Connection], None]
P = ParamSpec("P")
T = TypeVar("T")


def _create(conn: Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


def _load(conn: Connection) -> CannedSnapshot:
    return CannedSnapshot(
        categories=tuple(
            CannedCategory(id=i, name=n)
            for i, n in conn.execute("SELECT id, name FROM canned_categories")
        ),
        messages=tuple(
            CannedMessage(
                id=i,
                text=t,
                category=c,
                department=d,
                created_at=a,
                title=title,
                shortcut=shortcut,
                reading=reading,
            )
            for i, t, c, d, a, title, shortcut, reading in conn.execute(
                "SELECT id, text, category, department, created_at, title, shortcut, reading"
                " FROM canned_messages"
            )
        ),
        uses=tuple(
            CannedUse(agent_id=a, message_id=mid, count=n)
            for a, mid, n in conn.execute("SELECT agent_id, message_id, count FROM canned_uses")
        ),
    )


def _put_message(msg: CannedMessage) -> Job:
    def job(conn: Connection) -> None:
        conn.execute(
            "INSERT INTO canned_messages"
            " (id, text, category, department, created_at, title, shortcut, reading)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET text = excluded.text,"
            " category = excluded.category, department = excluded.department,"
            " created_at = excluded.created_at, title = excluded.title,"
            " shortcut = excluded.shortcut, reading = excluded.reading",
            (
                msg.id,
                msg.text,
                msg.category,
                msg.department,
                msg.created_at,
                msg.title,
                msg.shortcut,
                msg.reading,
            ),
        )

    return job


def _delete_messages(ids: Collection[str]) -> Job:
    def job(conn: Connection) -> None:
        for message_id in ids:
            conn.execute("DELETE FROM canned_uses WHERE message_id = ?", (message_id,))
            conn.execute("DELETE FROM canned_messages WHERE id = ?", (message_id,))

    return job


class CannedDesk:
    """Canned messages and categories, their suggestions and use counts, kept in the store."""

    def __init__(self, store: Store, book: CannedBook, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        self.book = book

    @classmethod
    async def open(cls, store: Store, now: Callable[[], float]) -> CannedDesk:
        """Create the tables if needed and load every canned message into memory."""
        await store.write(_create)
        return cls(store, CannedBook.from_snapshot(await store.read(_load)), now)

    # --- reading --------------------------------------------------------------------------------

    def categories(self) -> list[CannedCategory]:
        return self.book.categories()

    def messages(
        self, *, departments: Collection[str] | None = None, category: str | None = None
    ) -> list[CannedMessage]:
        """Messages newest first: all, or those visible to `departments`, or of `category`."""
        return self._call(lambda: self.book.messages(departments=departments, category=category))

    def message(
        self, message_id: str, *, departments: Collection[str] | None = None
    ) -> CannedMessage:
        """One message; with ``departments``, ``not_found`` unless it is visible to them."""
        return self._call(lambda: self.book.message(message_id, departments=departments))

    def suggest(
        self, draft: str, *, departments: Collection[str], agent_id: str, limit: int = 10
    ) -> list[CannedMessage]:
        """Canned messages matching the `#` query at the end of `draft`, best first."""
        return self._call(
            lambda: self.book.suggest(
                draft, departments=departments, agent_id=agent_id, limit=limit
            )
        )

    # --- changing -------------------------------------------------------------------------------

    async def add_category(self, name: str, *, category_id: str = "") -> CannedCategory:
        category = self._call(self.book.add_category, category_id or _new_id(), name)

        def job(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO canned_categories (id, name) VALUES (?, ?)", (category.id, name)
            )

        await self._write(job)
        return category

    async def rename_category(self, category_id: str, name: str) -> CannedCategory:
        category = self._call(self.book.rename_category, category_id, name)

        def job(conn: Connection) -> None:
            conn.execute("UPDATE canned_categories SET name = ? WHERE id = ?", (name, category_id))

        await self._write(job)
        return category

    async def delete_category(
        self, category_id: str, *, messages: DeleteMode = "refuse", move_to: str | None = None
    ) -> None:
        """Delete a category; a non-empty one needs `messages="delete"` or `"move"` + `move_to`."""
        held = [m.id for m in self.book.messages() if m.category == category_id]
        self._call(
            lambda: self.book.delete_category(category_id, messages=messages, move_to=move_to)
        )

        def job(conn: Connection) -> None:
            if move_to is not None:
                conn.execute(
                    "UPDATE canned_messages SET category = ? WHERE category = ?",
                    (move_to, category_id),
                )
            else:
                _delete_messages(held)(conn)
            conn.execute("DELETE FROM canned_categories WHERE id = ?", (category_id,))

        await self._write(job)

    async def add_message(
        self,
        text: str,
        *,
        category: str,
        department: str | None = None,
        message_id: str = "",
        title: str = "",
        shortcut: str = "",
        reading: str = "",
    ) -> CannedMessage:
        """Add a canned message to a category, for one department or (None) all of them, with
        an optional title, shortcut and reading (see `CannedMessage`)."""
        message = CannedMessage(
            id=message_id or _new_id(),
            text=text,
            category=category,
            department=department,
            created_at=self._now(),
            title=title,
            shortcut=shortcut,
            reading=reading,
        )
        self._call(self.book.add_message, message)
        await self._write(_put_message(message))
        return message

    async def edit_message(
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
        """Change a message's text, category, department (None: shared by all), title, shortcut
        or reading (an empty one removes it)."""
        message = self._call(
            lambda: self.book.edit_message(
                message_id,
                text=text,
                category=category,
                department=department,
                title=title,
                shortcut=shortcut,
                reading=reading,
            )
        )
        await self._write(_put_message(message))
        return message

    async def delete_message(self, message_id: str) -> None:
        self._call(self.book.delete_message, message_id)
        await self._write(_delete_messages([message_id]))

    async def pick(
        self,
        message_id: str,
        *,
        agent_id: str,
        values: Mapping[str, str],
        departments: Collection[str] | None = None,
    ) -> str:
        """The agent picked a suggestion: count the use and return its text, placeholders filled.

        With ``departments`` (the agent's), a message of another department is ``not_found``.
        """
        message = self._call(
            lambda: self.book.pick(message_id, agent_id=agent_id, departments=departments)
        )
        count = self.book.use_count(message_id, agent_id)

        def job(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO canned_uses (agent_id, message_id, count) VALUES (?, ?, ?)"
                " ON CONFLICT (agent_id, message_id) DO UPDATE SET count = excluded.count",
                (agent_id, message_id, count),
            )

        await self._write(job)
        return fill_placeholders(message.text, values)

    # --- plumbing -------------------------------------------------------------------------------

    def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except CannedError as exc:
            code = "invalid_field" if exc.code == "invalid" else exc.code
            raise EngineError(code, exc.message) from None

    async def _write(self, job: Job) -> None:
        try:
            await self._store.write(job)
        except Exception as exc:
            with contextlib.suppress(Exception):  # memory must not stay ahead of the disk
                self.book = CannedBook.from_snapshot(await self._store.read(_load))
            raise EngineError("store_unavailable", "not saved; try again") from exc


def _new_id() -> str:
    return secrets.token_hex(6)
