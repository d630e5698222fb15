"""Tickets as rows: writing one (at most one per chat), reading them back, and the errors a
ticket query raises. Shared by the SQLite and the PostgreSQL store (``?`` placeholders).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Final

from ..model.records import (
    Entry,
    Finish,
    Handoff,
    Rating,
    Ticket,
    TicketKind,
    Visitor,
)
from . import journal, routing_rows
from .contract import Connection
from .writer import StoreError

MAX_PAGE: Final = 1000


class TicketExists(StoreError):
    """A ticket for that chat id is already stored."""

    code = "ticket_exists"


class NotFound(StoreError):
    """No such ticket, department or agent."""

    code = "not_found"


class AlreadyRated(StoreError):
    """The chat was rated before; a rating is given once."""

    code = "already_rated"


TICKET_COLUMNS: Final = (
    "id, chat_id, kind, department, question, visitor_name, visitor_email, visitor_browser,"
    " visitor_os, visitor_location, visitor_id, entries, handoffs, started_at, accepted_at,"
    " ended_at, end_reason, rating, rating_comment, handled, owner, score"
)


def dumps_items(items: Sequence[Entry] | Sequence[Handoff]) -> str:
    return json.dumps(
        [dataclasses.asdict(item) for item in items], separators=(",", ":"), ensure_ascii=False
    )


def insert_ticket(conn: Connection, ticket: Ticket) -> Ticket:
    """Insert a ticket (with its id when it has one) and forget the chat's live rows.

    ``TicketExists`` if the chat has a ticket: the schema's ``UNIQUE(chat_id)`` decides, and the
    conflict is taken without an error, so the transaction around stays usable on both databases.
    """
    v = ticket.visitor
    values = (
        ticket.chat_id,
        ticket.kind.value,
        ticket.department,
        ticket.question,
        v.name,
        v.email,
        v.email.lower(),
        v.browser,
        v.os,
        v.location,
        v.visitor_id,
        dumps_items(sorted(ticket.entries, key=lambda e: e.seq)),
        dumps_items(ticket.handoffs),
        ticket.started_at,
        ticket.accepted_at,
        ticket.ended_at,
        ticket.end_reason.value,
        None if ticket.rating is None else ticket.rating.value,
        ticket.rating_comment,
        int(ticket.handled),
        ticket.owner,
        ticket.score,
    )
    keep_id = ticket.id is not None  # a copy keeps its ids; a new ticket gets the next one
    row = conn.execute(
        f"INSERT INTO tickets ({'id, ' if keep_id else ''}chat_id, kind, department, question,"
        " visitor_name, visitor_email, visitor_email_lower, visitor_browser, visitor_os,"
        " visitor_location, visitor_id, entries, handoffs, started_at, accepted_at, ended_at,"
        " end_reason, rating, rating_comment, handled, owner, score)"
        f" VALUES ({', '.join('?' * (len(values) + keep_id))})"
        " ON CONFLICT (chat_id) DO NOTHING RETURNING id",
        (ticket.id, *values) if keep_id else values,
    ).fetchone()
    if row is None:
        raise TicketExists(f"a ticket for chat {ticket.chat_id!r} is already stored")
    ticket_id = int(row[0])
    conn.executemany(
        "INSERT INTO ticket_agents (ticket_id, position, agent) VALUES (?, ?, ?)",
        [(ticket_id, position, agent) for position, agent in enumerate(ticket.agents)],
    )
    routing_rows.insert_tags(conn, ticket_id, ticket.tags)
    journal.forget(conn, ticket.chat_id)  # the chat is ticketed now, no longer live
    return dataclasses.replace(ticket, id=ticket_id)


def ticket_from_row(
    row: Sequence[Any], agents: tuple[str, ...], tags: tuple[str, ...] = ()
) -> Ticket:
    (
        ticket_id,
        chat_id,
        kind,
        department,
        question,
        name,
        email,
        browser,
        os_,
        location,
        visitor_id,
        entries,
        handoffs,
        started_at,
        accepted_at,
        ended_at,
        end_reason,
        rating,
        rating_comment,
        handled,
        owner,
        score,
    ) = row
    finish = Finish(
        kind=TicketKind(kind),
        reason=end_reason,
        owner=owner,
        agents=agents,
        handoffs=tuple(Handoff(**item) for item in json.loads(handoffs)),
        accepted_at=accepted_at,
    )
    ticket = finish.ticket(
        chat_id=chat_id,
        department=department,
        question=question,
        visitor=Visitor(
            name=name,
            email=email,
            browser=browser,
            os=os_,
            location=location,
            visitor_id=visitor_id,
        ),
        entries=(Entry(**item) for item in json.loads(entries)),
        started_at=started_at,
        ended_at=ended_at,
    )
    stored: Ticket = dataclasses.replace(
        ticket,
        id=ticket_id,
        rating=None if rating is None else Rating(rating),
        rating_comment=rating_comment,
        handled=bool(handled),
        tags=tags,
        score=None if score is None else int(score),
    )
    return stored


def select_tickets(conn: Connection, where: str, params: Sequence[object]) -> list[Ticket]:
    """Tickets matching ``where`` (which may end in ORDER BY / LIMIT), with their agents."""
    rows = conn.execute(f"SELECT {TICKET_COLUMNS} FROM tickets {where}", params).fetchall()
    if not rows:
        return []
    ids = [row[0] for row in rows]
    agents: dict[int, list[str]] = {ticket_id: [] for ticket_id in ids}
    marks = ", ".join("?" * len(ids))
    for ticket_id, agent in conn.execute(
        f"SELECT ticket_id, agent FROM ticket_agents WHERE ticket_id IN ({marks})"
        " ORDER BY ticket_id, position",
        ids,
    ):
        agents[ticket_id].append(agent)
    tags = routing_rows.select_tags(conn, ids)
    return [ticket_from_row(row, tuple(agents[row[0]]), tags.get(row[0], ())) for row in rows]


def one_ticket(conn: Connection, column: str, value: object) -> Ticket:
    found = select_tickets(conn, f"WHERE {column} = ?", (value,))
    if not found:
        raise NotFound(f"no ticket with {column} {value!r}")
    return found[0]


def check_page(limit: int, offset: int) -> None:
    if not 0 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 0 and {MAX_PAGE}, not {limit}")
    if offset < 0:
        raise ValueError(f"offset must not be negative, not {offset}")


def period(since: float | None, until: float | None) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("ended_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("ended_at < ?")
        params.append(until)
    return clauses, params


def check_new(ticket: Ticket) -> None:
    if ticket.id is not None:
        raise ValueError(f"ticket {ticket.id} was stored already; the store assigns ids")
