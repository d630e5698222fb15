"""The store contract's queries, written once for SQLite and PostgreSQL.

``StoreQueries`` holds the tickets and the journal of live chats, and mixes in the directory
(``engine.store.directory``), the audit log (``engine.store.audit``) and the webhook outbox
(``engine.store.outbox``). Its SQL uses ``?`` placeholders and what both databases understand, and
runs through the backend's ``write``, ``read`` and ``submit`` (``engine.store.writer``);
``SqliteStore`` and ``PostgresStore`` add only the machinery under it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from ..model.desk_events import rating_event, ticket_events
from ..model.records import Entry, Rating, Ticket, TicketKind
from . import journal, seats
from .audit import AuditQueries
from .contract import Connection, RatingReport
from .directory import DirectoryQueries
from .lines import LineQueue
from .outbox import OutboxQueries, enqueue
from .tickets import (
    AlreadyRated,
    TicketExists,
    check_new,
    check_page,
    insert_ticket,
    one_ticket,
    period,
    select_tickets,
)

__all__ = ["StoreQueries", "store_ticket"]

T = TypeVar("T")


def store_ticket(conn: Connection, ticket: Ticket) -> Ticket:
    """Insert a new ticket and queue the webhook events it reports, in one transaction."""
    stored = insert_ticket(conn, ticket)
    enqueue(conn, ticket_events(stored))
    return stored


def _write_router_batch(
    conn: Connection, batch: journal.JournalBatch
) -> tuple[tuple[str, str], ...] | None:
    refused = journal.write_batch(conn, batch)
    enqueue(conn, batch.events)  # committed with the decisions they report, or not at all
    for ticket in batch.tickets:
        try:
            store_ticket(conn, ticket)
        except TicketExists:
            pass  # the chat's ticket was stored after all; the failed one is not needed
    return refused or None


class _Backend(Protocol):
    """What ``StoreQueries`` needs from the machinery under it."""

    line_queue: LineQueue

    def write(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...

    def read(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...

    def submit(
        self, fn: Callable[[Connection], T], on_done: Callable[[T | BaseException], None]
    ) -> None: ...


class StoreQueries(DirectoryQueries, AuditQueries, OutboxQueries):
    """The contract's methods (``engine.store.contract.Store``), over a backend's machinery.

    Mixed into ``SqliteStore`` and ``PostgresStore``, each of which provides ``write``, ``read``,
    ``submit`` and a ``line_queue``. Every ``async`` write returns only after its COMMIT.
    """

    # -- tickets ------------------------------------------------------------------------------

    async def save_ticket(self: _Backend, ticket: Ticket) -> Ticket:
        """Store a new ticket and return it with its id; ``TicketExists`` if the chat has one."""
        check_new(ticket)
        return await self.write(lambda conn: store_ticket(conn, ticket))

    async def ticket(self: _Backend, ticket_id: int) -> Ticket:
        """The ticket with that id; ``NotFound`` if there is none."""
        return await self.read(lambda conn: one_ticket(conn, "id", ticket_id))

    async def ticket_for_chat(self: _Backend, chat_id: str) -> Ticket:
        """The ticket of that chat; ``NotFound`` if there is none."""
        return await self.read(lambda conn: one_ticket(conn, "chat_id", chat_id))

    async def tickets(
        self: _Backend,
        *,
        kind: TicketKind | None = None,
        department: str | None = None,
        agent: str | None = None,
        visitor_email: str | None = None,
        visitor_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        handled: bool | None = None,
        limit: int = 20,
        offset: int = 0,
        tag: str | None = None,
    ) -> list[Ticket]:
        """One page of the tickets that match every filter given, newest (by ``ended_at``) first.

        ``agent`` matches anyone who handled the chat; ``visitor_email`` ignores case; the period
        is ``since <= ended_at < until``. ``limit`` is at most ``MAX_PAGE``.
        """
        check_page(limit, offset)
        clauses, params = period(since, until)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind.value)
        if department is not None:
            clauses.append("department = ?")
            params.append(department)
        if agent is not None:
            clauses.append("id IN (SELECT ticket_id FROM ticket_agents WHERE agent = ?)")
            params.append(agent)
        if visitor_email is not None:
            clauses.append("visitor_email_lower = ?")
            params.append(visitor_email.lower())
        if visitor_id is not None:
            clauses.append("visitor_id = ?")
            params.append(visitor_id)
        if handled is not None:
            clauses.append("handled = ?")
            params.append(int(handled))
        if tag is not None:
            clauses.append("id IN (SELECT ticket_id FROM ticket_tags WHERE tag = ?)")
            params.append(tag)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        where += " ORDER BY ended_at DESC, id DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        return await self.read(lambda conn: select_tickets(conn, where, params))

    async def mark_handled(self: _Backend, ticket_id: int) -> Ticket:
        """Mark a ticket as followed up (idempotent) and return it; ``NotFound`` if none."""

        def mark(conn: Connection) -> Ticket:
            conn.execute("UPDATE tickets SET handled = 1 WHERE id = ?", (ticket_id,))
            return one_ticket(conn, "id", ticket_id)

        return await self.write(mark)

    async def rate(
        self: _Backend,
        chat_id: str,
        rating: Rating,
        comment: str = "",
        score: int | None = None,
        *,
        at: float | None = None,
    ) -> Ticket:
        """Record the visitor's rating (and score) once; then ``AlreadyRated``. ``NotFound`` if
        no ticket.

        Its ``rating.given`` webhook event (at ``at``, default now) is queued in the same write.
        """
        when = time.time() if at is None else at

        def rate(conn: Connection) -> Ticket:
            cursor = conn.execute(
                "UPDATE tickets SET rating = ?, rating_comment = ?, score = ?"
                " WHERE chat_id = ? AND rating IS NULL",
                (rating.value, comment, score, chat_id),
            )
            ticket = one_ticket(conn, "chat_id", chat_id)
            if cursor.rowcount == 0:
                raise AlreadyRated(f"chat {chat_id!r} was already rated")
            enqueue(conn, (rating_event(ticket, when),))
            return ticket

        return await self.write(rate)

    async def rating_report(
        self: _Backend, *, since: float | None = None, until: float | None = None
    ) -> RatingReport:
        """Counts of good / neutral / bad ratings per owning agent and per department.

        Only rated tickets that ended in ``since <= ended_at < until`` count; a ticket counts for
        its ``owner`` (if any) and for its department.
        """
        clauses, params = period(since, until)
        where = " AND ".join(["rating IS NOT NULL", *clauses])

        def report(conn: Connection) -> RatingReport:
            result: RatingReport = {"agents": {}, "departments": {}}
            for key, column in (("agents", "owner"), ("departments", "department")):
                for name, rating, count, scored, score_sum in conn.execute(
                    f"SELECT {column}, rating, count(*), count(score), coalesce(sum(score), 0)"
                    f" FROM tickets WHERE {where} AND {column} != '' GROUP BY {column}, rating",
                    params,
                ):
                    counts = result[key].setdefault(
                        name, {**{r.value: 0 for r in Rating}, "scored": 0, "score_sum": 0}
                    )
                    counts[rating] = int(count)
                    counts["scored"] += int(scored)
                    counts["score_sum"] += int(score_sum)
            return result

        return await self.read(report)

    # -- the journal of live chats ------------------------------------------------------------

    async def append_entries(self: _Backend, chat_id: str, entries: Sequence[Entry]) -> None:
        """Store a live chat's new lines; returns once committed (see ``LineQueue``)."""
        rows = [(chat_id, e.seq, e.at, e.kind, e.author, e.text, e.client_msg_id) for e in entries]
        await self.line_queue.append(self.submit, rows)

    def submit_journal(
        self: _Backend, batch: journal.JournalBatch, on_done: Callable[[object], None]
    ) -> None:
        """Hand the router's batch over without waiting; ``on_done`` gets None, the refused seats
        of offers, or the error."""
        self.submit(lambda conn: _write_router_batch(conn, batch), on_done)

    def submit_claim(
        self: _Backend, chat_id: str, agent_id: str, on_done: Callable[[object], None]
    ) -> None:
        """Hand a claim of a seat over without waiting (``seats.claim``); ``on_done`` gets None
        or the error (``over_capacity`` when the agent is full)."""
        self.submit(lambda conn: seats.claim(conn, chat_id, agent_id), on_done)

    async def live_state(self: _Backend) -> journal.LiveState:
        """Every live chat the journal holds, with its lines, and the running agent graces."""
        return await self.read(journal.load)
