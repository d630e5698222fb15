"""One option chooses the store: ``postgresql://user@host/db``, ``sqlite:///path`` or a plain path.

``open_store(url)`` opens the store the URL names and yields it as a ``Store``; a plain path (what
``--db`` has always taken) is a SQLite file, and ``:memory:`` a throwaway SQLite store in memory
(``sqlite``, Rule 6). The PostgreSQL module, and psycopg, are imported only
when a PostgreSQL URL is opened.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from . import sqlite_store
from .contract import Store

__all__ = ["StoreLocation", "open_store", "parse_store_url"]

_POSTGRES_SCHEMES: Final = ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where a store is: a SQLite file's path, or a PostgreSQL connection URL."""

    kind: Literal["sqlite", "postgresql"]
    target: str  # the file's path, or the URL as libpq takes it

    def __str__(self) -> str:
        """For messages: the path, or the URL without its password."""
        if self.kind == "sqlite":
            return self.target
        parts = urlsplit(self.target)
        if parts.password is None:
            return self.target
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()


def parse_store_url(url: str | os.PathLike[str]) -> StoreLocation:
    """Read a store option; ValueError for a URL scheme that is not a store's."""
    text = os.fspath(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return StoreLocation("sqlite", text)
    scheme = scheme.lower()
    if scheme in _POSTGRES_SCHEMES:
        return StoreLocation("postgresql", text)
    if scheme == "sqlite":
        # As a file URL: sqlite:///var/lib/helpline.db is /var/lib/helpline.db (no host part).
        if not rest.startswith("/") or rest == "/":
            raise ValueError(
                f"no file in {text!r}; write sqlite:///absolute/path.db, or a plain path"
            )
        path = unquote(rest)
        return StoreLocation("sqlite", path)
    raise ValueError(
        f"unknown store {text!r}: expected postgresql://user@host/db, sqlite:///path or a path"
    )


@asynccontextmanager
async def open_store(
    url: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    busy_timeout: float = 5.0,
    threads: bool = True,
) -> AsyncIterator[Store]:
    """Open the store ``url`` names for the duration of the block (see the module docstring).

    ``synchronous`` is SQLite's pragma for a file; on PostgreSQL only OFF changes anything (see
    ``engine.store.postgres.open_store``). ``busy_timeout`` is how long a SQLite write waits for a
    lock another process holds. ``threads=False`` keeps a SQLite store's work in the trio thread
    (``engine.store.sqlite_store.open_store``); a PostgreSQL store refuses it.
    """
    where = parse_store_url(url)
    if where.kind == "postgresql":
        if not threads:
            raise ValueError("a PostgreSQL store always runs its work in threads")
        from . import postgres

        async with postgres.open_store(where.target, synchronous=synchronous) as pg:
            yield pg
    else:
        async with sqlite_store.open_store(
            where.target, synchronous=synchronous, busy_timeout=busy_timeout, threads=threads
        ) as sqlite:
            yield sqlite
