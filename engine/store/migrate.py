"""Versioned schema migrations: numbered SQL files per database, applied when a store opens.

Theory of operation
===================

``engine/store/migrations/<backend>/NNNN_name.sql`` holds the migrations of one backend (``sqlite``
or ``postgresql``), numbered from 1 without gaps; each backend counts its own versions. The table
``schema_version`` holds one row, the number of the last migration applied.

``migrate(conn, backend)`` runs inside the transaction that opens the store: it reads the version
(0 when the table is new), refuses a database newer than the code (``schema_too_new``), then runs
every later file statement by statement and records the new version. Either all of it commits or
none. Two processes opening one PostgreSQL database at once are serialised by the caller with a
lock taken in the same transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

from .contract import Connection
from .writer import StoreError

__all__ = ["Migration", "latest", "migrate", "migrations"]

_NAME: Final = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file, split into statements."""

    version: int
    name: str
    statements: tuple[str, ...]


def split(script: str) -> tuple[str, ...]:
    """The statements of ``script``: split at ``;``, except inside ``$$`` bodies and inside the
    ``BEGIN ... END`` body of a ``CREATE TRIGGER`` (SQLite's); no comments."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    statements: list[str] = []
    for i, part in enumerate("\n".join(lines).split("$$")):
        if i % 2:  # inside a $$ body: glue it back whole
            statements[-1] += f"$${part}$$"
            continue
        pieces = part.split(";")
        if statements:
            statements[-1] += pieces.pop(0)
        statements.extend(pieces)
    merged: list[str] = []
    for statement in (s.strip() for s in statements if s.strip()):
        if merged and _open_trigger(merged[-1]):
            merged[-1] += f";\n{statement}"
        else:
            merged.append(statement)
    return tuple(merged)


def _open_trigger(statement: str) -> bool:
    """Whether ``statement`` is a trigger whose ``BEGIN ... END`` body goes on past a ``;``."""
    words = statement.upper().split()
    return words[:2] == ["CREATE", "TRIGGER"] and "BEGIN" in words and words[-1] != "END"


@cache
def migrations(backend: str) -> tuple[Migration, ...]:
    """Every migration of ``backend``, in order; ValueError if the numbering has a gap."""
    folder = resources.files("engine.store") / "migrations" / backend
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, split(entry.read_text("utf-8"))))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise ValueError(f"the {backend} migrations are not numbered 1..n: {found}")
    return tuple(found)


def latest(backend: str) -> int:
    """The schema version this code writes for ``backend``."""
    return len(migrations(backend))


def migrate(conn: Connection, backend: str) -> tuple[int, int]:
    """Bring the database up to ``latest(backend)``; returns (version before, version after).

    Run it inside a transaction. ``StoreError("schema_too_new")`` for a newer database.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    (found,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    before = 0 if found is None else int(found)
    target = latest(backend)
    if before > target:
        raise StoreError(
            f"database schema version {before} is newer than this helpline ({target}); "
            "upgrade helpline",
            code="schema_too_new",
        )
    for migration in migrations(backend)[before:]:
        for statement in migration.statements:
            conn.execute(statement)
    if found is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
    elif before < target:
        conn.execute("UPDATE schema_version SET version = ?", (target,))
    return before, target
