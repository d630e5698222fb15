"""helpline's engine: actors that route help-desk chats to agents and keep every chat as a ticket.

Import from here; the modules under the layer folders (model, store, canned, actors, api) are
internal and may move.
"""

from .api.engine import Engine, open_engine
from .api.handles import AgentConnection, VisitorChat
from .api.supervision import SupervisorConnection
from .api.wallclock import pin_wall_clock
from .canned.desk import CannedDesk
from .canned.records import CannedCategory, CannedMessage
from .canned.text import fill_placeholders, query_of
from .model.audit import AUDIT_ACTIONS, AuditEntry
from .model.chatstate import ChatState
from .model.config import EngineConfig
from .model.desk import DeskChat, DeskQueue, DeskSnapshot
from .model.errors import EngineError
from .model.events import (
    ChatAssigned,
    ChatEnded,
    ChatMessage,
    ChatRemoved,
    DeskChanged,
    Event,
    HandoffResult,
    Offer,
    OfferWithdrawn,
    Queued,
    StatusChanged,
    SystemEvent,
    Typing,
    WhisperMessage,
)
from .model.hours import Hours
from .model.records import (
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
from .model.stats import Histogram, Stats
from .model.trace import Candidate, RoutingTrace, TraceStep
from .model.views import (
    AgentView,
    Availability,
    ChatSummary,
    ChatView,
    Health,
    LiveChat,
    RouterView,
    VisitorPanel,
)
from .store import lease
from .store.contract import Store
from .store.copy import CopyReport, copy_store
from .store.exclusive import exclusive_use
from .store.sqlite_store import SqliteStore, StoreError
from .store.tickets import MAX_PAGE
from .store.url import StoreLocation, open_store, parse_store_url
from .store.writer import hold_clock_for_store

__all__ = [
    "AUDIT_ACTIONS",
    "MAX_PAGE",
    "Agent",
    "AgentConnection",
    "AgentStatus",
    "AgentView",
    "AuditEntry",
    "Availability",
    "Candidate",
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
    "CopyReport",
    "Department",
    "DeskChanged",
    "DeskChat",
    "DeskQueue",
    "DeskSnapshot",
    "EndReason",
    "Engine",
    "EngineConfig",
    "EngineError",
    "Entry",
    "Event",
    "Handoff",
    "HandoffResult",
    "Health",
    "Histogram",
    "Hours",
    "LiveChat",
    "Offer",
    "OfferWithdrawn",
    "Queued",
    "Rating",
    "RouterView",
    "RoutingMode",
    "RoutingTrace",
    "SqliteStore",
    "Stats",
    "StatusChanged",
    "Store",
    "StoreError",
    "StoreLocation",
    "SupervisorConnection",
    "SystemEvent",
    "Ticket",
    "TicketKind",
    "TraceStep",
    "Typing",
    "Visitor",
    "VisitorChat",
    "VisitorPanel",
    "WhisperMessage",
    "copy_store",
    "exclusive_use",
    "fill_placeholders",
    "hold_clock_for_store",
    "lease",
    "open_engine",
    "open_store",
    "parse_store_url",
    "pin_wall_clock",
    "query_of",
]
