"""Read-only pictures of the router's state: transfer menus, admin views, invariant checks."""

from __future__ import annotations

from dataclasses import dataclass

from .records import Ticket, Visitor


@dataclass(frozen=True, slots=True, kw_only=True)
class Availability:
    """An agent who can take a chat now, for transfer and invite menus."""

    id: str
    name: str
    departments: tuple[str, ...]
    load: int
    capacity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatView:
    """One live chat as the router sees it."""

    id: str
    department: str
    state: str
    owner: str
    members: tuple[str, ...]
    offer_agents: tuple[str, ...]  # agents holding an open offer for this chat
    handoff: str  # id of a pending transfer or invite, or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentView:
    """One agent's presence and load as the router sees it."""

    id: str
    status: str
    connected: bool
    capacity: int
    chats: tuple[str, ...]
    offers: tuple[str, ...]
    departments: tuple[str, ...]
    #: Restored at start and not connected since (offers restored with it wait for it).
    recovering: bool = False

    @property
    def load(self) -> int:
        return len(self.chats) + len(self.offers)


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """Whether the engine can serve: its router answers, and its store commits a write."""

    router: bool
    store: bool

    @property
    def ok(self) -> bool:
        return self.router and self.store

    @property
    def reason(self) -> str:
        """What is wrong, for a health check's answer ("" when nothing is)."""
        if not self.router:
            return "router_stalled"
        return "" if self.store else "store_unavailable"


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterView:
    """Ownership, capacity, offers and queues at one instant."""

    chats: dict[str, ChatView]
    agents: dict[str, AgentView]
    queues: dict[str, tuple[str, ...]]
    timers: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveChat:
    """A live chat as its frontend opened it: what a restarted gateway needs to know it again."""

    chat_id: str
    department: str
    question: str
    visitor: Visitor
    started_at: float
    resume_key: str  # what the frontend gave open_chat, or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSummary:
    """One chat of a visitor, live or ended, as the visitor panel lists it."""

    chat_id: str
    department: str
    question: str
    started_at: float
    state: str  # a live chat's state, or "ended"
    agents: tuple[str, ...]
    ticket_id: int | None = None

    @classmethod
    def of_ticket(cls, ticket: Ticket) -> ChatSummary:
        """An ended chat, as its ticket tells it (a live one is summed up by the router)."""
        return cls(
            chat_id=ticket.chat_id,
            department=ticket.department,
            question=ticket.question,
            started_at=ticket.started_at,
            state="ended",
            agents=ticket.agents,
            ticket_id=ticket.id,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VisitorPanel:
    """What an agent sees beside a chat: the visitor, the question, and the visitor's history
    (linked by its verified identity only, within the agent's departments)."""

    chat_id: str
    department: str
    question: str
    started_at: float
    visitor: Visitor
    recent_chats: tuple[ChatSummary, ...]  # newest first, live ones included
    recent_tickets: tuple[Ticket, ...]  # newest first

    @property
    def verified(self) -> bool:
        """Whether the visitor has a verified identity; without one no history is linked."""
        return bool(self.visitor.visitor_id)
