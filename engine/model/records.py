"""Plain records the engine hands out and stores: visitors, departments, agents, tickets.

Every record is a frozen, slotted, keyword-only dataclass. Times are wall-clock seconds since the
epoch (float) so that they survive a restart and mean the same thing in every process.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

WHISPER: Final = "whisper"
"""The kind of a transcript line that is a supervisor's note to the agents (internal)."""


class RoutingMode(enum.StrEnum):
    """How a department offers a chat: to every eligible agent at once, or to one at a time."""

    BROADCAST = "broadcast"
    ASSIGNED = "assigned"


class AgentStatus(enum.StrEnum):
    """Whether an agent takes chats."""

    ONLINE = "online"
    OFFLINE = "offline"


class TicketKind(enum.StrEnum):
    """What a ticket records: a conversation, a chat nobody took, or a chat lost to a fault."""

    TRANSCRIPT = "transcript"
    MISSED = "missed"
    FAILED = "failed"


class EndReason(enum.StrEnum):
    """Why a chat ended; stored on its ticket."""

    AGENT_ENDED = "agent_ended"
    VISITOR_LEFT = "visitor_left"
    NO_AGENT_ONLINE = "no_agent_online"
    CHAT_OFF = "chat_off"
    QUEUE_FULL = "queue_full"
    QUEUE_TIMEOUT = "queue_timeout"
    OFFER_TIMEOUT = "offer_timeout"
    ALL_DECLINED = "all_declined"
    SHUTDOWN = "shutdown"
    CRASHED = "crashed"


class Rating(enum.StrEnum):
    """A visitor's satisfaction rating of a finished chat."""

    GOOD = "good"
    NEUTRAL = "neutral"
    BAD = "bad"


@dataclass(frozen=True, slots=True, kw_only=True)
class Visitor:
    """Who opened a chat, as the visitor's widget reported it.

    Everything a visitor says about itself is a claim, shown to agents and never trusted, except
    `visitor_id`: an identity that whoever opened the chat vouches for (the embedding application
    for a user it signed in; the daemon for an id signed by the embedding site). The visitor
    panel links a visitor's chats and tickets by `visitor_id` alone, so leave it empty for
    anything the visitor merely typed and put such an id in `claimed_id`.
    """

    name: str
    email: str = ""
    browser: str = ""
    os: str = ""
    location: str = ""
    visitor_id: str = ""  # verified: links history
    claimed_id: str = ""  # an id the visitor gave that nobody verified: shown, links nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class Department:
    """A department's routing settings."""

    id: str
    name: str
    chat_enabled: bool = True
    routing: RoutingMode = RoutingMode.BROADCAST
    offer_window: float = 30.0
    queue_timeout: float = 300.0
    queue_limit: int = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """An agent's settings; status and ringtone are stored the moment they change."""

    id: str
    name: str
    departments: tuple[str, ...]
    capacity: int = 3
    status: AgentStatus = AgentStatus.OFFLINE
    ringtone: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One numbered line of a chat: a message or a system event (joined, left, transferred...)."""

    seq: int
    at: float
    kind: str  # "message", "whisper" (internal), or a system event name such as "joined"
    author: str  # "visitor", an agent id, or "system"
    text: str = ""
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Handoff:
    """A transfer or invite as it happened, with its note and outcome."""

    kind: str  # "transfer" or "invite"
    from_agent: str
    to_agent: str
    to_department: str
    note: str
    outcome: str  # "accepted", "declined", "timeout", "cancelled"
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticket:
    """The durable record of one chat: a transcript, a missed chat, or a chat lost to a fault."""

    chat_id: str
    kind: TicketKind
    department: str
    question: str
    visitor: Visitor
    entries: tuple[Entry, ...]
    agents: tuple[str, ...]  # everyone who handled the chat, in order of joining
    handoffs: tuple[Handoff, ...] = ()
    started_at: float
    accepted_at: float | None = None
    ended_at: float
    end_reason: EndReason
    id: int | None = None  # assigned by the store
    rating: Rating | None = None
    rating_comment: str = ""
    handled: bool = False  # a missed-chat ticket somebody followed up
    owner: str = field(default="")  # the agent holding the chat when it ended

    def for_visitor(self) -> Ticket:
        """The ticket as its visitor may see it: without whispers, and without the handoffs
        (their notes are for agents)."""
        return dataclasses.replace(self, entries=for_visitor(self.entries), handoffs=())


def for_visitor(entries: Iterable[Entry]) -> tuple[Entry, ...]:
    """The lines a visitor may see: every line but the whispers."""
    return tuple(e for e in entries if e.kind != WHISPER)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finish:
    """How a closing chat's one ticket is to be written (the router decides it, the session writes
    it, the journal keeps it until then)."""

    kind: TicketKind
    reason: str
    owner: str
    agents: tuple[str, ...]
    handoffs: tuple[Handoff, ...]
    accepted_at: float | None

    @classmethod
    def crashed(
        cls,
        *,
        owner: str = "",
        agents: tuple[str, ...] = (),
        handoffs: tuple[Handoff, ...] = (),
        accepted_at: float | None = None,
    ) -> Finish:
        """A chat lost to a fault (a crashed session, a journal record that cannot be read)."""
        return cls(
            kind=TicketKind.FAILED,
            reason=EndReason.CRASHED.value,
            owner=owner,
            agents=agents,
            handoffs=handoffs,
            accepted_at=accepted_at,
        )

    def ticket(
        self,
        *,
        chat_id: str,
        department: str,
        question: str,
        visitor: Visitor,
        entries: Iterable[Entry],
        started_at: float,
        ended_at: float,
    ) -> Ticket:
        """The chat's ticket: this decision together with what the chat itself holds.

        Every ticket the engine makes is built here (the store adds its id, rating and the
        missed-chat follow-up when it reads one back).
        """
        return Ticket(
            chat_id=chat_id,
            kind=self.kind,
            department=department,
            question=question,
            visitor=visitor,
            entries=tuple(entries),
            agents=self.agents,
            handoffs=self.handoffs,
            started_at=started_at,
            accepted_at=self.accepted_at,
            ended_at=ended_at,
            end_reason=EndReason(self.reason),
            owner=self.owner,
        )
