"""helpline's wire: the msgpack codec, the WebSocket gateway and daemon, and the client library.

Import from here; the modules under it are private: ``wire/`` (frames, codec, error codes,
records), ``server/`` (gateway, connections, roles, daemon), ``client.py`` and ``cli/``. The
protocol itself is specified in protocol/SPEC.md.
"""

from .client import Client, ClientClosed, ClientError, connect, connect_stream
from .server.daemon import configure_logging, run_daemon
from .server.gateway import Gateway, serve
from .server.metrics import ServerStats
from .server.metrics import render as render_metrics
from .server.settings import (
    DEFAULT_PORT,
    ConfigError,
    DaemonConfig,
    ServerSettings,
    load_config,
)
from .wire.codec import (
    decode_request,
    decode_server_frame,
    encode_error,
    encode_event,
    encode_reply_error,
    encode_reply_ok,
    encode_request,
)
from .wire.errors import (
    CLOSE_CODES,
    CODEC_ERROR_CODES,
    ERROR_CODES,
    SERVER_ERROR_CODES,
    ProtocolError,
)
from .wire.frames import (
    DEFAULT_LIMITS,
    EVENTS,
    MAX_REF,
    PROTOCOL_VERSION,
    REQUESTS,
    SERVER_FRAME_LIMITS,
    SYSTEM_KINDS,
    ErrorReply,
    Event,
    Limits,
    Reply,
    Request,
    Role,
    ServerFrame,
)

__all__ = [
    "CLOSE_CODES",
    "CODEC_ERROR_CODES",
    "DEFAULT_LIMITS",
    "DEFAULT_PORT",
    "ERROR_CODES",
    "EVENTS",
    "MAX_REF",
    "PROTOCOL_VERSION",
    "REQUESTS",
    "SERVER_ERROR_CODES",
    "SERVER_FRAME_LIMITS",
    "SYSTEM_KINDS",
    "Client",
    "ClientClosed",
    "ClientError",
    "ConfigError",
    "DaemonConfig",
    "ErrorReply",
    "Event",
    "Gateway",
    "Limits",
    "ProtocolError",
    "Reply",
    "Request",
    "Role",
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
]
