"""Copy a whole desk from one store to another (``helpline store copy FROM TO``).

Every table the contract's data lives in is copied row for row, in an order that satisfies the
foreign keys: departments, agents, tokens (with a supervisor's departments), canned messages,
tickets (with their ids, agents and ratings), the journal of the chats that are still open, the
audit log, and the webhooks with their outbox. Ids are kept, so a ticket keeps its number; on
PostgreSQL the ticket, audit and outbox id sequences are moved past the highest ids copied. Rows go
over in pages of ``PAGE`` rows, one transaction per page, through the contract's ``read`` and
``write`` (the SQL is the stores' common dialect).

The target must be empty, so a copy never merges two desks; the source should not be in use (stop
its daemon first), or rows written meanwhile may be missed. At the end every table is counted on
both sides, and a difference is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .contract import Connection, Store
from .writer import StoreError

__all__ = ["TABLES", "CopyReport", "copy_store"]

PAGE: Final = 500

# (table, columns, order): parents before children.
TABLES: Final = (
    (
        "departments",
        "id, name, chat_enabled, routing, offer_window, queue_timeout, queue_limit, options",
    ),
    ("agents", "id, name, capacity, status, ringtone, skills"),
    ("agent_departments", "agent_id, position, department"),
    ("tokens", "token_hash, role, subject, created_at"),
    ("token_departments", "token_hash, department"),
    ("canned_categories", "id, name"),
    ("canned_messages", "id, text, category, department, created_at, title, shortcut, reading"),
    ("canned_uses", "agent_id, message_id, count"),
    (
        "tickets",
        "id, chat_id, kind, department, question, visitor_name, visitor_email,"
        " visitor_email_lower, visitor_browser, visitor_os, visitor_location, visitor_id, entries,"
        " handoffs, started_at, accepted_at, ended_at, end_reason, rating, rating_comment,"
        " handled, owner, score",
    ),
    ("ticket_agents", "ticket_id, position, agent"),
    ("ticket_tags", "ticket_id, position, tag"),
    ("routing_traces", "chat_id, department, ended_at, steps"),
    ("live_chats", "chat_id, record, offer_id, handoff_id"),
    ("live_entries", "chat_id, seq, at, kind, author, text, client_msg_id"),
    ("live_agents", "agent_id, grace_until"),
    ("audit_log", "id, at, actor, action, target, before, after"),
    ("webhooks", "id, url, secret, department, events, created_at"),
    (
        "webhook_outbox",
        "id, delivery_id, webhook_id, chat_id, kind, body, queued_at, attempts, next_attempt,"
        " state, last_error, done_at",
    ),
)

_ORDER: Final = {  # a stable order to page by: each table's primary key
    "departments": "id",
    "agents": "id",
    "agent_departments": "agent_id, position",
    "tokens": "token_hash",
    "token_departments": "token_hash, department",
    "canned_categories": "id",
    "canned_messages": "id",
    "canned_uses": "agent_id, message_id",
    "tickets": "id",
    "ticket_agents": "ticket_id, position",
    "ticket_tags": "ticket_id, position",
    "routing_traces": "chat_id",
    "live_chats": "chat_id",
    "live_entries": "chat_id, seq",
    "live_agents": "agent_id",
    "audit_log": "id",
    "webhooks": "id",
    "webhook_outbox": "id",
}


@dataclass(frozen=True, slots=True)
class CopyReport:
    """Rows per table in the source and in the target after the copy, and rated tickets."""

    source: dict[str, int]
    target: dict[str, int]
    rated: int

    @property
    def matches(self) -> bool:
        return self.source == self.target


async def count_rows(store: Store) -> dict[str, int]:
    """How many rows each copied table holds, in one snapshot."""

    def count(conn: Connection) -> dict[str, int]:
        counts: dict[str, int] = {}
        for table, _ in TABLES:
            (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            counts[table] = int(n)
        return counts

    return await store.read(count)


def _page_reader(
    table: str, columns: str, offset: int
) -> Callable[[Connection], list[tuple[Any, ...]]]:
    def read(conn: Connection) -> list[tuple[Any, ...]]:
        sql = f"SELECT {columns} FROM {table} ORDER BY {_ORDER[table]} LIMIT ? OFFSET ?"
        return [tuple(row) for row in conn.execute(sql, (PAGE, offset))]

    return read


def _page_writer(
    table: str, columns: str, rows: list[tuple[Any, ...]]
) -> Callable[[Connection], None]:
    def write(conn: Connection) -> None:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

    return write


def _sequence_past(table: str) -> Callable[[Connection], None]:
    """Move a PostgreSQL table's id sequence past the highest id copied."""

    def move(conn: Connection) -> None:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" (SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"
        ).fetchone()

    return move


async def copy_store(
    source: Store,
    target: Store,
    *,
    target_is_postgres: bool,
) -> CopyReport:
    """Copy every row of ``source`` into the empty ``target`` and count both sides.

    ``StoreError("store_not_empty")`` if the target holds anything already.
    """
    before = await count_rows(target)
    held = {table: n for table, n in before.items() if n}
    if held:
        listed = ", ".join(f"{table} {n}" for table, n in held.items())
        raise StoreError(
            f"the target store is not empty ({listed}); copy into a new database",
            code="store_not_empty",
        )
    for table, columns in TABLES:
        copied = 0
        while True:
            page = await source.read(_page_reader(table, columns, copied))
            if not page:
                break
            await target.write(_page_writer(table, columns, page))
            copied += len(page)
    if target_is_postgres:
        for table in ("tickets", "audit_log", "webhook_outbox"):
            await target.write(_sequence_past(table))
    rated = await source.read(
        lambda conn: int(
            conn.execute("SELECT count(*) FROM tickets WHERE rating IS NOT NULL").fetchone()[0]
        )
    )
    return CopyReport(await count_rows(source), await count_rows(target), rated)
