"""Ticket requests shared by agents and admins: list views, one ticket, marking missed chats.

Theory of operation
-------------------
Agents and admins read the same tickets with the same requests; what differs is the *scope*. An
admin's scope is every department (``scope=None``); an agent's is its own departments, and a
ticket outside it does not exist for the agent (``not_found``, never a hint that it exists).

The store filters by one department at a time. A view over several departments (an agent of
``sales`` and ``support`` asking for its missed chats) is answered by reading the first
``offset + limit`` tickets of each department, newest first, and merging them: the merge of
sorted lists is sorted, so the requested page is exact. Store pages are read in chunks of at most
the store's page limit.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from engine import MAX_PAGE, Engine, EngineError, Entry, Ticket, TicketKind, Visitor

from ...wire.frames import Request
from ...wire.records import Fields, NameOf, fit, ticket_record

__all__ = ["TicketDesk"]

_DEFAULT_LIMIT: Final = 50


def _newest_first(ticket: Ticket) -> tuple[float, int]:
    return (-ticket.ended_at, -(ticket.id or 0))


class TicketDesk:
    """Ticket requests for one connection, within a scope of departments."""

    def __init__(self, engine: Engine, name_of: NameOf) -> None:
        self._engine = engine
        self._name_of = name_of

    async def search(
        self, request: Request, *, agent_id: str | None, scope: Collection[str] | None
    ) -> Fields:
        """The ``tickets`` request (SPEC.md section 6.3)."""
        view = request.require("view", str)
        filters: dict[str, Any] = {
            "since": request.get("since", float),
            "until": request.get("until", float),
        }
        if view == "missed":
            filters["kind"] = TicketKind.MISSED
        elif view == "agent":
            agent = request.get("agent", str) or agent_id
            if agent is None:
                raise EngineError("missing_field", "an admin's agent view needs 'agent'")
            filters["agent"] = agent
        elif view == "visitor":
            filters["visitor_email"] = request.require("visitor_email", str)
        department = request.get("department", str)
        if department is not None:
            if scope is not None and department not in scope:
                raise EngineError("forbidden", f"{department!r} is not one of your departments")
            departments: list[str | None] = [department]
        elif scope is not None:
            departments = [*sorted(scope)]
        else:
            departments = [None]
        limit = request.get("limit", int, _DEFAULT_LIMIT)
        offset = request.get("offset", int, 0)
        found = await self._query(filters, departments, offset, limit)
        return {"tickets": [ticket_record(t, self._name_of, summary=True) for t in found]}

    async def one(self, request: Request, *, scope: Collection[str] | None) -> Fields:
        """The ``ticket`` request: one ticket with its transcript, cut to fit a frame."""
        ticket = await self._find(request.require("ticket_id", int), scope)

        def build(entries: Sequence[Entry]) -> Fields:
            return ticket_record(dataclasses.replace(ticket, entries=tuple(entries)), self._name_of)

        return {"ticket": fit(ticket.entries, build)}

    async def mark_handled(self, request: Request, *, scope: Collection[str] | None) -> Fields:
        """The ``mark_handled`` request: a missed chat was followed up."""
        ticket = await self._find(request.require("ticket_id", int), scope)
        assert ticket.id is not None
        handled = await self._engine.mark_handled(ticket.id)
        return {"ticket_id": handled.id, "handled": handled.handled}

    async def previous(
        self, visitor: Visitor, scope: Collection[str] | None, chat_id: str, count: int
    ) -> list[Fields]:
        """Summaries of the visitor's earlier tickets (same visitor id or email), newest first."""
        departments: list[str | None] = [None] if scope is None else [*sorted(scope)]
        found: dict[int, Ticket] = {}
        for key, value in (("visitor_id", visitor.visitor_id), ("visitor_email", visitor.email)):
            if value:
                for ticket in await self._query({key: value}, departments, 0, count + 1):
                    if ticket.id is not None and ticket.chat_id != chat_id:
                        found[ticket.id] = ticket
        newest = sorted(found.values(), key=_newest_first)[:count]
        return [ticket_record(t, self._name_of, summary=True) for t in newest]

    async def _find(self, ticket_id: int, scope: Collection[str] | None) -> Ticket:
        ticket = await self._engine.ticket(ticket_id)
        if scope is not None and ticket.department not in scope:
            raise EngineError("not_found", f"no ticket {ticket_id}")
        return ticket

    async def _query(
        self,
        filters: Mapping[str, Any],
        departments: Sequence[str | None],
        offset: int,
        limit: int,
    ) -> list[Ticket]:
        """One page of tickets matching ``filters`` in any of ``departments``, newest first."""
        if len(departments) == 1:
            return await self._read(filters, departments[0], offset, limit)
        heads = [await self._read(filters, d, 0, offset + limit) for d in departments]
        merged = list(heapq.merge(*heads, key=_newest_first))
        return merged[offset : offset + limit]

    async def _read(
        self, filters: Mapping[str, Any], department: str | None, offset: int, limit: int
    ) -> list[Ticket]:
        """``limit`` tickets from ``offset`` on, read in store pages of at most MAX_PAGE."""
        out: list[Ticket] = []
        while len(out) < limit:
            want = min(MAX_PAGE, limit - len(out))
            page = await self._engine.tickets(
                **filters, department=department, limit=want, offset=offset + len(out)
            )
            out.extend(page)
            if len(page) < want:
                break
        return out
