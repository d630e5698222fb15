"""The router: the single writer of chat ownership and agent capacity.

Theory of operation:

Rule 1. Every decision about who holds a chat (offer, accept, decline, transfer, invite, requeue,
        end) is made here, one message at a time, against the router's own records. There is no
        read-check-assign race: two agents cannot both win a chat, and an agent's load (chats it is
        in plus offers it holds) never exceeds its capacity, because pending offers reserve a slot.
Rule 2. The router never awaits anything but its own mailbox. It tells sessions with `send_nowait`,
        pushes events into outboxes (which never block), answers asks on size-1 reply channels, and
        hands store writes over with a callback. A full session mailbox fails that one tell; for
        the one tell that must arrive (Finish) the router retries on a timer.
Rule 3. Timers are data: one deadline heap, and the loop waits on the mailbox under
        `trio.move_on_at(earliest deadline)`. A fired timer is handled like a message.
Rule 4. Work that follows from freed capacity (offering the head of a queue) is collected while a
        message is handled and done once at the end, so handlers never recurse into each other.

The per-department waiting queue lives here too: taking a chat off the queue and reserving an
agent's capacity for it must be one decision.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from . import _messages as m
from ._chatstate import LIVE, WAITING, ChatState, check
from ._errors import EngineError
from ._events import ChatAssigned, ChatRemoved, HandoffResult, Offer, OfferWithdrawn, StatusChanged
from ._outbox import Outbox
from ._records import (
    AgentStatus,
    Department,
    EndReason,
    Handoff,
    RoutingMode,
    Ticket,
    TicketKind,
    Visitor,
)
from ._views import AgentView, Availability, ChatSummary, ChatView, RouterView

log = structlog.get_logger("helpline.router")

_RETRY = 0.05  # seconds before a tell that found a full mailbox is tried again


@dataclass(slots=True, eq=False)
class _Chat:
    id: str
    department: str
    question: str
    visitor: Visitor
    session: trio.MemorySendChannel[m.ToSession]
    started_at: float
    state: ChatState = ChatState.REQUESTED
    owner: str = ""
    members: list[str] = field(default_factory=list)
    ever: list[str] = field(default_factory=list)
    offer: str = ""
    handoff: str = ""
    tried: set[str] = field(default_factory=set)
    handoffs: list[Handoff] = field(default_factory=list)
    accepted_at: float | None = None
    told_position: int = 0
    pending: m.Finish | None = None
    waiters: list[m.Reply] = field(default_factory=list)  # asks answered once the ticket is stored


@dataclass(slots=True, eq=False)
class _Offer:
    id: str
    chat_id: str
    kind: str  # "chat", "transfer", "invite"
    agents: set[str]  # still open to these
    offered: frozenset[str] = frozenset()  # everyone it was made to
    from_agent: str = ""
    to_department: str = ""
    target: str = ""
    note: str = ""


@dataclass(slots=True, eq=False)
class _Agent:
    id: str
    name: str
    departments: tuple[str, ...]
    capacity: int
    outbox: Outbox
    status: AgentStatus = AgentStatus.OFFLINE
    ringtone: bool = True
    connected: bool = False
    chats: set[str] = field(default_factory=set)
    offers: set[str] = field(default_factory=set)
    idle_since: float = 0.0

    @property
    def load(self) -> int:
        return len(self.chats) + len(self.offers)

    @property
    def available(self) -> bool:
        return self.status is AgentStatus.ONLINE and self.connected

    def can_take(self) -> bool:
        return self.available and self.load < self.capacity


@dataclass(slots=True, eq=False)
class _Dept:
    config: Department
    queue: deque[str] = field(default_factory=deque)


class Router:
    """The router actor. Build it, then run `await router.run()` in the engine's nursery."""

    def __init__(
        self,
        *,
        inbox: trio.MemoryReceiveChannel[m.ToRouter],
        spawn_session: Callable[[_Chat, Outbox], trio.MemorySendChannel[m.ToSession]],
        store: Any,
        wall: Callable[[], float],
        handoff_timeout: float,
        visitor_grace: float,
        agent_grace: float,
    ) -> None:
        from ._timers import Timers

        self._inbox = inbox
        self._spawn_session = spawn_session
        self._store = store
        self._wall = wall
        self._handoff_timeout = handoff_timeout
        self._visitor_grace = visitor_grace
        self._agent_grace = agent_grace
        self._timers = Timers()
        self._chats: dict[str, _Chat] = {}
        self._offers: dict[str, _Offer] = {}
        # offer id -> (why it closed, who it was made to), for clear refusals of late answers
        self._closed_offers: OrderedDict[str, tuple[str, frozenset[str]]] = OrderedDict()
        self._agents: dict[str, _Agent] = {}
        self._depts: dict[str, _Dept] = {}
        self._dirty: set[str] = set()  # departments whose queue may now move
        self._stopping: m.Reply | None = None
        self._stopped = False

    # --- setup (before run) ---------------------------------------------------------------------

    def load(self, departments: Iterable[Department], agents: Iterable[m.AgentChanged]) -> None:
        for d in departments:
            self._depts[d.id] = _Dept(config=d)
        for a in agents:
            self._agent_changed(a)

    def set_presence_now(self, agent_id: str, status: AgentStatus, ringtone: bool) -> None:
        a = self._agents[agent_id]
        a.status, a.ringtone = status, ringtone

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        handlers = self._handlers()
        inbox = self._inbox
        timers = self._timers
        while not self._stopped:
            msg: m.ToRouter | None = None
            with trio.move_on_at(timers.next_deadline()):
                msg = await inbox.receive()
            if msg is not None:
                handlers[type(msg)](msg)
            for key in timers.pop_due(trio.current_time()):
                self._fire(key)
            if self._dirty:
                self._dispatch_dirty()

    def _handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            m.OpenChat: self._open_chat,
            m.SetPresence: self._set_presence,
            m.Connected: self._connected,
            m.Disconnected: self._disconnected,
            m.Accept: self._accept,
            m.Decline: self._decline,
            m.StartHandoff: self._start_handoff,
            m.CancelHandoff: self._cancel_handoff,
            m.EndChat: self._end_chat,
            m.CancelEnd: self._cancel_end,
            m.LeaveChat: self._leave_chat,
            m.VisitorGone: self._visitor_gone,
            m.VisitorBack: self._visitor_back,
            m.AvailableAgents: self._available_agents,
            m.ChatInfo: self._chat_info,
            m.DepartmentChanged: self._department_changed,
            m.AgentChanged: self._agent_changed,
            m.SessionClosed: self._session_closed,
            m.ActorDown: self._actor_down,
            m.Inspect: self._inspect,
            m.Shutdown: self._shutdown,
        }

    def _fire(self, key: Any) -> None:
        what, ident = key
        if what == "offer":
            offer = self._offers.get(ident)
            if offer is not None:
                self._offer_lapsed(offer, set(offer.agents), "expired")
        elif what == "queue":
            chat = self._chats.get(ident)
            if chat is not None and chat.state is ChatState.QUEUED:
                self._finish(chat, self._kind(chat), EndReason.QUEUE_TIMEOUT)
        elif what == "end":
            chat = self._chats.get(ident)
            if chat is not None and chat.state is ChatState.ENDING:
                self._finish(chat, TicketKind.TRANSCRIPT, EndReason.AGENT_ENDED)
        elif what == "visitor":
            chat = self._chats.get(ident)
            if chat is not None and chat.state is not ChatState.CLOSING:
                self._finish(chat, self._kind(chat), EndReason.VISITOR_LEFT)
        elif what == "agent":
            agent = self._agents.get(ident)
            if agent is not None and not agent.connected:
                self._release_agent(agent, "disconnected")
        elif what == "finish":
            chat = self._chats.get(ident)
            if chat is not None and chat.pending is not None:
                self._tell_finish(chat, chat.pending)

    # --- visitors -------------------------------------------------------------------------------

    def _open_chat(self, msg: m.OpenChat) -> None:
        if self._stopping is not None:
            m.answer(msg.reply, EngineError("shutting_down", "the server is stopping; try later"))
            return
        dept = self._depts.get(msg.department)
        if dept is None:
            m.answer(msg.reply, EngineError("not_found", f"no department {msg.department!r}"))
            return
        chat_id = secrets.token_hex(8)
        chat = _Chat(
            id=chat_id,
            department=dept.config.id,
            question=msg.question,
            visitor=msg.visitor,
            session=None,  # type: ignore[arg-type]  # set just below
            started_at=self._wall(),
        )
        chat.session = self._spawn_session(chat, msg.outbox)
        self._chats[chat_id] = chat
        m.answer(msg.reply, (chat_id, chat.session))
        log.info("chat_requested", chat_id=chat_id, department=chat.department)
        self._route(chat)

    def _route(
        self, chat: _Chat, *, front: bool = False, exhausted: EndReason = EndReason.ALL_DECLINED
    ) -> None:
        """Offer a waiting chat, queue it, or turn it into a missed chat, as its department allows.

        `front` puts a chat that was already waiting back at the head; `exhausted` is the reason
        given when every online agent has already been tried for this chat.
        """
        dept = self._depts[chat.department]
        if not dept.config.chat_enabled:
            self._finish(chat, self._kind(chat), EndReason.CHAT_OFF)
            return
        online = [a for a in self._members_of(dept.config.id) if a.available]
        if not online:
            self._finish(chat, self._kind(chat), EndReason.NO_AGENT_ONLINE)
            return
        eligible = [a for a in online if a.can_take() and a.id not in chat.tried]
        if eligible and (front or not dept.queue):
            self._offer_chat(chat, dept, eligible)
        elif all(a.id in chat.tried for a in online):
            self._finish(chat, self._kind(chat), exhausted)
        elif not front and len(dept.queue) >= dept.config.queue_limit:
            self._finish(chat, self._kind(chat), EndReason.QUEUE_FULL)
        else:
            self._enqueue(chat, dept, front=front)

    @staticmethod
    def _kind(chat: _Chat) -> TicketKind:
        """A chat that ends before anyone took it is missed; once taken it is a transcript."""
        return TicketKind.TRANSCRIPT if chat.accepted_at is not None else TicketKind.MISSED

    def _enqueue(self, chat: _Chat, dept: _Dept, *, front: bool) -> None:
        chat.state = check(chat.state, ChatState.QUEUED)
        if front:
            dept.queue.appendleft(chat.id)
        else:
            dept.queue.append(chat.id)
        if not front or ("queue", chat.id) not in self._timers:
            self._timers.set(("queue", chat.id), trio.current_time() + dept.config.queue_timeout)
        self._tell_positions(dept)
        log.info("chat_queued", chat_id=chat.id, department=dept.config.id, length=len(dept.queue))

    def _offer_chat(self, chat: _Chat, dept: _Dept, eligible: list[_Agent]) -> None:
        if dept.config.routing is RoutingMode.ASSIGNED:
            eligible = [min(eligible, key=lambda a: (a.load, a.idle_since, a.id))]
        offer = _Offer(
            id=secrets.token_hex(8), chat_id=chat.id, kind="chat", agents={a.id for a in eligible}
        )
        chat.state = check(chat.state, ChatState.OFFERED)
        chat.offer = offer.id
        self._make_offer(offer, chat, dept.config.offer_window)

    def _make_offer(self, offer: _Offer, chat: _Chat, window: float) -> None:
        offer.offered = frozenset(offer.agents)
        self._offers[offer.id] = offer
        self._timers.set(("offer", offer.id), trio.current_time() + window)
        for agent_id in offer.agents:
            agent = self._agents[agent_id]
            agent.offers.add(offer.id)
            agent.outbox.push(
                Offer(
                    offer_id=offer.id,
                    chat_id=chat.id,
                    department=offer.to_department or chat.department,
                    kind=offer.kind,
                    question=chat.question,
                    visitor=chat.visitor,
                    ringtone=agent.ringtone,
                    expires_in=window,
                    note=offer.note,
                    from_agent=offer.from_agent,
                )
            )
        log.info(
            "offer_made",
            chat_id=chat.id,
            department=chat.department,
            offer_id=offer.id,
            kind=offer.kind,
            agents=sorted(offer.agents),
        )

    def _tell_positions(self, dept: _Dept) -> None:
        for position, chat_id in enumerate(dept.queue, start=1):
            chat = self._chats[chat_id]
            if chat.told_position != position:
                chat.told_position = position
                self._tell(chat, m.QueuePosition(position=position))

    def _visitor_gone(self, msg: m.VisitorGone) -> None:
        chat = self._chats.get(msg.chat_id)
        if chat is None or chat.state is ChatState.CLOSING:
            return
        if chat.state in WAITING:
            self._finish(chat, self._kind(chat), EndReason.VISITOR_LEFT)
        else:
            self._timers.set(("visitor", chat.id), trio.current_time() + self._visitor_grace)

    def _visitor_back(self, msg: m.VisitorBack) -> None:
        self._timers.cancel(("visitor", msg.chat_id))

    # --- agents ---------------------------------------------------------------------------------

    def _set_presence(self, msg: m.SetPresence) -> None:
        agent = self._agents.get(msg.agent_id)
        if agent is None:
            m.answer(msg.reply, EngineError("not_found", f"no agent {msg.agent_id!r}"))
            return
        status = agent.status if msg.status is None else msg.status
        ringtone = agent.ringtone if msg.ringtone is None else msg.ringtone
        if status is AgentStatus.ONLINE and agent.status is not AgentStatus.ONLINE:
            off = [d for d in agent.departments if not self._dept_chat_on(d)]
            if len(off) == len(agent.departments):
                m.answer(
                    msg.reply,
                    EngineError(
                        "chat_off",
                        f"chat is switched off for {', '.join(off) or 'all your departments'};"
                        " an administrator must switch it on before you can go online",
                    ),
                )
                return
        went_offline = agent.status is AgentStatus.ONLINE and status is AgentStatus.OFFLINE
        agent.status, agent.ringtone = status, ringtone
        if went_offline:
            self._withdraw_agent_offers(agent, "offline")
        elif status is AgentStatus.ONLINE:
            self._dirty.update(agent.departments)
        agent.outbox.push(StatusChanged(status=status.value, ringtone=ringtone))
        log.info("presence", agent_id=agent.id, status=status.value, ringtone=ringtone)
        reply = msg.reply
        result = (status, ringtone)

        def stored(outcome: object) -> None:
            if isinstance(outcome, BaseException):
                log.error("presence_not_stored", agent_id=msg.agent_id, error=repr(outcome))
                m.answer(reply, EngineError("store_unavailable", "status not saved; try again"))
            else:
                m.answer(reply, result)

        self._store.submit_presence(agent.id, status=status, ringtone=ringtone, on_done=stored)

    def _dept_chat_on(self, dept_id: str) -> bool:
        dept = self._depts.get(dept_id)
        return dept is not None and dept.config.chat_enabled

    def _connected(self, msg: m.Connected) -> None:
        agent = self._agents.get(msg.agent_id)
        if agent is None:
            return
        agent.connected = True
        self._timers.cancel(("agent", agent.id))
        self._dirty.update(agent.departments)

    def _disconnected(self, msg: m.Disconnected) -> None:
        agent = self._agents.get(msg.agent_id)
        if agent is None:
            return
        agent.connected = False
        self._withdraw_agent_offers(agent, "disconnected")
        if agent.chats:
            self._timers.set(("agent", agent.id), trio.current_time() + self._agent_grace)

    def _withdraw_agent_offers(self, agent: _Agent, why: str) -> None:
        for offer_id in list(agent.offers):
            self._offer_lapsed(self._offers[offer_id], {agent.id}, why)

    def _release_agent(self, agent: _Agent, why: str) -> None:
        """Take every chat away from an agent that is gone: invitees leave, owned chats requeue."""
        self._withdraw_agent_offers(agent, why)
        for offer in [o for o in self._offers.values() if o.from_agent == agent.id]:
            self._end_handoff(self._chats[offer.chat_id], "cancelled")
        for chat_id in list(agent.chats):
            chat = self._chats[chat_id]
            if chat.owner != agent.id:
                self._part(chat, agent, "left", why)
                continue
            if chat.handoff:
                self._end_handoff(chat, "cancelled")
            others = [a for a in chat.members if a != agent.id]
            self._part(chat, agent, "requeued" if not others else "left", why)
            if others:
                chat.owner = others[0]
                self._agents[chat.owner].outbox.push(ChatAssigned(chat_id=chat.id, role="owner"))
                continue
            chat.owner = ""
            self._timers.cancel(("end", chat.id))
            chat.tried.clear()
            self._enqueue(chat, self._depts[chat.department], front=True)
            self._dirty.add(chat.department)

    def _part(self, chat: _Chat, agent: _Agent, event: str, detail: str) -> None:
        chat.members.remove(agent.id)
        agent.chats.discard(chat.id)
        agent.idle_since = trio.current_time()
        self._tell(chat, m.Part(agent_id=agent.id, event=event, detail=detail))
        agent.outbox.push(ChatRemoved(chat_id=chat.id, reason=event))
        self._dirty.update(agent.departments)

    def _available_agents(self, msg: m.AvailableAgents) -> None:
        if msg.department and msg.department not in self._depts:
            m.answer(msg.reply, EngineError("not_found", f"no department {msg.department!r}"))
            return
        agents = self._members_of(msg.department) if msg.department else self._agents.values()
        m.answer(
            msg.reply,
            tuple(
                Availability(
                    id=a.id,
                    name=a.name,
                    departments=a.departments,
                    load=a.load,
                    capacity=a.capacity,
                )
                for a in sorted(agents, key=lambda a: (a.load, a.name))
                if a.can_take()
            ),
        )

    def _chat_info(self, msg: m.ChatInfo) -> None:
        chat = self._chats.get(msg.chat_id)
        offered = chat is not None and any(
            msg.agent_id in self._offers[o].agents for o in (chat.offer, chat.handoff) if o
        )
        if chat is None or not (msg.agent_id in chat.members or offered):
            m.answer(msg.reply, EngineError("not_in_chat", "you are not in, or offered, that chat"))
            return
        m.answer(
            msg.reply,
            (
                chat.visitor,
                self._summary(chat),
                tuple(
                    self._summary(c)
                    for c in self._chats.values()
                    if c is not chat and _same_visitor(c.visitor, chat.visitor)
                ),
            ),
        )

    @staticmethod
    def _summary(chat: _Chat) -> ChatSummary:
        return ChatSummary(
            chat_id=chat.id,
            department=chat.department,
            question=chat.question,
            started_at=chat.started_at,
            state=chat.state.value,
            agents=tuple(chat.ever),
        )

    def _members_of(self, dept_id: str) -> list[_Agent]:
        return [a for a in self._agents.values() if dept_id in a.departments]

    # --- offers and handshakes ------------------------------------------------------------------

    def _check_offer(self, agent_id: str, offer_id: str) -> _Offer | EngineError:
        offer = self._offers.get(offer_id)
        closed = self._closed_offers.get(offer_id)
        offered = offer.offered if offer is not None else closed[1] if closed else frozenset()
        if offer is None and closed is None:
            return EngineError("not_found", "no such offer")
        if agent_id not in offered:
            return EngineError("not_your_offer", "this offer was made to another agent")
        if offer is None:
            assert closed is not None
            if closed[0] == "taken":
                return EngineError("offer_taken", "another agent accepted this chat first")
            return EngineError("stale_offer", f"this offer is no longer open ({closed[0]})")
        if agent_id not in offer.agents:
            return EngineError("stale_offer", "this offer is no longer open to you")
        return offer

    def _accept(self, msg: m.Accept) -> None:
        offer = self._check_offer(msg.agent_id, msg.offer_id)
        if isinstance(offer, EngineError):
            m.answer(msg.reply, offer)
            return
        chat = self._chats[offer.chat_id]
        agent = self._agents[msg.agent_id]
        self._close_offer(offer, "taken", keep=agent.id)
        agent.offers.discard(offer.id)
        agent.chats.add(chat.id)
        now = self._wall()
        if offer.kind == "chat":
            chat.offer = ""
            self._timers.cancel(("queue", chat.id))
            chat.state = check(chat.state, ChatState.ACTIVE)
            chat.owner = agent.id
            chat.accepted_at = chat.accepted_at or now
            self._join(chat, agent, "joined", "")
            role = "owner"
        else:
            source = self._agents[offer.from_agent]
            chat.handoff = ""
            chat.handoffs.append(self._handoff_record(offer, agent.id, "accepted", now))
            if offer.kind == "transfer":
                chat.owner = agent.id
                chat.members.remove(source.id)
                source.chats.discard(chat.id)
                source.idle_since = trio.current_time()
                self._dirty.update(source.departments)
                self._join(chat, agent, "transferred", offer.note, replaces=source.id)
                source.outbox.push(ChatRemoved(chat_id=chat.id, reason="transferred"))
                role = "owner"
            else:
                self._join(chat, agent, "invited", offer.note)
                role = "invitee"
            source.outbox.push(
                HandoffResult(chat_id=chat.id, kind=offer.kind, outcome="accepted", target=agent.id)
            )
        agent.outbox.push(ChatAssigned(chat_id=chat.id, role=role))
        log.info(
            "offer_accepted",
            chat_id=chat.id,
            agent_id=agent.id,
            department=chat.department,
            kind=offer.kind,
        )
        m.answer(msg.reply, chat.id)

    def _join(
        self, chat: _Chat, agent: _Agent, event: str, detail: str, replaces: str = ""
    ) -> None:
        chat.members.append(agent.id)
        if agent.id not in chat.ever:
            chat.ever.append(agent.id)
        self._tell(
            chat,
            m.Join(
                agent_id=agent.id,
                name=agent.name,
                outbox=agent.outbox,
                event=event,
                detail=detail,
                replaces=replaces,
            ),
        )

    def _handoff_record(self, offer: _Offer, target: str, outcome: str, at: float) -> Handoff:
        return Handoff(
            kind=offer.kind,
            from_agent=offer.from_agent,
            to_agent=target,
            to_department=offer.to_department,
            note=offer.note,
            outcome=outcome,
            at=at,
        )

    def _decline(self, msg: m.Decline) -> None:
        offer = self._check_offer(msg.agent_id, msg.offer_id)
        if isinstance(offer, EngineError):
            m.answer(msg.reply, offer)
            return
        self._offer_lapsed(offer, {msg.agent_id}, "declined")
        m.answer(msg.reply, None)

    def _offer_lapsed(self, offer: _Offer, agents: set[str], why: str) -> None:
        """Some of an offer's agents declined, timed out or went away; move on if none are left."""
        for agent_id in agents:
            agent = self._agents[agent_id]
            agent.offers.discard(offer.id)
            offer.agents.discard(agent_id)
            self._dirty.update(agent.departments)
            if why != "declined":
                agent.outbox.push(
                    OfferWithdrawn(offer_id=offer.id, chat_id=offer.chat_id, reason=why)
                )
        chat = self._chats[offer.chat_id]
        if offer.agents:
            return
        self._close_offer(offer, why)
        if offer.kind != "chat":
            self._end_handoff(chat, "declined" if why == "declined" else "timeout", offer=offer)
            return
        chat.offer = ""
        chat.tried.update(agents)
        reason = EndReason.ALL_DECLINED if why == "declined" else EndReason.OFFER_TIMEOUT
        dept = self._depts[chat.department]
        if dept.config.routing is RoutingMode.ASSIGNED or why not in ("declined", "expired"):
            self._route(chat, front=True, exhausted=reason)
        else:
            self._finish(chat, self._kind(chat), reason)

    def _close_offer(self, offer: _Offer, why: str, keep: str = "") -> None:
        """Retire an offer: release every reservation but `keep`'s and tell those agents."""
        self._offers.pop(offer.id, None)
        self._timers.cancel(("offer", offer.id))
        self._closed_offers[offer.id] = (why, offer.offered)
        if len(self._closed_offers) > 10_000:
            self._closed_offers.popitem(last=False)
        for agent_id in offer.agents - {keep}:
            agent = self._agents[agent_id]
            agent.offers.discard(offer.id)
            self._dirty.update(agent.departments)
            agent.outbox.push(OfferWithdrawn(offer_id=offer.id, chat_id=offer.chat_id, reason=why))
        offer.agents.clear()

    def _start_handoff(self, msg: m.StartHandoff) -> None:
        result = self._plan_handoff(msg)
        if isinstance(result, EngineError):
            m.answer(msg.reply, result)
            return
        chat, targets = result
        offer = _Offer(
            id=secrets.token_hex(8),
            chat_id=chat.id,
            kind=msg.kind,
            agents={a.id for a in targets},
            from_agent=msg.agent_id,
            to_department=msg.to_department,
            target=msg.to_agent or msg.to_department,
            note=msg.note,
        )
        chat.handoff = offer.id
        self._make_offer(offer, chat, self._handoff_timeout)
        m.answer(msg.reply, offer.id)

    def _plan_handoff(self, msg: m.StartHandoff) -> tuple[_Chat, list[_Agent]] | EngineError:
        chat = self._chats.get(msg.chat_id)
        if chat is None or msg.agent_id not in chat.members:
            return EngineError("not_in_chat", "you are not in that chat")
        if msg.kind == "transfer" and chat.owner != msg.agent_id:
            return EngineError("not_owner", "only the agent who holds the chat can transfer it")
        if chat.state is not ChatState.ACTIVE:
            return EngineError("invalid_state", f"the chat is {chat.state}; it cannot be handed on")
        if chat.handoff:
            return EngineError(
                "handoff_pending", "a transfer or invite is already waiting; cancel it"
            )
        if msg.to_department:
            dept = self._depts.get(msg.to_department)
            if dept is None:
                return EngineError("not_found", f"no department {msg.to_department!r}")
            if not dept.config.chat_enabled:
                return EngineError("chat_off", f"chat is switched off for {msg.to_department}")
        if msg.to_agent:
            target = self._agents.get(msg.to_agent)
            if target is None:
                return EngineError("not_found", f"no agent {msg.to_agent!r}")
            if msg.to_department and msg.to_department not in target.departments:
                return EngineError(
                    "invalid_field", f"{msg.to_agent} is not in department {msg.to_department}"
                )
            if target.id in chat.members:
                return EngineError("invalid_state", f"{msg.to_agent} is already in this chat")
            if not target.can_take():
                return EngineError(
                    "agent_unavailable",
                    f"{msg.to_agent} is offline or has no free capacity; pick another agent",
                )
            return chat, [target]
        if not msg.to_department:
            return EngineError("missing_field", "name an agent or a department to hand over to")
        targets = [
            a
            for a in self._members_of(msg.to_department)
            if a.can_take() and a.id not in chat.members
        ]
        if not targets:
            return EngineError(
                "agent_unavailable", f"nobody in {msg.to_department} can take a chat right now"
            )
        return chat, targets

    def _cancel_handoff(self, msg: m.CancelHandoff) -> None:
        chat = self._chats.get(msg.chat_id)
        offer = self._offers.get(chat.handoff) if chat is not None and chat.handoff else None
        if chat is None or offer is None:
            m.answer(msg.reply, EngineError("no_handoff", "no transfer or invite is waiting"))
            return
        if offer.from_agent != msg.agent_id:
            m.answer(msg.reply, EngineError("forbidden", "only its sender can cancel a handoff"))
            return
        self._end_handoff(chat, "cancelled")
        m.answer(msg.reply, None)

    def _end_handoff(self, chat: _Chat, outcome: str, *, offer: _Offer | None = None) -> None:
        """Close a chat's pending transfer or invite with `outcome`; ownership does not change."""
        offer = offer or self._offers.get(chat.handoff)
        chat.handoff = ""
        if offer is None:
            return
        self._close_offer(offer, outcome)
        chat.handoffs.append(self._handoff_record(offer, offer.target, outcome, self._wall()))
        source = self._agents.get(offer.from_agent)
        if source is not None:
            source.outbox.push(
                HandoffResult(
                    chat_id=chat.id, kind=offer.kind, outcome=outcome, target=offer.target
                )
            )

    # --- endings --------------------------------------------------------------------------------

    def _owned(self, agent_id: str, chat_id: str) -> _Chat | EngineError:
        chat = self._chats.get(chat_id)
        if chat is None or agent_id not in chat.members:
            return EngineError("not_in_chat", "you are not in that chat")
        if chat.owner != agent_id:
            return EngineError("not_owner", "only the agent who holds the chat can do that")
        return chat

    def _end_chat(self, msg: m.EndChat) -> None:
        chat = self._owned(msg.agent_id, msg.chat_id)
        if isinstance(chat, EngineError):
            m.answer(msg.reply, chat)
            return
        if chat.state not in LIVE:
            m.answer(msg.reply, EngineError("invalid_state", f"the chat is {chat.state}"))
            return
        if msg.delay <= 0:
            self._finish(chat, TicketKind.TRANSCRIPT, EndReason.AGENT_ENDED)
            chat.waiters.append(msg.reply)  # answered with the ticket id once it is stored
            return
        if chat.handoff:
            self._end_handoff(chat, "cancelled")
        if chat.state is ChatState.ACTIVE:
            chat.state = check(chat.state, ChatState.ENDING)
        self._timers.set(("end", chat.id), trio.current_time() + msg.delay)
        self._tell(chat, m.Notice(event="ending", agent=msg.agent_id, detail=f"{msg.delay:g}"))
        m.answer(msg.reply, None)

    def _cancel_end(self, msg: m.CancelEnd) -> None:
        chat = self._owned(msg.agent_id, msg.chat_id)
        if isinstance(chat, EngineError):
            m.answer(msg.reply, chat)
            return
        if chat.state is not ChatState.ENDING:
            m.answer(msg.reply, EngineError("invalid_state", "no ending is scheduled"))
            return
        self._timers.cancel(("end", chat.id))
        chat.state = check(chat.state, ChatState.ACTIVE)
        self._tell(chat, m.Notice(event="ending_cancelled", agent=msg.agent_id))
        m.answer(msg.reply, None)

    def _leave_chat(self, msg: m.LeaveChat) -> None:
        chat = self._chats.get(msg.chat_id)
        if chat is None or msg.agent_id not in chat.members:
            m.answer(msg.reply, EngineError("not_in_chat", "you are not in that chat"))
            return
        if chat.owner == msg.agent_id:
            m.answer(
                msg.reply, EngineError("not_owner", "the owner ends or transfers a chat instead")
            )
            return
        self._part(chat, self._agents[msg.agent_id], "left", "")
        m.answer(msg.reply, None)

    def _finish(self, chat: _Chat, kind: TicketKind, reason: EndReason) -> None:
        """End a chat: free everything it held and tell its session to write the one ticket."""
        for key in ("queue", "end", "visitor", "finish"):
            self._timers.cancel((key, chat.id))
        if chat.offer:
            self._close_offer(self._offers[chat.offer], "chat_ended")
            chat.offer = ""
        if chat.handoff:
            self._end_handoff(chat, "cancelled")
        dept = self._depts[chat.department]
        if chat.state is ChatState.QUEUED:
            dept.queue.remove(chat.id)
            self._tell_positions(dept)
        now = trio.current_time()
        for agent_id in chat.members:
            agent = self._agents[agent_id]
            agent.chats.discard(chat.id)
            agent.idle_since = now
            self._dirty.update(agent.departments)
        chat.state = check(chat.state, ChatState.CLOSING)
        log.info(
            "chat_finished",
            chat_id=chat.id,
            department=chat.department,
            agent_id=chat.owner,
            kind=kind.value,
            reason=reason.value,
        )
        self._tell_finish(
            chat,
            m.Finish(
                kind=kind,
                reason=reason.value,
                owner=chat.owner,
                agents=tuple(chat.ever),
                handoffs=tuple(chat.handoffs),
                accepted_at=chat.accepted_at,
            ),
        )

    def _tell_finish(self, chat: _Chat, msg: m.Finish) -> None:
        try:
            chat.session.send_nowait(msg)
            chat.pending = None
        except trio.WouldBlock:
            chat.pending = msg
            self._timers.set(("finish", chat.id), trio.current_time() + _RETRY)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            chat.pending = None  # the session is gone; ActorDown writes its ticket

    def _tell(self, chat: _Chat, msg: m.ToSession) -> None:
        try:
            chat.session.send_nowait(msg)
        except trio.WouldBlock:
            log.warning("session_mailbox_full", chat_id=chat.id, dropped=type(msg).__name__)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def _session_closed(self, msg: m.SessionClosed) -> None:
        chat = self._chats.pop(msg.chat_id, None)
        if chat is not None:
            for reply in chat.waiters:
                m.answer(reply, msg.ticket_id)
        self._maybe_stopped()

    def _actor_down(self, msg: m.ActorDown) -> None:
        if msg.kind == "agent":
            agent = self._agents.get(msg.name)
            if agent is not None and agent.connected:
                self._disconnected(m.Disconnected(agent_id=msg.name))
            return
        if msg.kind != "session":
            return
        chat = self._chats.pop(msg.name, None)
        if chat is None:
            return  # it closed normally
        log.error("session_lost", chat_id=chat.id, department=chat.department)
        for reply in chat.waiters:
            m.answer(reply, EngineError("internal", "the chat failed; it is saved as failed"))
        if chat.state is not ChatState.CLOSING:
            self._finish(chat, TicketKind.FAILED, EndReason.CRASHED)
        if msg.snapshot is not None:
            ticket = _failed_ticket(msg.snapshot, chat, self._wall())

            def stored(outcome: object) -> None:
                if isinstance(outcome, BaseException):
                    log.error("failed_ticket_not_stored", chat_id=chat.id, error=repr(outcome))

            self._store.submit_ticket(ticket, stored)
        self._maybe_stopped()

    # --- configuration --------------------------------------------------------------------------

    def _department_changed(self, msg: m.DepartmentChanged) -> None:
        d = msg.department
        dept = self._depts.setdefault(d.id, _Dept(config=d))
        dept.config = d
        if not d.chat_enabled:
            for chat_id in list(dept.queue):
                chat = self._chats[chat_id]
                self._finish(chat, self._kind(chat), EndReason.CHAT_OFF)
        self._dirty.add(d.id)

    def _agent_changed(self, msg: m.AgentChanged) -> None:
        agent = self._agents.get(msg.agent_id)
        if msg.removed:
            if agent is not None:
                agent.status = AgentStatus.OFFLINE
                self._release_agent(agent, "removed")
                del self._agents[agent.id]
            return
        if agent is None:
            assert msg.outbox is not None
            agent = _Agent(
                id=msg.agent_id,
                name=msg.name,
                departments=msg.departments,
                capacity=msg.capacity,
                outbox=msg.outbox,
            )
            self._agents[agent.id] = agent
        else:
            agent.name, agent.departments, agent.capacity = msg.name, msg.departments, msg.capacity
        self._dirty.update(agent.departments)

    # --- queues ---------------------------------------------------------------------------------

    def _dispatch_dirty(self) -> None:
        while self._dirty:
            dept = self._depts.get(self._dirty.pop())
            if dept is not None:
                self._dispatch(dept)

    def _dispatch(self, dept: _Dept) -> None:
        """Offer queued chats, head first, while the department has agents with room."""
        moved = False
        while dept.queue:
            chat = self._chats[dept.queue[0]]
            eligible = [
                a
                for a in self._members_of(dept.config.id)
                if a.can_take() and a.id not in chat.tried
            ]
            if not eligible or not dept.config.chat_enabled:
                break
            dept.queue.popleft()
            chat.told_position = 0
            moved = True
            self._offer_chat(chat, dept, eligible)
        if moved:
            self._tell_positions(dept)

    # --- inspection and shutdown ----------------------------------------------------------------

    def _inspect(self, msg: m.Inspect) -> None:
        m.answer(msg.reply, self.view())

    def view(self) -> RouterView:
        """A consistent picture of ownership, capacity, offers and queues."""
        return RouterView(
            chats={
                c.id: ChatView(
                    id=c.id,
                    department=c.department,
                    state=c.state.value,
                    owner=c.owner,
                    members=tuple(c.members),
                    offer_agents=tuple(sorted(self._offers[c.offer].agents)) if c.offer else (),
                    handoff=c.handoff,
                )
                for c in self._chats.values()
            },
            agents={
                a.id: AgentView(
                    id=a.id,
                    status=a.status.value,
                    connected=a.connected,
                    capacity=a.capacity,
                    chats=tuple(sorted(a.chats)),
                    offers=tuple(sorted(a.offers)),
                    departments=a.departments,
                )
                for a in self._agents.values()
            },
            queues={d.config.id: tuple(d.queue) for d in self._depts.values()},
            timers=len(self._timers),
        )

    def _shutdown(self, msg: m.Shutdown) -> None:
        self._stopping = msg.reply
        for chat in list(self._chats.values()):
            if chat.state is not ChatState.CLOSING:
                self._finish(chat, self._kind(chat), EndReason.SHUTDOWN)
        self._maybe_stopped()

    def _maybe_stopped(self) -> None:
        if self._stopping is not None and not self._chats:
            m.answer(self._stopping, None)


def _same_visitor(a: Visitor, b: Visitor) -> bool:
    """A returning visitor is recognised by a frontend's visitor id, else by email."""
    if a.visitor_id and b.visitor_id:
        return a.visitor_id == b.visitor_id
    return bool(a.email) and a.email.casefold() == b.email.casefold()


def _failed_ticket(snapshot: Ticket, chat: _Chat, now: float) -> Ticket:
    return Ticket(
        chat_id=chat.id,
        kind=TicketKind.FAILED,
        department=chat.department,
        question=chat.question,
        visitor=chat.visitor,
        entries=snapshot.entries,
        agents=tuple(chat.ever),
        handoffs=tuple(chat.handoffs),
        started_at=chat.started_at,
        accepted_at=chat.accepted_at,
        ended_at=now,
        end_reason=EndReason.CRASHED,
        owner=chat.owner,
    )
