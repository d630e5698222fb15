"""One daemon per store: a second one refuses to start instead of silently splitting the desk.

Two daemons that route over one store would each keep their own picture of agents, offers and
queues, and split the desk between them without a word. Until several nodes can share a store as
one desk, a daemon holds the store for itself while it serves:

- a SQLite file with an ``flock`` on the file itself. It does not touch SQLite's own locks (POSIX
  record locks, another kind), so the command line still works on the file while the daemon runs.
  The descriptor stays open until the daemon is done: closing a descriptor of the file earlier
  would also drop SQLite's locks held by this process.
- a PostgreSQL database with a session advisory lock, keyed by the schema the store lives in, on
  one connection kept open for as long as the daemon serves. The lock goes when the connection
  does, so a killed daemon never leaves it behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from .url import parse_store_url
from .writer import StoreError

__all__ = ["exclusive_use"]

_PG_LOCK = "SELECT pg_try_advisory_lock(hashtext('helpline-daemon:' || current_schema()))"


@asynccontextmanager
async def exclusive_use(url: str | os.PathLike[str]) -> AsyncIterator[None]:
    """Hold the store ``url`` names for this process; ``StoreError("store_in_use")`` if another
    daemon holds it."""
    where = parse_store_url(url)
    if where.kind == "sqlite":
        fd = os.open(where.target, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _in_use(str(where)) from None
            yield
        finally:
            os.close(fd)
        return
    import psycopg

    def lock() -> psycopg.Connection[tuple[bool]]:
        conn: psycopg.Connection[tuple[bool]] = psycopg.connect(where.target, autocommit=True)
        row = conn.execute(_PG_LOCK).fetchone()
        if row is None or not row[0]:
            conn.close()
            raise _in_use(str(where))
        return conn

    conn = await trio.to_thread.run_sync(lock)
    try:
        yield
    finally:
        await trio.to_thread.run_sync(conn.close)


def _in_use(where: str) -> StoreError:
    return StoreError(
        f"another helpline daemon is serving {where}; stop it first, or give this one a store "
        "of its own (several daemons cannot share one desk yet)",
        code="store_in_use",
    )
