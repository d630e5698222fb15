"""The durable store: tickets, departments, agents and access tokens in one SQLite file.

Theory of operation
===================

``open_store(path)`` opens (or creates) the file, puts it in WAL mode, applies the schema
migrations it lacks (``engine.store.migrate``), and starts ONE writer thread that owns the only
writing connection. Every write is a small function run in that thread; the thread groups whatever
writes are waiting into one transaction (group commit) with a savepoint per write, so one failing
write undoes only itself, and reports each outcome back to trio only after COMMIT returned. The
mechanism lives in ``engine.store.writer`` and ``engine.store.sqlite``; this module opens it.

The queries (``StoreQueries``, ``engine.store.queries``) are written once for SQLite and
PostgreSQL. ``SqliteStore`` and ``engine.store.postgres.PostgresStore`` add only the machinery
under them; both honour the contract of ``engine.store.contract``.

Two ways to write, for two kinds of caller (DESIGN.md, "The store is a leaf"):

* ``await store.save_ticket(t)`` (and every other ``async`` write) returns once the write is
  committed; sessions and agents use these.
* ``store.submit_journal(batch, on_done)`` (and the generic ``store.submit(fn, on_done)``) never
  blocks and never awaits. ``on_done`` is called later in the trio thread, outside any task, with
  the result or the exception; the router uses it and turns the callback into a message.

Reads run on separate reader connections in worker threads, each inside one read transaction.

Schema
------

The schema lives in ``engine/store/migrations/sqlite/*.sql``. ``tickets`` has one row per chat: the
visitor's fields as real columns (plus the lower-cased email in an indexed column), entries and
handoffs as JSON text, and ``UNIQUE(chat_id)`` so that a second ticket for a chat is refused by the
database itself. ``ticket_agents`` lists who handled each ticket, in order, indexed by agent.
``departments``, ``agents`` with ``agent_departments``, ``tokens`` (only hashes), the canned
messages' tables and ``schema_version`` complete it.

The journal of live chats (``live_chats``, ``live_entries``, ``live_agents``) is described in
``store.journal``. Storing a chat's ticket deletes its live rows in the same transaction, so a
chat is always exactly one of live or ticketed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import trio

from .lines import LineQueue
from .migrate import latest, migrate
from .queries import StoreQueries
from .sqlite import SYNCHRONOUS_MODES, Database, connect_writer
from .writer import StoreBusy, StoreClosed, StoreError

__all__ = [
    "SqliteStore",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "StoreQueries",
    "open_store",
]

SCHEMA_VERSION: Final = latest("sqlite")


class SqliteStore(StoreQueries, Database):
    """Tickets, departments, agents and tokens in SQLite; get one from ``open_store``.

    ``write``, ``submit`` and ``read`` (from ``Database``) are the generic mechanism; the queries
    come from ``StoreQueries``. Every ``async`` write returns only after its COMMIT.
    """

    def __init__(
        self, conn: sqlite3.Connection, *, versions: tuple[int, int], **kwargs: Any
    ) -> None:
        super().__init__(conn, **kwargs)
        self.line_queue = LineQueue()
        self.migrated_from, self.schema_version = versions


@asynccontextmanager
async def open_store(
    path: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    busy_timeout: float = 5.0,
    batch_max: int = 256,
    max_pending: int = 10_000,
    threads: bool = True,
) -> AsyncIterator[SqliteStore]:
    """Open (creating if needed) the store at ``path`` for the duration of the block.

    Migrations the file lacks are applied first, in one transaction; a file written by a newer
    helpline is refused (``StoreError("schema_too_new")``). On exit, writes already handed over
    finish and are delivered before the writer stops. ``synchronous`` is SQLite's pragma (OFF,
    NORMAL, FULL or EXTRA); ``batch_max`` bounds a group commit; ``max_pending`` bounds the
    writes queued at once. ``threads=False`` runs every read and write in the trio thread (Rule 6
    of ``engine.store.sqlite``): for a run on a virtual clock, not for a daemon, whose event loop
    would then wait for every commit.
    """
    if synchronous.upper() not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
    path_str = os.fspath(path)
    versions: list[tuple[int, int]] = []

    def connect() -> sqlite3.Connection:
        return connect_writer(
            path_str,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            setup=lambda c: versions.append(migrate(c, "sqlite")),
        )

    if threads:
        conn = await trio.to_thread.run_sync(connect)
    else:
        await trio.lowlevel.checkpoint()
        conn = connect()
    try:
        store = SqliteStore(
            conn,
            versions=versions[0],
            path=path_str,
            busy_timeout=busy_timeout,
            batch_max=batch_max,
            max_pending=max_pending,
            threads=threads,
        )
    except BaseException:
        conn.close()
        raise
    store.start()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.hold.run)
        try:
            yield store
        finally:
            await store.aclose()
            nursery.cancel_scope.cancel()
