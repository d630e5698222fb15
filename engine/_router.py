"""The router: the single writer of chat ownership and agent capacity.

Theory of operation:

Rule 1. Every decision about who holds a chat (offer, accept, decline, transfer, invite, requeue,
        end) is made here, one message at a time, against the router's own records. There is no
        read-check-assign race: two agents cannot both win a chat, and an agent's load (chats it is
        in plus offers it holds) never exceeds its capacity, because pending offers reserve a slot.
Rule 2. The router never awaits anything but its own mailbox. It tells sessions with `send_nowait`,
        pushes events into outboxes (which never block), answers asks on size-1 reply channels, and
        hands store writes over with a callback, which records the outcome and wakes the loop (it
        cancels the mailbox wait). A full session mailbox fails that one tell; for the one tell
        that must arrive (Finish) the router retries on a timer.
Rule 3. Timers are data: one deadline heap, and the loop waits on the mailbox under
        `trio.move_on_at(earliest deadline)`. A fired timer is handled like a message.
Rule 4. Work that follows from freed capacity (offering the head of a queue) is collected while a
        message is handled and done once at the end, so handlers never recurse into each other.
Rule 5. Decided, then durable, then seen. Every change to a chat's record (state, owner, members,
        offers, handoffs, queue place, deadlines), to an agent's presence or disconnect grace, is
        journaled before anyone hears of it: the effects of one loop iteration (pushes, tells,
        answers) are held back (engine._effects), the changed records are handed to the store in
        one job at the end of the iteration, and the effects are released, in order, once it has
        committed. The router does not wait for that: it goes on with the next message, and many
        iterations share one disk flush (group commit). An iteration that changed nothing releases
        its effects as soon as those before it are out.
Rule 6. A failed journal write does not undo the decision. The state in memory stays as decided and
        its effects are released, but the asks answered by the handler that made the change get
        `store_unavailable`, and the records are written again with the next write (a retry timer
        makes sure there is one). The consequence: until a later write succeeds, the change lives
        only in memory, and a crash in that window loses it (the chat comes back as it was last
        committed; nothing that was acknowledged is lost). A chat whose creation could not be
        journaled is ended at once, since its visitor was told it failed and holds no handle.
Rule 7. Presence for routing. An agent is available (offered chats) when it is online and
        connected. An agent in its disconnect grace, also every agent restored at start until it
        connects, is present but not available: it counts as online when a new chat must choose
        between waiting in the queue and being missed, but it is offered nothing new. Offers
        restored at start wait for their agent, and are shown again when it connects.

The per-department waiting queue lives here too: taking a chat off the queue and reserving an
agent's capacity for it must be one decision. Its order survives a restart as a key per chat.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import structlog
import trio

from . import _journal as journal
from . import _messages as m
from ._chatstate import LIVE, WAITING, ChatState, check
from ._effects import Batch, Effects
from ._errors import EngineError
from ._events import (
    ChatAssigned,
    ChatRemoved,
    Event,
    HandoffResult,
    Offer,
    OfferWithdrawn,
    StatusChanged,
)
from ._outbox import Outbox, Outlet
from ._records import (
    AgentStatus,
    Department,
    EndReason,
    Entry,
    Handoff,
    RoutingMode,
    Ticket,
    TicketKind,
    Visitor,
)
from ._stats import Stats
from ._timers import Timers
from ._views import AgentView, Availability, ChatSummary, ChatView, LiveChat, RouterView

log = structlog.get_logger("helpline.router")

_RETRY = 0.05  # seconds before a tell that found a full mailbox is tried again
_BURST = 16  # messages read without waiting before the router yields to other tasks
_JOURNAL_RETRY = 1.0  # seconds before records whose journal write failed are written again

Members = dict[str, tuple[str, Outbox]]  # agent id -> (name, outbox), as a session keeps them
SpawnSession = Callable[
    ["_Chat", Outbox, Sequence[Entry], Members], trio.MemorySendChannel[m.ToSession]
]


@dataclass(slots=True, eq=False)
class _Chat:
    id: str
    department: str
    question: str
    visitor: Visitor
    session: trio.MemorySendChannel[m.ToSession]
    started_at: float
    resume_key: str = ""
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
    queue_key: int | None = None  # orders the department's queue, also after a restart
    final: m.Finish | None = None  # how the ticket is to be written, once the chat is closing
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
class _Unwritten:
    """The keys of what failed journal writes covered (records are written as they are then)."""

    chats: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    presence: set[str] = field(default_factory=set)
    tickets: dict[str, Ticket] = field(default_factory=dict)


class _Closed(NamedTuple):
    """What is kept of a closed offer."""

    why: str
    offered: frozenset[str]  # who it was made to
    taker: str  # who accepted it, if anyone
    chat_id: str


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
    grace: bool = False  # disconnected, and its disconnect grace is running
    recovering: bool = False  # restored at start and not connected since

    @property
    def load(self) -> int:
        return len(self.chats) + len(self.offers)

    @property
    def available(self) -> bool:
        return self.status is AgentStatus.ONLINE and self.connected

    @property
    def present(self) -> bool:
        """Online and connected, or online and expected back (in its disconnect grace)."""
        return self.status is AgentStatus.ONLINE and (self.connected or self.grace)

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
        spawn_session: SpawnSession,
        store: Any,
        wall: Callable[[], float],
        handoff_timeout: float,
        visitor_grace: float,
        agent_grace: float,
        journal: bool = True,
        stats: Stats | None = None,
    ) -> None:
        self.stats = stats or Stats()
        self._inbox = inbox
        self._spawn_session = spawn_session
        self._store = store
        self._wall = wall
        self._handoff_timeout = handoff_timeout
        self._visitor_grace = visitor_grace
        self._agent_grace = agent_grace
        self._journal = journal
        self._timers = Timers()
        self._effects = Effects(wake=self._wake)
        self._waiting: trio.CancelScope | None = None  # the mailbox wait, cancelled to wake up
        # what changed since the last journal write
        self._touched: set[str] = set()  # chats
        self._touched_agents: set[str] = set()  # disconnect graces
        self._presence: set[str] = set()  # status and ringtone
        self._failed_tickets: dict[str, Ticket] = {}  # of crashed sessions, not stored yet
        self._unwritten = _Unwritten()  # what failed writes covered, for the retry
        self._touches = 0  # counts changes, so an answer knows whether it reports one
        self._queue_seq = 0
        self._chats: dict[str, _Chat] = {}
        self._offers: dict[str, _Offer] = {}
        # for clear refusals of late answers, and an accept repeated by the agent that took it
        self._closed_offers: OrderedDict[str, _Closed] = OrderedDict()
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

    def restore(self, live: journal.LiveState) -> list[journal.LiveChat]:
        """Rebuild the live chats the journal holds (after `load`, before `run`).

        Returns the chats that cannot be restored (their record does not parse, or names a
        department or agent that is gone); the caller stores each as a FAILED ticket.
        """
        broken: list[journal.LiveChat] = []
        for item in live.chats:
            try:
                if item.record is None:
                    raise ValueError("only lines are left of it")
                record = journal.loads(item.chat_id, item.record)
                self._check_record(record)
            except ValueError as exc:
                log.error("chat_not_restorable", chat_id=item.chat_id, error=str(exc))
                broken.append(item)
                continue
            self._restore_chat(record, item.entries)
        now = trio.current_time()
        for dept in self._depts.values():
            queued = [c for c in self._chats.values() if c.department == dept.config.id]
            queued = [c for c in queued if c.state is ChatState.QUEUED]
            queued.sort(key=lambda c: c.queue_key or 0)
            dept.queue = deque(c.id for c in queued)
            self._queue_seq = max([self._queue_seq, *(c.queue_key or 0 for c in queued)])
        for agent in self._agents.values():
            # Nobody is connected yet: give everyone who was expected to be there their grace.
            until = live.graces.get(agent.id)
            if until is not None:
                deadline = self._from_wall(until)
            elif agent.status is AgentStatus.ONLINE or agent.chats or agent.offers:
                deadline = now + self._agent_grace
            else:
                continue
            agent.grace = agent.recovering = True
            self._timers.set(("agent", agent.id), deadline)
            self._touch_agent(agent)
        for chat in self._chats.values():
            if chat.final is not None:
                self._effects.do(partial(self._tell_finish, chat, chat.final))
            elif ("visitor", chat.id) not in self._timers:  # and every visitor its grace
                self._timers.set(("visitor", chat.id), now + self._visitor_grace)
                self._touch(chat)
        for dept in self._depts.values():
            if not dept.config.chat_enabled:
                for chat_id in list(dept.queue):
                    chat = self._chats[chat_id]
                    self._finish(chat, self._kind(chat), EndReason.CHAT_OFF)
            self._dirty.add(dept.config.id)
        log.info("chats_restored", chats=len(self._chats), failed=len(broken))
        return broken

    def _check_record(self, r: journal.ChatRecord) -> None:
        """Raise ValueError unless the record fits this engine's departments and agents."""
        if r.department not in self._depts:
            raise ValueError(f"no department {r.department!r}")
        offers = [o for o in (r.offer, r.handoff) if o is not None]
        named = {*r.members, *(a for o in offers for a in (*o.agents, *o.offered))}
        named |= {o.from_agent for o in offers if o.from_agent}
        if unknown := sorted(named - self._agents.keys()):
            raise ValueError(f"no agents {unknown}")
        if r.owner and r.owner not in r.members:
            raise ValueError("the owner is not in the chat")
        expected = {
            ChatState.QUEUED: r.queue_key is not None and not r.owner,
            ChatState.OFFERED: r.offer is not None and r.offer.kind == "chat" and not r.owner,
            ChatState.ACTIVE: bool(r.owner) and r.offer is None,
            ChatState.ENDING: bool(r.owner) and r.offer is None and r.handoff is None,
            ChatState.CLOSING: r.finish is not None,
        }
        if not expected.get(r.state, False):
            raise ValueError(f"the record does not fit its state {r.state}")
        if r.handoff is not None and r.handoff.kind not in ("transfer", "invite"):
            raise ValueError(f"a handoff of kind {r.handoff.kind!r}")

    def _restore_chat(self, r: journal.ChatRecord, entries: Sequence[Entry]) -> None:
        chat = _Chat(
            id=r.chat_id,
            department=r.department,
            question=r.question,
            visitor=r.visitor,
            session=None,  # type: ignore[arg-type]  # set just below
            started_at=r.started_at,
            resume_key=r.resume_key,
            state=r.state,
            owner=r.owner,
            members=list(r.members),
            ever=list(r.ever),
            tried={a for a in r.tried if a in self._agents},
            handoffs=list(r.handoffs),
            accepted_at=r.accepted_at,
            queue_key=r.queue_key,
            final=r.finish,
        )
        if chat.state is not ChatState.CLOSING:  # a closing chat already gave its agents back
            for agent_id in chat.members:
                self._agents[agent_id].chats.add(chat.id)
        members = {a: (self._agents[a].name, self._agents[a].outbox) for a in chat.members}
        chat.session = self._spawn_session(chat, Outbox(), entries, members)
        self._chats[chat.id] = chat
        for key, until in (
            ("queue", r.queue_deadline),
            ("end", r.end_deadline),
            ("visitor", r.visitor_deadline),
        ):
            if until is not None:
                self._timers.set((key, chat.id), self._from_wall(until))
        for o in (r.offer, r.handoff):
            if o is None or chat.state is ChatState.CLOSING:
                continue
            offer = _Offer(
                id=o.id,
                chat_id=chat.id,
                kind=o.kind,
                agents=set(o.agents),
                offered=frozenset(o.offered),
                from_agent=o.from_agent,
                to_department=o.to_department,
                target=o.target,
                note=o.note,
            )
            self._offers[offer.id] = offer
            self._timers.set(("offer", offer.id), self._from_wall(o.deadline))
            for agent_id in offer.agents:
                self._agents[agent_id].offers.add(offer.id)
            if offer.kind == "chat":
                chat.offer = offer.id
            else:
                chat.handoff = offer.id

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        handlers = self._handlers()
        inbox = self._inbox
        timers = self._timers
        effects = self._effects
        self._flush()  # what restoring changed and told
        burst = 0
        while not self._stopped:
            msg: m.ToRouter | None = None
            if not effects.ready():
                try:  # a busy mailbox is read without setting up a cancel scope per message
                    msg = inbox.receive_nowait()
                    burst += 1
                    if burst % _BURST == 0:
                        await trio.lowlevel.checkpoint()  # let the others run now and then
                except trio.WouldBlock:
                    burst = 0
                    with trio.move_on_at(timers.next_deadline()) as self._waiting:
                        msg = await inbox.receive()
                    self._waiting = None
            self._release_due()
            self.stats.loop_turns += 1
            if msg is not None:
                mark, touches = effects.mark(), self._touches
                handlers[type(msg)](msg)
                if self._touches != touches:
                    effects.durable_since(mark)
            for key in timers.pop_due(trio.current_time()):
                self._fire(key)
            if self._dirty:
                self._dispatch_dirty()
            self._flush()

    # --- the journal and held-back effects (see engine._effects) --------------------------------

    def _wake(self) -> None:
        """A journal write committed (or failed): stop waiting on the mailbox."""
        if self._waiting is not None:
            self._waiting.cancel()

    def _touch(self, chat: _Chat) -> None:
        """The chat's record changed: journal it with this iteration's write."""
        self._touched.add(chat.id)
        self._touches += 1

    def _touch_agent(self, agent: _Agent) -> None:
        self._touched_agents.add(agent.id)
        self._touches += 1

    def _answer(
        self, reply: m.Reply, value: object, on_fail: Callable[[], None] | None = None
    ) -> None:
        self._effects.answer(reply, value, on_fail)

    def _push(self, agent: _Agent, event: Event) -> None:
        self._effects.do(partial(agent.outbox.push, event))

    def _flush(self) -> None:
        """End of an iteration: write what changed; its effects wait for the commit.

        Effects that wait for no write go out at once if nothing before them is still waiting
        (releasing a committed batch changes nothing the journal holds).
        """
        job = self._journal_job()
        batch = self._effects.seal(job)
        if batch is not None:
            assert job is not None
            self._store.submit_journal(job, partial(self._effects.committed, batch))
        elif self._effects.ready():
            self._release_due()

    def _journal_job(self) -> journal.JournalBatch | None:
        if not (self._journal and (self._touched or self._touched_agents)):
            self._touched.clear()  # not journaled: nothing to write for them
            self._touched_agents.clear()
            if not (self._presence or self._failed_tickets):
                return None
        chats: tuple[tuple[str, str], ...] = ()
        graces: tuple[tuple[str, float | None], ...] = ()
        if self._journal:
            chats = tuple(
                (chat_id, journal.dumps(self._record_of(self._chats[chat_id])))
                for chat_id in self._touched
                if chat_id in self._chats
            )
            graces = tuple((a, self._grace_until(a)) for a in self._touched_agents)
        presence = tuple(
            (a.id, a.status, a.ringtone)
            for a in map(self._agents.get, self._presence)
            if a is not None
        )
        tickets = tuple(self._failed_tickets.values())
        self._touched.clear()
        self._touched_agents.clear()
        self._presence.clear()
        self._failed_tickets.clear()
        if not (chats or graces or presence or tickets):
            return None
        return journal.JournalBatch(chats=chats, graces=graces, presence=presence, tickets=tickets)

    def _release_due(self) -> None:
        for batch in self._effects.due():
            if batch.failed:
                self._journal_failed(batch)
            self._effects.release(batch)

    def _journal_failed(self, batch: Batch) -> None:
        """Keep what the write covered, to be written again when the retry timer fires.

        Not at once: the store is failing, and rewriting in the iteration the failure wakes
        would spin. A new change to a chat writes that chat's record again anyway.
        """
        job = batch.job
        assert isinstance(job, journal.JournalBatch)
        log.error("journal_write_failed", error=repr(batch.outcome), chats=len(job.chats))
        u = self._unwritten
        u.chats.update(chat_id for chat_id, _ in job.chats)
        u.agents.update(agent_id for agent_id, _ in job.graces)
        u.presence.update(agent_id for agent_id, _, _ in job.presence)
        u.tickets.update((t.chat_id, t) for t in job.tickets)
        if ("retry", "") not in self._timers:
            self._timers.set(("retry", ""), trio.current_time() + _JOURNAL_RETRY)

    def _retry_journal(self) -> None:
        """Mark what failed to be written as changed again: it goes with this iteration's write."""
        u, self._unwritten = self._unwritten, _Unwritten()
        self._touched |= u.chats
        self._touched_agents |= u.agents
        self._presence |= u.presence
        for chat_id, ticket in u.tickets.items():
            self._failed_tickets.setdefault(chat_id, ticket)

    def _to_wall(self, key: Hashable) -> float | None:
        deadline = self._timers.deadline(key)
        return None if deadline is None else self._wall() + (deadline - trio.current_time())

    def _from_wall(self, when: float) -> float:
        return trio.current_time() + (when - self._wall())

    def _grace_until(self, agent_id: str) -> float | None:
        agent = self._agents.get(agent_id)
        return self._to_wall(("agent", agent_id)) if agent is not None and agent.grace else None

    def _record_of(self, chat: _Chat) -> journal.ChatRecord:
        return journal.ChatRecord(
            chat_id=chat.id,
            department=chat.department,
            question=chat.question,
            visitor=chat.visitor,
            started_at=chat.started_at,
            resume_key=chat.resume_key,
            state=chat.state,
            owner=chat.owner,
            members=tuple(chat.members),
            ever=tuple(chat.ever),
            tried=tuple(sorted(chat.tried)),
            handoffs=tuple(chat.handoffs),
            accepted_at=chat.accepted_at,
            queue_key=chat.queue_key if chat.state is ChatState.QUEUED else None,
            offer=self._offer_record(chat.offer),
            handoff=self._offer_record(chat.handoff),
            queue_deadline=self._to_wall(("queue", chat.id)),
            end_deadline=self._to_wall(("end", chat.id)),
            visitor_deadline=self._to_wall(("visitor", chat.id)),
            finish=chat.final,
        )

    def _offer_record(self, offer_id: str) -> journal.OfferRecord | None:
        offer = self._offers.get(offer_id) if offer_id else None
        if offer is None:
            return None
        deadline = self._to_wall(("offer", offer.id))
        return journal.OfferRecord(
            id=offer.id,
            kind=offer.kind,
            agents=tuple(sorted(offer.agents)),
            offered=tuple(sorted(offer.offered)),
            from_agent=offer.from_agent,
            to_department=offer.to_department,
            target=offer.target,
            note=offer.note,
            deadline=self._wall() if deadline is None else deadline,
        )

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
            m.LiveChats: self._live_chats,
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
                agent.grace = agent.recovering = False
                self._touch_agent(agent)
                self._release_agent(agent, "disconnected")
        elif what == "finish":
            chat = self._chats.get(ident)
            if chat is not None and chat.pending is not None:
                self._tell_finish(chat, chat.pending)
        elif what == "retry":
            self._retry_journal()

    # --- visitors -------------------------------------------------------------------------------

    def _open_chat(self, msg: m.OpenChat) -> None:
        if self._stopping is not None:
            self._answer(
                msg.reply, EngineError("shutting_down", "the server is stopping; try later")
            )
            return
        dept = self._depts.get(msg.department)
        if dept is None:
            self._answer(msg.reply, EngineError("not_found", f"no department {msg.department!r}"))
            return
        chat_id = secrets.token_hex(8)
        chat = _Chat(
            id=chat_id,
            department=dept.config.id,
            question=msg.question,
            visitor=msg.visitor,
            session=None,  # type: ignore[arg-type]  # set just below
            started_at=self._wall(),
            resume_key=msg.resume_key,
        )
        chat.session = self._spawn_session(chat, msg.outbox, (), {})
        self._chats[chat_id] = chat
        self._touch(chat)
        # If the chat cannot be journaled the visitor is told so and never gets a handle: the chat
        # then ends at once as if the visitor had left, rather than wait for nobody.
        self._answer(msg.reply, (chat_id, chat.session), on_fail=partial(self._abandon, chat))
        log.info("chat_requested", chat_id=chat_id, department=chat.department)
        self._route(chat)

    def _abandon(self, chat: _Chat) -> None:
        if self._chats.get(chat.id) is chat and chat.state is not ChatState.CLOSING:
            self._finish(chat, self._kind(chat), EndReason.VISITOR_LEFT)

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
        online = [a for a in self._members_of(dept.config.id) if a.present]
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
        self._touch(chat)
        head = self._chats[dept.queue[0]].queue_key if dept.queue else None
        if front and head is not None:
            chat.queue_key = head - 1
            dept.queue.appendleft(chat.id)
        else:
            self._queue_seq += 1
            chat.queue_key = self._queue_seq
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
        self.stats.offers["made"] += len(offer.agents)
        self._offers[offer.id] = offer
        self._timers.set(("offer", offer.id), trio.current_time() + window)
        self._touch(chat)
        for agent_id in offer.agents:
            agent = self._agents[agent_id]
            agent.offers.add(offer.id)
            self._push(agent, self._offer_event(offer, chat, agent, window))
        log.info(
            "offer_made",
            chat_id=chat.id,
            department=chat.department,
            offer_id=offer.id,
            kind=offer.kind,
            agents=sorted(offer.agents),
        )

    @staticmethod
    def _offer_event(offer: _Offer, chat: _Chat, agent: _Agent, window: float) -> Offer:
        return Offer(
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
            self._touch(chat)

    def _visitor_back(self, msg: m.VisitorBack) -> None:
        chat = self._chats.get(msg.chat_id)
        if self._timers.cancel(("visitor", msg.chat_id)) and chat is not None:
            self._touch(chat)

    # --- agents ---------------------------------------------------------------------------------

    def _set_presence(self, msg: m.SetPresence) -> None:
        agent = self._agents.get(msg.agent_id)
        if agent is None:
            self._answer(msg.reply, EngineError("not_found", f"no agent {msg.agent_id!r}"))
            return
        status = agent.status if msg.status is None else msg.status
        ringtone = agent.ringtone if msg.ringtone is None else msg.ringtone
        if status is AgentStatus.ONLINE and agent.status is not AgentStatus.ONLINE:
            off = [d for d in agent.departments if not self._dept_chat_on(d)]
            if len(off) == len(agent.departments):
                self._answer(
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
        self._presence.add(agent.id)  # stored with this iteration's journal write
        self._touches += 1
        if went_offline:
            self._withdraw_agent_offers(agent, "offline")
        elif status is AgentStatus.ONLINE:
            self._dirty.update(agent.departments)
        self._push(agent, StatusChanged(status=status.value, ringtone=ringtone))
        log.info("presence", agent_id=agent.id, status=status.value, ringtone=ringtone)
        self._answer(msg.reply, (status, ringtone))

    def _dept_chat_on(self, dept_id: str) -> bool:
        dept = self._depts.get(dept_id)
        return dept is not None and dept.config.chat_enabled

    def _connected(self, msg: m.Connected) -> None:
        agent = self._agents.get(msg.agent_id)
        if agent is None:
            return
        if not msg.first and msg.outlet is not None:  # another tab: show it the open offers
            outlet, now = msg.outlet, trio.current_time()
            for offer_id in sorted(agent.offers):
                offer = self._offers[offer_id]
                deadline = self._timers.deadline(("offer", offer_id))
                window = max(0.0, (deadline if deadline is not None else now) - now)
                event = self._offer_event(offer, self._chats[offer.chat_id], agent, window)
                self._effects.do(partial(_push_to, outlet, event))
            return
        agent.connected = True
        if agent.grace:
            agent.grace = False
            self._timers.cancel(("agent", agent.id))
            self._touch_agent(agent)
        if agent.recovering:  # the first connection after a restart: say what the agent holds
            agent.recovering = False
            for chat_id in sorted(agent.chats):
                role = "owner" if self._chats[chat_id].owner == agent.id else "invitee"
                self._push(agent, ChatAssigned(chat_id=chat_id, role=role))
        now = trio.current_time()
        for offer_id in sorted(agent.offers):  # only offers restored at start are still open here
            offer = self._offers[offer_id]
            deadline = self._timers.deadline(("offer", offer_id))
            window = max(0.0, (deadline if deadline is not None else now) - now)
            self._push(agent, self._offer_event(offer, self._chats[offer.chat_id], agent, window))
        self._dirty.update(agent.departments)

    def _disconnected(self, msg: m.Disconnected) -> None:
        agent = self._agents.get(msg.agent_id)
        if agent is None:
            return
        agent.connected = False
        self._withdraw_agent_offers(agent, "disconnected")
        if agent.chats:
            self._timers.set(("agent", agent.id), trio.current_time() + self._agent_grace)
            agent.grace = True
            self._touch_agent(agent)

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
                self._push(self._agents[chat.owner], ChatAssigned(chat_id=chat.id, role="owner"))
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
        self._touch(chat)
        self._tell(chat, m.Part(agent_id=agent.id, event=event, detail=detail))
        self._push(agent, ChatRemoved(chat_id=chat.id, reason=event))
        self._dirty.update(agent.departments)

    def _available_agents(self, msg: m.AvailableAgents) -> None:
        if msg.department and msg.department not in self._depts:
            self._answer(msg.reply, EngineError("not_found", f"no department {msg.department!r}"))
            return
        agents = self._members_of(msg.department) if msg.department else self._agents.values()
        self._answer(
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
            self._answer(
                msg.reply, EngineError("not_in_chat", "you are not in, or offered, that chat")
            )
            return
        self._answer(
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
        offered = offer.offered if offer is not None else closed.offered if closed else frozenset()
        if offer is None and closed is None:
            return EngineError("not_found", "no such offer")
        if agent_id not in offered:
            return EngineError("not_your_offer", "this offer was made to another agent")
        if offer is None:
            assert closed is not None
            if closed.why == "taken":
                return EngineError("offer_taken", "another agent accepted this chat first")
            return EngineError("stale_offer", f"this offer is no longer open ({closed.why})")
        if agent_id not in offer.agents:
            return EngineError("stale_offer", "this offer is no longer open to you")
        return offer

    def _accept(self, msg: m.Accept) -> None:
        closed = self._closed_offers.get(msg.offer_id)
        if closed is not None and closed.taker == msg.agent_id:
            # The agent took this offer already (perhaps told store_unavailable): the same answer
            # again, once the chat's record is written with this iteration.
            chat = self._chats.get(closed.chat_id)
            if chat is not None and msg.agent_id in chat.members:
                self._touch(chat)
                self._answer(msg.reply, chat.id)
                return
        offer = self._check_offer(msg.agent_id, msg.offer_id)
        if isinstance(offer, EngineError):
            self._answer(msg.reply, offer)
            return
        chat = self._chats[offer.chat_id]
        agent = self._agents[msg.agent_id]
        self._touch(chat)
        self._close_offer(offer, "taken", keep=agent.id)
        agent.offers.discard(offer.id)
        agent.chats.add(chat.id)
        now = self._wall()
        if offer.kind == "chat":
            chat.offer = ""
            self._timers.cancel(("queue", chat.id))
            chat.state = check(chat.state, ChatState.ACTIVE)
            chat.owner = agent.id
            if chat.accepted_at is None:
                self.stats.accept_wait.observe(max(0.0, now - chat.started_at))
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
                self._push(source, ChatRemoved(chat_id=chat.id, reason="transferred"))
                role = "owner"
            else:
                self._join(chat, agent, "invited", offer.note)
                role = "invitee"
            self._push(
                source,
                HandoffResult(
                    chat_id=chat.id, kind=offer.kind, outcome="accepted", target=agent.id
                ),
            )
        self._push(agent, ChatAssigned(chat_id=chat.id, role=role))
        self.stats.offers["accepted"] += 1
        log.info(
            "offer_accepted",
            chat_id=chat.id,
            agent_id=agent.id,
            department=chat.department,
            kind=offer.kind,
        )
        self._answer(msg.reply, chat.id)

    def _join(
        self, chat: _Chat, agent: _Agent, event: str, detail: str, replaces: str = ""
    ) -> None:
        chat.members.append(agent.id)
        if agent.id not in chat.ever:
            chat.ever.append(agent.id)
        self._touch(chat)
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
            self._answer(msg.reply, offer)
            return
        self._offer_lapsed(offer, {msg.agent_id}, "declined")
        self._answer(msg.reply, None)

    def _offer_lapsed(self, offer: _Offer, agents: set[str], why: str) -> None:
        """Some of an offer's agents declined, timed out or went away; move on if none are left."""
        outcome = why if why in ("declined", "expired") else "withdrawn"
        self.stats.offers[outcome] += len(agents & offer.agents)
        for agent_id in agents:
            agent = self._agents[agent_id]
            agent.offers.discard(offer.id)
            offer.agents.discard(agent_id)
            self._dirty.update(agent.departments)
            if why != "declined":
                self._push(
                    agent, OfferWithdrawn(offer_id=offer.id, chat_id=offer.chat_id, reason=why)
                )
        chat = self._chats[offer.chat_id]
        self._touch(chat)
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
        self._closed_offers[offer.id] = _Closed(why, offer.offered, keep, offer.chat_id)
        if len(self._closed_offers) > 10_000:
            self._closed_offers.popitem(last=False)
        chat = self._chats.get(offer.chat_id)
        if chat is not None:
            self._touch(chat)
        for agent_id in offer.agents - {keep}:
            self.stats.offers["withdrawn"] += 1
            agent = self._agents[agent_id]
            agent.offers.discard(offer.id)
            self._dirty.update(agent.departments)
            self._push(agent, OfferWithdrawn(offer_id=offer.id, chat_id=offer.chat_id, reason=why))
        offer.agents.clear()

    def _start_handoff(self, msg: m.StartHandoff) -> None:
        result = self._plan_handoff(msg)
        if isinstance(result, EngineError):
            self._answer(msg.reply, result)
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
        self._answer(msg.reply, offer.id)

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
        if chat is None or offer is None or msg.kind not in ("", offer.kind):
            what = f"no {msg.kind}" if msg.kind else "no transfer or invite"
            self._answer(msg.reply, EngineError("no_handoff", f"{what} is waiting"))
            return
        if offer.from_agent != msg.agent_id:
            self._answer(
                msg.reply, EngineError("forbidden", "only its sender can cancel a handoff")
            )
            return
        self._end_handoff(chat, "cancelled")
        self._answer(msg.reply, None)

    def _end_handoff(self, chat: _Chat, outcome: str, *, offer: _Offer | None = None) -> None:
        """Close a chat's pending transfer or invite with `outcome`; ownership does not change."""
        offer = offer or self._offers.get(chat.handoff)
        chat.handoff = ""
        self._touch(chat)
        if offer is None:
            return
        self._close_offer(offer, outcome)
        chat.handoffs.append(self._handoff_record(offer, offer.target, outcome, self._wall()))
        source = self._agents.get(offer.from_agent)
        if source is not None:
            self._push(
                source,
                HandoffResult(
                    chat_id=chat.id, kind=offer.kind, outcome=outcome, target=offer.target
                ),
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
            self._answer(msg.reply, chat)
            return
        if chat.state not in LIVE:
            self._answer(msg.reply, EngineError("invalid_state", f"the chat is {chat.state}"))
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
        self._touch(chat)
        self._tell(chat, m.Notice(event="ending", agent=msg.agent_id, detail=f"{msg.delay:g}"))
        self._answer(msg.reply, None)

    def _cancel_end(self, msg: m.CancelEnd) -> None:
        chat = self._owned(msg.agent_id, msg.chat_id)
        if isinstance(chat, EngineError):
            self._answer(msg.reply, chat)
            return
        if chat.state is not ChatState.ENDING:
            self._answer(msg.reply, EngineError("invalid_state", "no ending is scheduled"))
            return
        self._timers.cancel(("end", chat.id))
        chat.state = check(chat.state, ChatState.ACTIVE)
        self._touch(chat)
        self._tell(chat, m.Notice(event="ending_cancelled", agent=msg.agent_id))
        self._answer(msg.reply, None)

    def _leave_chat(self, msg: m.LeaveChat) -> None:
        chat = self._chats.get(msg.chat_id)
        if chat is None or msg.agent_id not in chat.members:
            self._answer(msg.reply, EngineError("not_in_chat", "you are not in that chat"))
            return
        if chat.owner == msg.agent_id:
            self._answer(
                msg.reply, EngineError("not_owner", "the owner ends or transfers a chat instead")
            )
            return
        self._part(chat, self._agents[msg.agent_id], "left", "")
        self._answer(msg.reply, None)

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
        self.stats.tickets[kind.value] += 1
        log.info(
            "chat_finished",
            chat_id=chat.id,
            department=chat.department,
            agent_id=chat.owner,
            kind=kind.value,
            reason=reason.value,
        )
        chat.final = m.Finish(
            kind=kind,
            reason=reason.value,
            owner=chat.owner,
            agents=tuple(chat.ever),
            handoffs=tuple(chat.handoffs),
            accepted_at=chat.accepted_at,
        )
        self._touch(chat)
        self._effects.do(partial(self._tell_finish, chat, chat.final))

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
        self._effects.do(partial(self._tell_now, chat, msg))

    @staticmethod
    def _tell_now(chat: _Chat, msg: m.ToSession) -> None:
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
                self._answer(reply, msg.ticket_id)
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
            self._answer(reply, EngineError("internal", "the chat failed; it is saved as failed"))
        if chat.state is not ChatState.CLOSING:
            self._finish(chat, TicketKind.FAILED, EndReason.CRASHED)
        if msg.snapshot is not None:
            # Stored with the journal write (retried like it), which also ends the chat's
            # journal: a crashed chat becomes its failed ticket and nothing else.
            self._failed_tickets[chat.id] = _failed_ticket(msg.snapshot, chat, self._wall())
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
                if agent.grace:
                    agent.grace = False
                    self._timers.cancel(("agent", agent.id))
                    self._touch_agent(agent)
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

    def _live_chats(self, msg: m.LiveChats) -> None:
        self._answer(
            msg.reply,
            tuple(
                LiveChat(
                    chat_id=c.id,
                    department=c.department,
                    question=c.question,
                    visitor=c.visitor,
                    started_at=c.started_at,
                    resume_key=c.resume_key,
                )
                for c in self._chats.values()
                if c.state is not ChatState.CLOSING
            ),
        )

    def _inspect(self, msg: m.Inspect) -> None:
        if msg.chat_id:
            chat = self._chats.get(msg.chat_id)
            self._answer(msg.reply, self._chat_view(chat) if chat is not None else None)
        elif msg.agent_id:
            agent = self._agents.get(msg.agent_id)
            self._answer(msg.reply, self._agent_view(agent) if agent is not None else None)
        else:
            self._answer(msg.reply, self.view())

    def view(self) -> RouterView:
        """A consistent picture of ownership, capacity, offers and queues."""
        return RouterView(
            chats={c.id: self._chat_view(c) for c in self._chats.values()},
            agents={a.id: self._agent_view(a) for a in self._agents.values()},
            queues={d.config.id: tuple(d.queue) for d in self._depts.values()},
            timers=len(self._timers),
        )

    def _chat_view(self, c: _Chat) -> ChatView:
        return ChatView(
            id=c.id,
            department=c.department,
            state=c.state.value,
            owner=c.owner,
            members=tuple(c.members),
            offer_agents=tuple(sorted(self._offers[c.offer].agents)) if c.offer else (),
            handoff=c.handoff,
        )

    @staticmethod
    def _agent_view(a: _Agent) -> AgentView:
        return AgentView(
            id=a.id,
            status=a.status.value,
            connected=a.connected,
            capacity=a.capacity,
            chats=tuple(sorted(a.chats)),
            offers=tuple(sorted(a.offers)),
            departments=a.departments,
            recovering=a.recovering,
        )

    def _shutdown(self, msg: m.Shutdown) -> None:
        self._stopping = msg.reply
        for chat in list(self._chats.values()):
            if chat.state is not ChatState.CLOSING:
                self._finish(chat, self._kind(chat), EndReason.SHUTDOWN)
        for agent in self._agents.values():  # no chat is left for a grace to keep
            if agent.grace:
                agent.grace = False
                self._timers.cancel(("agent", agent.id))
                self._touch_agent(agent)
        self._maybe_stopped()

    def _maybe_stopped(self) -> None:
        if self._stopping is not None and not self._chats:
            self._answer(self._stopping, None)


def _push_to(outlet: Outlet, event: Event) -> None:
    outlet.push(event)  # a slow outlet is closed by the push itself


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
