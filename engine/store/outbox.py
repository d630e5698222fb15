"""The webhook outbox: desk events waiting to be posted, kept in the store until they are.

Theory of operation
===================

Rule 1. An event is queued by the transaction that makes its decision durable (``enqueue`` is
        called inside that write: the router's journal batch, the storing of a ticket or of a
        rating), one row per webhook that subscribes to it. No event without its commit; none
        lost after it. The row holds the exact JSON body and a random delivery id, both the same
        on every attempt, so a receiver can deduplicate a retry whose first answer was lost.
Rule 2. Order per chat. The rows of one (webhook, chat) go out in the outbox's order, one at a
        time: only the oldest pending row of each pair is due (``due``), so a chat's next event
        waits until the one before it is delivered or given up. Different chats, and different
        webhooks, do not wait for each other.
Rule 3. The deliverer (protocol/server/webhooks.py) records every outcome here (``mark``):
        delivered, pending again with a later ``next_attempt``, or failed. A failed row stays,
        with its last error, for an admin to see (``failures``) and to put back in line
        (``replay``), which makes it pending again and restarts its retry time.
Rule 4. The outbox outlives the process: a row that was being posted when the process stopped is
        still pending, and is posted again after a restart (at least once, deduplicated by the
        receiver through its delivery id).
Rule 5. Delivered rows are kept for a while (to look into a receiver's complaint), then deleted
        by the deliverer (``outbox_purge``, after its ``retention``). Failed rows are never
        purged that way: they stay until replayed, or until an admin discards them
        (``outbox_discard``) or removes their webhook.

The SQL is the stores' common dialect; ``OutboxQueries`` is mixed into ``StoreQueries``, so both
stores implement these contract methods once.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, Protocol, TypeVar

from ..model.desk_events import Delivery, DeliveryState, DeskEvent, DeskEventKind, Webhook
from .contract import Connection
from .writer import StoreError

__all__ = ["OutboxQueries", "enqueue"]

T = TypeVar("T")

_COLUMNS: Final = (
    "o.id, o.delivery_id, o.webhook_id, o.chat_id, o.kind, o.body, o.queued_at, o.attempts,"
    " o.next_attempt, o.state, o.last_error, o.done_at, w.url, w.secret"
)


def _webhook(row: Sequence[Any]) -> Webhook:
    webhook_id, url, secret, department, events, created_at = row
    return Webhook(
        id=webhook_id,
        url=url,
        secret=secret,
        department=department,
        events=tuple(DeskEventKind(e) for e in events.split(",") if e),
        created_at=created_at,
    )


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=int(row[0]),
        delivery_id=row[1],
        webhook_id=row[2],
        chat_id=row[3],
        kind=DeskEventKind(row[4]),
        body=row[5],
        queued_at=row[6],
        attempts=int(row[7]),
        next_attempt=row[8],
        state=DeliveryState(row[9]),
        last_error=row[10],
        done_at=row[11],
        url=row[12],
        secret=row[13],
    )


def select_webhooks(conn: Connection) -> list[Webhook]:
    rows = conn.execute(
        "SELECT id, url, secret, department, events, created_at FROM webhooks ORDER BY id"
    )
    return [_webhook(row) for row in rows]


def enqueue(conn: Connection, events: Iterable[DeskEvent]) -> int:
    """Queue each event for every webhook that wants it, in order; returns the rows queued.

    Run it inside the write that makes the events' decisions durable (Rule 1).
    """
    events = tuple(events)
    if not events:
        return 0
    hooks = select_webhooks(conn)
    rows = []
    for event in events:
        for hook in hooks:
            if hook.wants(event):
                delivery_id = secrets.token_hex(16)
                rows.append(
                    (
                        delivery_id,
                        hook.id,
                        event.chat_id,
                        event.kind.value,
                        event.body(delivery_id),
                        event.at,
                        event.at,
                        DeliveryState.PENDING.value,
                    )
                )
    if rows:
        conn.executemany(
            "INSERT INTO webhook_outbox (delivery_id, webhook_id, chat_id, kind, body, queued_at,"
            " next_attempt, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


class _Backend(Protocol):
    def write(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...

    def read(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...


class OutboxQueries:
    """The contract's webhook methods (``engine.store.contract.Store``), over ``write``/``read``."""

    async def save_webhook(self: _Backend, hook: Webhook) -> None:
        """Store a new webhook, committed; ``StoreError("webhook_exists")`` if the id is taken."""

        def insert(conn: Connection) -> None:
            cursor = conn.execute(
                "INSERT INTO webhooks (id, url, secret, department, events, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    hook.id,
                    hook.url,
                    hook.secret,
                    hook.department,
                    ",".join(e.value for e in hook.events),
                    hook.created_at,
                ),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"a webhook {hook.id!r} exists already", code="webhook_exists")

        await self.write(insert)

    async def webhooks(self: _Backend) -> list[Webhook]:
        """Every webhook, by id."""
        return await self.read(select_webhooks)

    async def remove_webhook(self: _Backend, webhook_id: str) -> None:
        """Delete a webhook and every outbox row of it, committed; ``NotFound`` if none."""

        def delete(conn: Connection) -> None:
            conn.execute("DELETE FROM webhook_outbox WHERE webhook_id = ?", (webhook_id,))
            if conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount == 0:
                raise StoreError(f"no webhook {webhook_id!r}", code="not_found")

        await self.write(delete)

    async def outbox_due(self: _Backend, now: float, *, limit: int = 100) -> list[Delivery]:
        """The deliveries to attempt now: of each (webhook, chat), the oldest pending row, if its
        ``next_attempt`` has come; oldest first, at most ``limit``."""

        def select(conn: Connection) -> list[Delivery]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id"
                " WHERE o.id IN (SELECT min(id) FROM webhook_outbox WHERE state = 'pending'"
                " GROUP BY webhook_id, chat_id) AND o.next_attempt <= ? ORDER BY o.id LIMIT ?",
                (now, limit),
            )
            return [_delivery(row) for row in rows]

        return await self.read(select)

    async def outbox_mark(
        self: _Backend,
        row_id: int,
        *,
        state: DeliveryState,
        attempts: int,
        next_attempt: float,
        error: str = "",
        now: float,
    ) -> None:
        """Record an attempt's outcome on a pending row, committed (a row replayed or removed
        meanwhile is left alone)."""
        done = None if state is DeliveryState.PENDING else now
        await self.write(
            lambda conn: conn.execute(
                "UPDATE webhook_outbox SET state = ?, attempts = ?, next_attempt = ?,"
                " last_error = ?, done_at = ? WHERE id = ? AND state = 'pending'",
                (state.value, attempts, next_attempt, error[:1000], done, row_id),
            )
        )

    async def outbox_failures(
        self: _Backend, *, webhook_id: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """The deliveries given up, oldest first (of one webhook, or of all)."""
        where = "o.state = 'failed'" + (" AND o.webhook_id = ?" if webhook_id is not None else "")
        params: list[object] = [] if webhook_id is None else [webhook_id]

        def select(conn: Connection) -> list[Delivery]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id"
                f" WHERE {where} ORDER BY o.id LIMIT ?",
                (*params, limit),
            )
            return [_delivery(row) for row in rows]

        return await self.read(select)

    async def outbox_replay(
        self: _Backend,
        *,
        now: float,
        webhook_id: str | None = None,
        delivery_ids: Sequence[str] = (),
    ) -> int:
        """Put failed deliveries back in line (all, one webhook's, or the ones named), with their
        attempts and retry time restarted, committed; returns how many."""
        where, params = _failed_rows(webhook_id, delivery_ids)

        def replay(conn: Connection) -> int:
            cursor = conn.execute(
                "UPDATE webhook_outbox SET state = 'pending', attempts = 0, queued_at = ?,"
                f" next_attempt = ?, done_at = NULL WHERE {where}",
                [now, now, *params],
            )
            return int(cursor.rowcount)

        return await self.write(replay)

    async def outbox_discard(
        self: _Backend, *, webhook_id: str | None = None, delivery_ids: Sequence[str] = ()
    ) -> int:
        """Delete failed deliveries (all, one webhook's, or those named), committed; returns
        how many. An admin's purge: pending and delivered rows are left alone."""
        where, params = _failed_rows(webhook_id, delivery_ids)

        def discard(conn: Connection) -> int:
            cursor = conn.execute(f"DELETE FROM webhook_outbox WHERE {where}", params)
            return int(cursor.rowcount)

        return await self.write(discard)

    async def outbox_purge(self: _Backend, *, delivered_before: float) -> int:
        """Delete the delivered rows recorded before ``delivered_before``, committed; returns
        how many. Pending and failed rows are kept (Rule 5)."""

        def purge(conn: Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM webhook_outbox WHERE state = 'delivered' AND done_at < ?",
                (delivered_before,),
            )
            return int(cursor.rowcount)

        return await self.write(purge)

    async def outbox_counts(self: _Backend) -> dict[str, int]:
        """How many outbox rows are in each state (for health and tests)."""

        def count(conn: Connection) -> dict[str, int]:
            counts = {s.value: 0 for s in DeliveryState}
            for state, n in conn.execute(
                "SELECT state, count(*) FROM webhook_outbox GROUP BY state"
            ):
                counts[state] = int(n)
            return counts

        return await self.read(count)


def event_json(delivery: Delivery) -> dict[str, Any]:
    """The posted JSON object of a delivery, parsed."""
    doc: dict[str, Any] = json.loads(delivery.body)
    return doc


def _failed_rows(webhook_id: str | None, delivery_ids: Sequence[str]) -> tuple[str, list[object]]:
    """The WHERE clause (and its parameters) of the failed deliveries: all, one webhook's, or
    those named."""
    clauses = ["state = 'failed'"]
    params: list[object] = []
    if webhook_id is not None:
        clauses.append("webhook_id = ?")
        params.append(webhook_id)
    if delivery_ids:
        clauses.append(f"delivery_id IN ({', '.join('?' * len(delivery_ids))})")
        params.extend(delivery_ids)
    return " AND ".join(clauses), params
