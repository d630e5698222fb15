"""The router's state: its records of chats, agents, departments and offers, and the primitives
every concern uses (touch a record for the journal, push an event, answer an ask, tell a session).

See the package docstring for the theory of operation and how the modules build the router.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import structlog
import trio

from ...model.chatstate import ChatState
from ...model.desk_events import DeskEvent, DeskEventKind
from ...model.events import (
    Event,
)
from ...model.records import (
    AgentStatus,
    Department,
    EndReason,
    Entry,
    Finish,
    Handoff,
    Ticket,
    TicketKind,
    Visitor,
)
from ...model.stats import Stats
from ...store.contract import Store
from .. import messages as m
from ..effects import Effects
from ..outbox import Outbox
from ..timers import Timers

log = structlog.get_logger("helpline.router")

RETRY = 0.05  # seconds before a tell that found a full mailbox is tried again

TimerKey = tuple[str, str]  # (kind, id): see `firing` for the kinds
Members = dict[str, tuple[str, Outbox]]  # agent id -> (name, outbox), as a session keeps them
SpawnSession = Callable[
    ["Chat", Outbox, Sequence[Entry], Members], trio.MemorySendChannel[m.ToSession]
]


@dataclass(slots=True, eq=False)
class Chat:
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
    told_eta: float | None = None
    skills: tuple[str, ...] = ()  # required of the agent, until relaxed
    relaxed: bool = False  # the skills wait is over: any agent of the department may take it
    tags: list[str] = field(default_factory=list)
    overflowed: list[str] = field(default_factory=list)  # departments it overflowed from
    # supervisors who barged in: id -> (name, the outbox their connections read); journaled
    barged: dict[str, tuple[str, Outbox]] = field(default_factory=dict)
    reassigning: bool = False  # its pending transfer re-offers it after the owner went silent
    queue_key: int | None = None  # orders the department's queue, also after a restart
    final: Finish | None = None  # how the ticket is to be written, once the chat is closing
    # tells that found the session's mailbox full, and answers waiting for them, in order (a
    # list: it is nearly always empty, and an empty deque holds a block of 64 slots per chat)
    tells: list[m.ToSession | Callable[[], None]] = field(default_factory=list)
    waiters: list[m.Reply] = field(default_factory=list)  # asks answered once the ticket is stored

    def finish(self, kind: TicketKind, reason: EndReason, opens_at: float | None = None) -> Finish:
        """How this chat's ticket is to be written, ending now as `kind` for `reason`
        (`opens_at`: when its department opens next, for a chat that came outside the hours)."""
        return Finish(
            kind=kind,
            reason=reason.value,
            owner=self.owner,
            agents=tuple(self.ever),
            handoffs=tuple(self.handoffs),
            accepted_at=self.accepted_at,
            department=self.department,
            tags=tuple(self.tags),
            opens_at=opens_at,
        )


@dataclass(slots=True, eq=False)
class PendingOffer:
    id: str
    chat_id: str
    kind: str  # "chat", "transfer", "invite"
    agents: set[str]  # still open to these
    offered: frozenset[str] = frozenset()  # everyone it was made to
    from_agent: str = ""
    to_department: str = ""
    target: str = ""
    note: str = ""
    #: agents whose seat the store reserved with the write that made the offer (journal Rule 6)
    seated: set[str] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class Unwritten:
    """The keys of what failed journal writes covered (records are written as they are then)."""

    chats: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)
    presence: set[str] = field(default_factory=set)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)
    traces: dict[str, tuple[str, str, float, str]] = field(default_factory=dict)
    events: list[DeskEvent] = field(default_factory=list)  # webhook events, in decision order


class ClosedOffer(NamedTuple):
    """What is kept of a closed offer."""

    why: str
    offered: frozenset[str]  # who it was made to
    taker: str  # who accepted it, if anyone
    chat_id: str


@dataclass(slots=True, eq=False)
class AgentState:
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
    skills: frozenset[str] = frozenset()
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
        """Whether it may be offered something new (never while at or over its capacity)."""
        return self.available and self.load < self.capacity


@dataclass(slots=True, eq=False)
class DeptState:
    config: Department
    queue: deque[str] = field(default_factory=deque)


class RouterState:
    """What the router knows and the primitives that change it; the concerns build on it."""

    def __init__(
        self,
        *,
        inbox: trio.MemoryReceiveChannel[m.ToRouter],
        spawn_session: SpawnSession,
        store: Store,
        wall: Callable[[], float],
        handoff_timeout: float,
        visitor_grace: float,
        agent_grace: float,
        journal: bool = True,
        stats: Stats | None = None,
    ) -> None:
        #: what operators count (engine.model.stats); only ever added to, never awaited
        self.stats = stats or Stats()
        self._inbox = inbox
        self._spawn_session = spawn_session
        self._store = store
        self._wall = wall
        self._handoff_timeout = handoff_timeout
        self._visitor_grace = visitor_grace
        self._agent_grace = agent_grace
        self._journal = journal
        self._timers: Timers[TimerKey] = Timers()
        self._effects = Effects(wake=self._wake)
        self._waiting: trio.CancelScope | None = None  # the mailbox wait, cancelled to wake up
        # what changed since the last journal write
        self._touched: set[str] = set()  # chats
        self._touched_agents: set[str] = set()  # disconnect graces
        self._presence: set[str] = set()  # status and ringtone
        self._failed_tickets: dict[str, Ticket] = {}  # of crashed sessions, not stored yet
        self._forgotten: set[str] = set()  # refused chats: delete any record of them
        self._desk_events: list[DeskEvent] = []  # webhook events, queued with the write
        self._unwritten = Unwritten()  # what failed writes covered, for the retry
        self._touches = 0  # counts changes, so an answer knows whether it reports one
        self._queue_seq = 0
        self._chats: dict[str, Chat] = {}
        self._offers: dict[str, PendingOffer] = {}
        # for clear refusals of late answers, and an accept repeated by the agent that took it
        self._closed_offers: OrderedDict[str, ClosedOffer] = OrderedDict()
        self._agents: dict[str, AgentState] = {}
        self._depts: dict[str, DeptState] = {}
        self._dirty: set[str] = set()  # departments whose queue may now move
        # accepts waiting for the store's capacity check (handshakes), by (offer id, agent id)
        self._claiming: dict[tuple[str, str], list[m.Reply]] = {}
        self._claim_results: list[tuple[tuple[str, str], str, object]] = []  # from the store
        self._stopping: m.Reply | None = None
        self._stopped = False

    def _wake(self) -> None:
        """A journal write or claim committed (or failed): stop waiting on the mailbox."""
        if self._waiting is not None:
            self._waiting.cancel()

    def _touch(self, chat: Chat) -> None:
        """The chat's record changed: journal it with this iteration's write."""
        self._touched.add(chat.id)
        self._touches += 1

    def _emit(self, kind: DeskEventKind, chat: Chat, **data: object) -> None:
        """A webhook event decided now: the outbox gets it with this iteration's journal write
        (model.desk_events), so it exists exactly when the decision is committed."""
        self._desk_events.append(
            DeskEvent(
                kind=kind, chat_id=chat.id, department=chat.department, at=self._wall(), data=data
            )
        )

    def _touch_agent(self, agent: AgentState) -> None:
        self._touched_agents.add(agent.id)
        self._touches += 1

    def _answer(
        self,
        reply: m.Reply,
        value: object,
        on_fail: Callable[[], None] | None = None,
        then: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self._effects.answer(reply, value, on_fail, then)

    def _push(self, agent: AgentState, event: Event) -> None:
        self._effects.do(partial(agent.outbox.push, event))

    def _tell(self, chat: Chat, msg: m.ToSession) -> None:
        self._effects.do(partial(self._tell_now, chat, msg))

    def _tell_now(self, chat: Chat, msg: m.ToSession) -> None:
        chat.tells.append(msg)  # behind any tell still waiting for room
        self._send_tells(chat)

    def _answer_after_tells(self, chat: Chat, reply: m.Reply, value: object) -> None:
        """Answer once the tells decided with it are in the session's mailbox (see Rule 2)."""
        self._answer(reply, value, then=partial(self._after_tells, chat))

    def _after_tells(self, chat: Chat, action: Callable[[], None]) -> None:
        if chat.tells:
            chat.tells.append(action)
        else:
            action()

    def _send_tells(self, chat: Chat) -> None:
        """Hand the waiting tells to the session, oldest first, until its mailbox is full."""
        while chat.tells:
            item = chat.tells[0]
            if callable(item):
                item()
            else:
                try:
                    chat.session.send_nowait(item)
                except trio.WouldBlock:
                    if ("tell", chat.id) not in self._timers:
                        log.warning(
                            "session_mailbox_full", chat_id=chat.id, waiting=len(chat.tells)
                        )
                        self._timers.set(("tell", chat.id), trio.current_time() + RETRY)
                    return
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass  # the session is gone (ActorDown follows); answers still go out
            del chat.tells[0]
        self._timers.cancel(("tell", chat.id))

    def _drop_tells(self, chat: Chat) -> None:
        """The session has stopped: give the waiting answers; the tells have nobody to reach."""
        self._timers.cancel(("tell", chat.id))
        tells, chat.tells = chat.tells, []
        for item in tells:
            if callable(item):
                item()

    def _to_wall(self, key: TimerKey) -> float | None:
        deadline = self._timers.deadline(key)
        return None if deadline is None else self._wall() + (deadline - trio.current_time())

    def _from_wall(self, when: float) -> float:
        return trio.current_time() + (when - self._wall())

    @staticmethod
    def _kind(chat: Chat) -> TicketKind:
        """A chat that ends before anyone took it is missed; once taken it is a transcript."""
        return TicketKind.TRANSCRIPT if chat.accepted_at is not None else TicketKind.MISSED

    def _members_of(self, dept_id: str) -> list[AgentState]:
        return [a for a in self._agents.values() if dept_id in a.departments]

    def _dept_chat_on(self, dept_id: str) -> bool:
        dept = self._depts.get(dept_id)
        return dept is not None and dept.config.chat_enabled

    def _maybe_stopped(self) -> None:
        if self._stopping is not None and not self._chats:
            self._answer(self._stopping, None)
