"""One daemon per store: a second one refuses to start instead of silently splitting the desk.

Two daemons that route over one store would each keep their own picture of agents, offers and
queues, and split the desk between them without a word. A daemon that is not one of several nodes
(``helpline serve --node``, ``engine.store.lease``) holds the store for itself while it serves:

- a SQLite file with an ``flock`` on the file itself. It does not touch SQLite's own locks (POSIX
  record locks, another kind), so the command line still works on the file while the daemon runs.
  The descriptor stays open until the daemon is done: closing a descriptor of the file earlier
  would also drop SQLite's locks held by this process.
- a PostgreSQL database with a session advisory lock, keyed by the schema the store lives in, on
  one connection kept open for as long as the daemon serves. The lock goes when the connection
  does, so a killed daemon never leaves it behind.

The nodes of a cluster hold the same advisory lock in shared mode (``shared_use``): any number of
nodes together, but never nodes and a lone daemon on one store.
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

_PG_KEY = "hashtext('helpline-daemon:' || current_schema())"
_PG_LOCK = f"SELECT pg_try_advisory_lock({_PG_KEY})"
_PG_SHARED = f"SELECT pg_try_advisory_lock_shared({_PG_KEY})"


@asynccontextmanager
async def exclusive_use(
    url: str | os.PathLike[str], *, shared: bool = False
) -> AsyncIterator[None]:
    """Hold the store ``url`` names for this process; ``StoreError("store_in_use")`` if another
    daemon holds it. ``shared`` (PostgreSQL only): hold it with other nodes of a cluster."""
    where = parse_store_url(url)
    if shared and where.kind == "sqlite":
        raise StoreError("several nodes need a PostgreSQL store", code="store_in_use")
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
        row = conn.execute(_PG_SHARED if shared else _PG_LOCK).fetchone()
        if row is None or not row[0]:
            conn.close()
            raise _in_use(str(where), shared)
        return conn

    conn = await trio.to_thread.run_sync(lock)
    try:
        yield
    finally:
        await trio.to_thread.run_sync(conn.close)


def _in_use(where: str, shared: bool = False) -> StoreError:
    if shared:
        return StoreError(
            f"a helpline daemon that is not a node is serving {where}; stop it first, then start "
            "every daemon on this store with --node NAME",
            code="store_in_use",
        )
    return StoreError(
        f"another helpline daemon is serving {where}; stop it first, or give this one a store "
        "of its own (or start every daemon on a PostgreSQL store with --node NAME to share it)",
        code="store_in_use",
    )
