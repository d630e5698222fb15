"""Events the engine pushes to visitors and agents, in the order each participant must see them.

Chat lines (`ChatMessage`, `SystemEvent`) carry the chat's sequence number: every participant
and the ticket see one order. The other events are notices about routing and are not numbered.
"""

from __future__ import annotations

from dataclasses import dataclass

from .desk import DeskChat, DeskQueue
from .records import Visitor


@dataclass(frozen=True, slots=True, kw_only=True)
class Queued:
    """The visitor's chat waits in its department's queue at `position` (1 = next)."""

    chat_id: str
    position: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    """A numbered message in a chat, from the visitor or an agent."""

    chat_id: str
    seq: int
    at: float
    author: str  # "visitor" or an agent id
    author_name: str
    text: str
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemEvent:
    """A numbered change in a chat: joined, left, transferred, invited, ending, ended..."""

    chat_id: str
    seq: int
    at: float
    event: str
    agent: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Typing:
    """Someone in the chat started or stopped typing."""

    chat_id: str
    author: str
    on: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatEnded:
    """The chat is over and its ticket is stored (`ticket_id` is None if the store failed)."""

    chat_id: str
    reason: str
    ticket_id: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """An agent is asked to take a chat (`kind` "chat"), a transfer or an invite, by offer_id."""

    offer_id: str
    chat_id: str
    department: str
    kind: str
    question: str
    visitor: Visitor
    ringtone: bool
    expires_in: float
    note: str = ""
    from_agent: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferWithdrawn:
    """An offer made to this agent closed: taken, expired, cancelled, or its chat ended."""

    offer_id: str
    chat_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffResult:
    """How this agent's transfer or invite turned out: accepted, declined, timeout, cancelled."""

    chat_id: str
    kind: str
    outcome: str
    target: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatAssigned:
    """This agent now holds the chat (accepted, transferred in, or joined by invite)."""

    chat_id: str
    role: str  # "owner" or "invitee"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRemoved:
    """This agent is no longer in the chat (transferred away, requeued after disconnect, ended)."""

    chat_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusChanged:
    """The agent's presence changed (from any of its connections)."""

    status: str
    ringtone: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WhisperMessage:
    """A numbered note from a supervisor to the chat's agents; the visitor never sees it."""

    chat_id: str
    seq: int
    at: float
    author: str  # the supervisor
    author_name: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeskChanged:
    """Chats and queues of a supervisor's departments changed: whole rows of the chats that
    changed, the ids of chats that ended (or left the departments), and the queues that moved."""

    chats: tuple[DeskChat, ...]
    removed: tuple[str, ...]
    queues: tuple[DeskQueue, ...]


Event = (
    Queued
    | ChatMessage
    | SystemEvent
    | Typing
    | ChatEnded
    | Offer
    | OfferWithdrawn
    | HandoffResult
    | ChatAssigned
    | ChatRemoved
    | StatusChanged
    | WhisperMessage
    | DeskChanged
)
