"""An agent's connection: presence, offers, several chats at once, handoffs, endings, tickets.

Theory of operation
-------------------
The hello's token names the agent; the connection then holds one engine ``AgentConnection`` for
its whole life (an agent may hold several connections; the engine counts the agent as gone when
the last one closes, and the agent's disconnect grace starts). The handle's events (offers, the
lines of the agent's chats, handoff results, status changes) go straight to the connection's
queue through a sink (``Connection.sink``).

Every request maps to one engine call, listed in the table ``_handlers``. The engine is the one
that refuses what the agent may not do: a chat the agent is not in (``not_in_chat``), an offer
made to another agent (``not_your_offer``), a chat it does not own (``not_owner``); the gateway
passes those codes through unchanged. Replies that describe a chat (``accept``,
``visitor_panel``) combine the engine's picture of the chat (owner, members, transcript) with
the facts the gateway recorded when the visitor opened it. Ticket requests are shared with admins
(``tickets.py``) and are limited to the agent's own departments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from engine import (
    Agent,
    AgentConnection,
    ChatSummary,
    EngineError,
    Entry,
    Event,
    Offer,
    OfferWithdrawn,
)

from ...wire.frames import Request, Role
from ...wire.records import (
    Fields,
    agent_record,
    availability_record,
    canned_suggestion_record,
    entry_record,
    fit,
    ticket_record,
    visitor_record,
)
from ..auth import authenticate
from .departments import departments_reply
from .tickets import TicketDesk

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["AgentRole", "open_agent"]

_PANEL_TICKETS = 10
_OFFERS_KEPT = 256  # kinds of offers remembered for accept replies; the oldest are forgotten


async def open_agent(conn: Connection, request: Request) -> tuple[AgentRole, Fields]:
    """The hello of an agent: check its token, connect it to the engine, describe it."""
    engine = conn.engine
    agent_id = await authenticate(engine.store, Role.AGENT, request.require("token", str))
    if agent_id is None:
        raise EngineError("unauthorized", "that token is unknown or was revoked")
    try:
        handle = await conn.stack.enter_async_context(engine.connect_agent(agent_id))
    except EngineError:
        raise EngineError("unauthorized", "that token's agent no longer exists") from None
    conn.registry.add_agent_connection(agent_id, conn)
    conn.stack.callback(conn.registry.remove_agent_connection, agent_id, conn)
    conn.log = conn.log.bind(agent_id=agent_id)
    role = AgentRole(conn, agent_id, handle)
    agent = await role.agent()
    view = await engine.agent_view(agent_id)
    chats = list(view.chats) if view is not None else []
    return role, {"agent": agent_record(agent, view.load if view else 0), "chats": chats}


class AgentRole:
    """The requests of one agent connection."""

    def __init__(self, conn: Connection, agent_id: str, handle: AgentConnection) -> None:
        self._conn = conn
        self._engine = conn.engine
        self._id = agent_id
        self._handle = handle
        self._offers: dict[str, str] = {}  # open offers seen: offer id -> kind
        self._desk = TicketDesk(conn.engine, conn.gateway.name_of)
        self._handlers = {
            "send": self._send,
            "typing": self._typing,
            "set_status": self._set_status,
            "set_ringtone": self._set_ringtone,
            "accept": self._accept,
            "decline": self._decline,
            "transfer": self._transfer,
            "cancel_transfer": self._cancel_transfer,
            "invite": self._invite,
            "cancel_invite": self._cancel_invite,
            "leave_chat": self._leave_chat,
            "end_chat": self._end_chat,
            "cancel_end": self._cancel_end,
            "tag": self._tag,
            "available_agents": self._available_agents,
            "visitor_panel": self._visitor_panel,
            "canned_suggest": self._canned_suggest,
            "canned_pick": self._canned_pick,
            "tickets": self._tickets,
            "ticket": self._ticket,
            "mark_handled": self._mark_handled,
            "departments": self._departments_list,
        }

    def start(self) -> None:
        self._handle.attach(self._conn.sink(self._see))

    posts = frozenset({"send"})

    async def handle(self, request: Request) -> Fields:
        return await self._handlers[request.type](request)

    async def post(
        self, request: Request, then: Callable[[int | EngineError], None]
    ) -> Callable[[], None]:
        """A pipelined ``send``: the session answers through ``then``."""
        return await self._handle.post(
            request.require("chat_id", str),
            request.require("text", str),
            client_msg_id=request.get("client_msg_id", str, ""),
            then=then,
        )

    def _see(self, event: Event) -> None:
        if isinstance(event, Offer):
            self._offers[event.offer_id] = event.kind
            if len(self._offers) > _OFFERS_KEPT:  # answered on another connection
                del self._offers[next(iter(self._offers))]
        elif isinstance(event, OfferWithdrawn):
            self._offers.pop(event.offer_id, None)

    async def agent(self) -> Agent:
        """The agent's stored record: its departments, capacity, status and ringtone now."""
        for agent in await self._engine.agents():
            if agent.id == self._id:
                return agent
        raise EngineError("not_found", f"no agent {self._id!r}")

    async def _departments(self) -> frozenset[str]:
        record = self._engine.agent_record(self._id)
        if record is None:
            raise EngineError("not_found", "this agent was removed")
        return frozenset(record.departments)

    # -- presence ----------------------------------------------------------------------------------

    async def _set_status(self, request: Request) -> Fields:
        status, ringtone = await self._handle.set_status(request.require("status", str))
        return {"status": status.value, "ringtone": ringtone}

    async def _set_ringtone(self, request: Request) -> Fields:
        status, ringtone = await self._handle.set_ringtone(request.require("on", bool))
        return {"status": status.value, "ringtone": ringtone}

    # -- offers ------------------------------------------------------------------------------------

    async def _accept(self, request: Request) -> Fields:
        offer_id = request.require("offer_id", str)
        chat_id = await self._handle.accept(offer_id)
        kind = self._offers.pop(offer_id, "chat")
        self._conn.log.info("offer_accepted", chat_id=chat_id, kind=kind)
        return {"kind": kind, **await self._chat(chat_id)}

    async def _decline(self, request: Request) -> Fields:
        offer_id = request.require("offer_id", str)
        await self._handle.decline(offer_id)
        self._offers.pop(offer_id, None)
        return {}

    async def _chat(
        self, chat_id: str, *, history: tuple[Entry, ...] | None = None, extra: Fields | None = None
    ) -> Fields:
        """A Chat record (SPEC.md section 5) for a chat this agent is in (plus ``extra``)."""
        if history is None:
            history = await self._handle.history(chat_id)
        view = await self._engine.chat_view(chat_id)
        facts = self._conn.registry.chat(chat_id)
        if facts is None:  # a chat opened by another gateway or by embedding code
            panel = await self._handle.visitor_panel(chat_id, limit=1)
            question, visitor, started_at = panel.question, panel.visitor, panel.started_at
        else:
            question, visitor, started_at = facts.question, facts.visitor, facts.started_at
        name_of = self._conn.gateway.name_of

        def build(entries: Sequence[Entry]) -> Fields:
            return {
                "chat_id": chat_id,
                "department": view.department if view else (facts.department if facts else ""),
                "question": question,
                "visitor": visitor_record(visitor),
                "started_at": started_at,
                "owner": view.owner if view else "",
                "agents": list(view.members) if view else [],
                "history": [entry_record(e, visitor.name, name_of) for e in entries],
                **(extra or {}),
            }

        return fit(history, build)

    # -- conversation ------------------------------------------------------------------------------

    async def _send(self, request: Request) -> Fields:
        seq = await self._handle.send(
            request.require("chat_id", str),
            request.require("text", str),
            client_msg_id=request.get("client_msg_id", str, ""),
        )
        return {"seq": seq, "at": self._engine.now()}

    async def _typing(self, request: Request) -> Fields:
        chat_id = request.require("chat_id", str)
        await self._handle.typing(chat_id, request.require("on", bool))
        return {}

    # -- handoffs and endings ----------------------------------------------------------------------

    async def _transfer(self, request: Request) -> Fields:
        offer_id = await self._handle.transfer(
            request.require("chat_id", str),
            to_agent=request.get("to_agent", str, ""),
            to_department=request.get("to_department", str, ""),
            note=request.get("note", str, ""),
        )
        return {"offer_id": offer_id}

    async def _invite(self, request: Request) -> Fields:
        offer_id = await self._handle.invite(
            request.require("chat_id", str),
            to_agent=request.require("to_agent", str),
            note=request.get("note", str, ""),
        )
        return {"offer_id": offer_id}

    async def _cancel_transfer(self, request: Request) -> Fields:
        await self._handle.cancel_handoff(request.require("chat_id", str), kind="transfer")
        return {}

    async def _cancel_invite(self, request: Request) -> Fields:
        await self._handle.cancel_handoff(request.require("chat_id", str), kind="invite")
        return {}

    async def _leave_chat(self, request: Request) -> Fields:
        await self._handle.leave_chat(request.require("chat_id", str))
        return {}

    async def _end_chat(self, request: Request) -> Fields:
        delay = request.get("delay", float, 0.0)
        ticket_id = await self._handle.end_chat(request.require("chat_id", str), delay=delay)
        if delay > 0:
            return {"ending_at": self._engine.now() + delay}
        return {} if not isinstance(ticket_id, int) else {"ticket_id": ticket_id}

    async def _cancel_end(self, request: Request) -> Fields:
        await self._handle.cancel_end(request.require("chat_id", str))
        return {}

    async def _tag(self, request: Request) -> Fields:
        tags = await self._handle.tag(request.require("chat_id", str), request.strings("tags"))
        return {"tags": list(tags)}

    async def _available_agents(self, request: Request) -> Fields:
        agents = await self._handle.available_agents(request.get("department", str, ""))
        return {"agents": [availability_record(a) for a in agents]}

    # -- the agent's workspace ---------------------------------------------------------------------

    async def _visitor_panel(self, request: Request) -> Fields:
        chat_id = request.require("chat_id", str)
        panel = await self._handle.visitor_panel(chat_id, limit=_PANEL_TICKETS)
        try:
            history = await self._handle.history(chat_id)
        except EngineError as exc:  # offered, not yet in the chat: no transcript to show
            if exc.code != "not_in_chat":
                raise
            history = ()
        name_of = self._conn.gateway.name_of
        return await self._chat(
            chat_id,
            history=history,
            extra={
                "previous_tickets": [
                    ticket_record(t, name_of, summary=True) for t in panel.recent_tickets
                ],
                "recent_chats": [_summary(c) for c in panel.recent_chats],
            },
        )

    async def _canned_suggest(self, request: Request) -> Fields:
        draft = request.require("draft", str) or "#"  # an empty draft lists the most used
        found = await self._handle.canned_suggest(draft, limit=request.get("limit", int, 5))
        names = {c.id: c.name for c in self._engine.canned.categories()} if found else {}
        return {
            "suggestions": [canned_suggestion_record(m, names.get(m.category, "")) for m in found]
        }

    async def _departments_list(self, request: Request) -> Fields:
        return await departments_reply(self._conn)

    async def _canned_pick(self, request: Request) -> Fields:
        message_id = request.require("message_id", str)
        text = await self._handle.canned_pick(message_id, request.require("chat_id", str))
        return {"message_id": message_id, "text": text}

    # -- tickets -----------------------------------------------------------------------------------

    async def _tickets(self, request: Request) -> Fields:
        return await self._desk.search(request, agent_id=self._id, scope=await self._departments())

    async def _ticket(self, request: Request) -> Fields:
        return await self._desk.one(request, scope=await self._departments())

    async def _mark_handled(self, request: Request) -> Fields:
        return await self._desk.mark_handled(request, scope=await self._departments())


def _summary(chat: ChatSummary) -> Fields:
    """One of the visitor's chats, live or ended, as the visitor panel lists it."""
    fields: Fields = {
        "chat_id": chat.chat_id,
        "department": chat.department,
        "question": chat.question,
        "started_at": chat.started_at,
        "state": chat.state,
        "agents": list(chat.agents),
    }
    if chat.ticket_id is not None:
        fields["ticket_id"] = chat.ticket_id
    return fields
