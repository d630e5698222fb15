"""The public faces of `engine` and `protocol`, pinned so that changing them is deliberate."""

from __future__ import annotations

import pytest

import engine
import protocol

ENGINE = {
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
    "CopyReport",
    "Department",
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
    "LiveChat",
    "MAX_PAGE",
    "Offer",
    "OfferWithdrawn",
    "Queued",
    "Rating",
    "RouterView",
    "RoutingMode",
    "SqliteStore",
    "Stats",
    "StatusChanged",
    "Store",
    "StoreError",
    "StoreLocation",
    "SystemEvent",
    "Ticket",
    "TicketKind",
    "Typing",
    "Visitor",
    "VisitorChat",
    "VisitorPanel",
    "copy_store",
    "fill_placeholders",
    "open_engine",
    "open_store",
    "parse_store_url",
    "query_of",
}

PROTOCOL = {
    "CLOSE_CODES",
    "CODEC_ERROR_CODES",
    "Client",
    "ClientClosed",
    "ClientError",
    "ConfigError",
    "DEFAULT_LIMITS",
    "DEFAULT_PORT",
    "DaemonConfig",
    "ERROR_CODES",
    "EVENTS",
    "ErrorReply",
    "Event",
    "Gateway",
    "Limits",
    "MAX_REF",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "REQUESTS",
    "Reply",
    "Request",
    "Role",
    "SERVER_ERROR_CODES",
    "SERVER_FRAME_LIMITS",
    "SYSTEM_KINDS",
    "ServerFrame",
    "ServerSettings",
    "ServerStats",
    "configure_logging",
    "connect",
    "connect_stream",
    "decode_request",
    "decode_server_frame",
    "encode_error",
    "encode_event",
    "encode_reply_error",
    "encode_reply_ok",
    "encode_request",
    "load_config",
    "render_metrics",
    "run_daemon",
    "serve",
}


@pytest.mark.parametrize(("package", "names"), [(engine, ENGINE), (protocol, PROTOCOL)])
def test_public_names_are_pinned(package: object, names: set[str]) -> None:
    """Each package exports exactly the pinned names, and each of them exists."""
    exported = set(package.__all__)
    assert exported == names
    for name in exported:
        assert getattr(package, name) is not None, name
