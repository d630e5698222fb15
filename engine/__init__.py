"""helpline's engine: actors that route help-desk chats to agents and keep every chat as a ticket.

Import from here; the underscored modules are private.
"""

from ._canned import CannedCategory, CannedMessage, fill_placeholders, query_of
from ._canned_desk import CannedDesk
from ._chatstate import ChatState
from ._config import EngineConfig
from ._engine import Engine, open_engine
from ._errors import EngineError
from ._events import (
    ChatAssigned,
    ChatEnded,
    ChatMessage,
    ChatRemoved,
    Event,
    HandoffResult,
    Offer,
    OfferWithdrawn,
    Queued,
    StatusChanged,
    SystemEvent,
    Typing,
)
from ._handles import AgentConnection, VisitorChat
from ._records import (
    Agent,
    AgentStatus,
    Department,
    EndReason,
    Entry,
    Handoff,
    Rating,
    RoutingMode,
    Ticket,
    TicketKind,
    Visitor,
)
from ._stats import Histogram, Stats
from ._store import MAX_PAGE, SqliteStore, StoreError, open_store
from ._views import (
    AgentView,
    Availability,
    ChatSummary,
    ChatView,
    LiveChat,
    RouterView,
    VisitorPanel,
)

__all__ = [
    "MAX_PAGE",
    "Agent",
    "AgentConnection",
    "AgentStatus",
    "AgentView",
    "Availability",
    "CannedCategory",
    "CannedDesk",
    "CannedMessage",
    "ChatAssigned",
    "ChatEnded",
    "ChatMessage",
    "ChatRemoved",
    "ChatState",
    "ChatSummary",
    "ChatView",
    "Department",
    "EndReason",
    "Engine",
    "EngineConfig",
    "EngineError",
    "Entry",
    "Event",
    "Handoff",
    "HandoffResult",
    "Histogram",
    "LiveChat",
    "Offer",
    "OfferWithdrawn",
    "Queued",
    "Rating",
    "RouterView",
    "RoutingMode",
    "SqliteStore",
    "Stats",
    "StatusChanged",
    "StoreError",
    "SystemEvent",
    "Ticket",
    "TicketKind",
    "Typing",
    "Visitor",
    "VisitorChat",
    "VisitorPanel",
    "fill_placeholders",
    "open_engine",
    "open_store",
    "query_of",
]
