"""The audit log's queries, written once for SQLite and PostgreSQL (mixed into ``StoreQueries``).

Every admin and supervisor action, and every change the command line makes, is one row of
``audit_log``: when, who (``actor``), what (``action``), to what (``target``), and the state before
and after as JSON text. Rows are only ever added. Listing is newest first (``at``, then id), with
optional filters; ``limit`` is bounded like a ticket page.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol, TypeVar

from ..model.audit import AuditEntry
from .contract import Connection

__all__ = ["MAX_AUDIT_PAGE", "AuditQueries"]

T = TypeVar("T")

MAX_AUDIT_PAGE: Final = 1000


class _Backend(Protocol):
    def write(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...

    def read(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...


def _dumps(state: Mapping[str, Any] | None) -> str | None:
    if state is None:
        return None
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _loads(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))


def _entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        id=int(row[0]),
        at=float(row[1]),
        actor=row[2],
        action=row[3],
        target=row[4],
        before=_loads(row[5]),
        after=_loads(row[6]),
    )


class AuditQueries:
    """``record_audit`` and ``audit`` of the store contract."""

    async def record_audit(self: _Backend, entry: AuditEntry) -> AuditEntry:
        """Store one audit entry, committed; returns it with the id the store assigned."""
        if entry.id is not None:
            raise ValueError("the store assigns audit ids")
        before, after = _dumps(entry.before), _dumps(entry.after)  # refuse what is not JSON now

        def insert(conn: Connection) -> AuditEntry:
            (new_id,) = conn.execute(
                "INSERT INTO audit_log (at, actor, action, target, before, after)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (entry.at, entry.actor, entry.action, entry.target, before, after),
            ).fetchone()
            return AuditEntry(
                id=int(new_id),
                at=entry.at,
                actor=entry.actor,
                action=entry.action,
                target=entry.target,
                before=_loads(before),
                after=_loads(after),
            )

        return await self.write(insert)

    async def audit(
        self: _Backend,
        *,
        since: float | None = None,
        until: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """One page of audit entries matching every filter, newest first."""
        if not 0 <= limit <= MAX_AUDIT_PAGE or offset < 0:
            raise ValueError(f"limit must be 0..{MAX_AUDIT_PAGE} and offset at least 0")
        where: list[str] = []
        params: list[object] = []
        for clause, value in (
            ("at >= ?", since),
            ("at < ?", until),
            ("actor = ?", actor),
            ("action = ?", action),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = "SELECT id, at, actor, action, target, before, after FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY at DESC, id DESC LIMIT ? OFFSET ?"

        def select(conn: Connection) -> list[AuditEntry]:
            return [_entry(row) for row in conn.execute(sql, (*params, limit, offset))]

        return await self.read(select)
