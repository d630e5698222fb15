"""The daemon's settings: the gateway's limits and timings, and the TOML file that sets them.

Theory of operation
-------------------
:class:`ServerSettings` holds everything the WebSocket gateway needs besides the engine: where to
listen, which browser origins may connect, and the deadlines and limits that keep one connection
from hurting the others (opening handshake, hello, heartbeat, outbound queue, request rate). Every
field has the default SPEC.md documents, so ``ServerSettings()`` is the embedded default.

:func:`load_config` reads one TOML file (the standard library's ``tomllib``) into a
:class:`DaemonConfig`: the server settings, the engine's :class:`~engine.EngineConfig` (timings,
departments, agents) and the canned messages. Each table is checked against the fields of the
dataclass it fills: an unknown key, a value of the wrong type or an impossible value is a
:class:`ConfigError` naming the key, so a typo never passes silently::

    [server]
    port = 8765
    origins = ["https://help.example.com"]

    [engine]
    visitor_grace = 60

    [[departments]]
    id = "sales"
    name = "Sales"
    routing = "assigned"

    [[agents]]
    id = "ann"
    name = "Ann"
    departments = ["sales"]

    [[canned]]
    id = "hello"
    text = "Hello {visitor.name}, how can I help?"

    [metrics]
    enabled = true    # false: no /metrics, and nothing timed on the message path

    [webhooks]
    max_age = 86400   # seconds before an undeliverable event is given up (see server/webhooks.py)
    retention = 604800  # seconds a delivered event stays in the outbox before it is deleted

Departments and agents listed in the file are stored (added or updated) when the daemon starts;
without a ``[[departments]]`` list the daemon has one department, ``support``. Canned messages
are added when the store lacks their id (their ``category``, default ``general``, is created as
needed); edits made since are kept.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, get_type_hints

from engine import Agent, CannedMessage, Department, EngineConfig, RoutingMode

from ..wire.frames import DEFAULT_LIMITS
from .webhooks import DeliveryPolicy

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ConfigError",
    "DaemonConfig",
    "ServerSettings",
    "load_config",
    "parse_config",
]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8765
DEFAULT_DB: Final = "helpline.db"
DEFAULT_CATEGORY: Final = "general"


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names the key and what is wrong."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """The gateway's address, origin allowlist, deadlines and per-connection limits."""

    #: Interface to listen on.
    host: str = DEFAULT_HOST
    #: TCP port; 0 picks a free one (the daemon prints the URL it got).
    port: int = DEFAULT_PORT
    #: Browser origins allowed to connect (the Origin header, e.g. "https://help.example.com");
    #: empty allows any. When not empty, a handshake without an allowed Origin is refused (403).
    origins: tuple[str, ...] = ()
    #: Seconds a new TCP connection has to complete the WebSocket opening handshake.
    handshake_timeout: float = 10.0
    #: Seconds an open WebSocket has to send its hello.
    hello_timeout: float = 10.0
    #: Seconds between the server's WebSocket pings.
    heartbeat_interval: float = 20.0
    #: Seconds a ping may wait for its pong before the connection is closed with 4001.
    heartbeat_timeout: float = 10.0
    #: Frames (replies and events) queued for one connection; a full queue closes it with 4000.
    outbound_queue: int = 256
    #: Requests per second one connection may send, on average (the token bucket's refill rate).
    rate: float = 20.0
    #: Requests one connection may send in a burst (the token bucket's size).
    burst: int = 60
    #: Seconds a closing handshake may take before the TCP connection is dropped.
    close_timeout: float = 5.0
    #: Bytes read and discarded after the server's close frame (or an HTTP response) while it
    #: waits for the peer to close, so the close frame is not lost to a TCP reset.
    close_drain_bytes: int = 1_048_576
    #: The built web folder served over plain HTTP; empty: web/dist in the helpline checkout.
    web_dir: str = ""
    #: Seconds a shutdown waits for connections to close before it drops them.
    shutdown_timeout: float = 10.0
    #: Live chats one visitor connection may have opened at once (a connection that resumed a
    #: chat shares the count of the connection that opened it); 0: no limit.
    max_chats_per_connection: int = 3
    #: Live chats one verified visitor id may have at once, over all its connections; 0: no limit.
    max_chats_per_visitor: int = 3
    #: Live chats opened from one remote address (IP) at once; 0: no limit.
    max_chats_per_address: int = 20
    #: Whether the per-address limit applies to loopback addresses too (a local reverse proxy
    #: makes every visitor come from loopback: set false there, or raise the limit).
    limit_loopback: bool = True
    #: The secret the embedding site signs visitor ids with (HMAC-SHA256, SPEC.md section 11);
    #: empty: no visitor id is verified, so no visitor's history is linked across chats.
    identity_secret: str = field(default="", repr=False)
    #: Whether the daemon collects metrics and serves ``/metrics`` (the ``[metrics]`` table's
    #: ``enabled``); off, the message path times nothing and ``/metrics`` is 404.
    metrics: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65_535:
            raise ConfigError(f"port must be 0..65535, not {self.port}")
        for name in (
            "handshake_timeout",
            "hello_timeout",
            "heartbeat_interval",
            "heartbeat_timeout",
            "rate",
            "close_timeout",
            "shutdown_timeout",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, not {value}")
        if self.outbound_queue < 1 or self.burst < 1:
            raise ConfigError("outbound_queue and burst must be at least 1")
        for name in ("max_chats_per_connection", "max_chats_per_visitor", "max_chats_per_address"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 (no limit) or more")

    @property
    def max_frame_size(self) -> int:
        """The request frame size limit (the codec's); larger messages are closed with 1009."""
        return DEFAULT_LIMITS.max_frame_size


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    """Everything the daemon runs with: server settings, engine configuration, canned messages."""

    server: ServerSettings = field(default_factory=ServerSettings)
    engine: EngineConfig = field(default_factory=EngineConfig)
    canned: tuple[CannedMessage, ...] = ()
    webhooks: DeliveryPolicy = field(default_factory=DeliveryPolicy)


T = TypeVar("T")
_TOP_LEVEL: Final = frozenset(
    {"server", "engine", "departments", "agents", "canned", "webhooks", "metrics"}
)


def load_config(path: str | os.PathLike[str] | None) -> DaemonConfig:
    """Read the TOML file at ``path`` (None: the embedded defaults); raise ConfigError if bad."""
    if path is None:
        return DaemonConfig()
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)} is not valid TOML: {exc}") from exc
    return parse_config(data)


def parse_config(data: Mapping[str, Any]) -> DaemonConfig:
    """Build a DaemonConfig from an already parsed TOML document."""
    unknown = set(data) - _TOP_LEVEL
    if unknown:
        raise ConfigError(f"unknown table(s) {sorted(unknown)}; expected {sorted(_TOP_LEVEL)}")
    server = _build(ServerSettings, _table(data, "server"), "server")
    metrics = _table(data, "metrics")
    if set(metrics) - {"enabled"}:
        raise ConfigError(f"metrics: unknown key(s) {sorted(set(metrics) - {'enabled'})}")
    if "enabled" in metrics:
        if not isinstance(metrics["enabled"], bool):
            raise ConfigError("metrics.enabled must be true or false")
        server = dataclasses.replace(server, metrics=metrics["enabled"])
    engine_fields = _fields_of(
        _table(data, "engine"), EngineConfig, "engine", skip=("departments", "agents")
    )
    if "departments" in data:
        engine_fields["departments"] = tuple(
            _build(Department, item, f"departments[{i}]", convert={"routing": RoutingMode})
            for i, item in enumerate(_array(data, "departments"))
        )
    if "agents" in data:
        engine_fields["agents"] = tuple(
            _build(Agent, item, f"agents[{i}]", skip=("status", "ringtone"))
            for i, item in enumerate(_array(data, "agents"))
        )
    try:
        engine = EngineConfig(**engine_fields)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"engine: {exc}") from exc
    canned = tuple(_canned(item, i) for i, item in enumerate(_array(data, "canned")))
    _check_references(engine, canned)
    try:
        webhooks = _build(DeliveryPolicy, _table(data, "webhooks"), "webhooks")
    except ValueError as exc:
        raise ConfigError(f"webhooks: {exc}") from exc
    return DaemonConfig(server=server, engine=engine, canned=canned, webhooks=webhooks)


def _canned(item: object, index: int) -> CannedMessage:
    where = f"canned[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a table")
    values = {"category": DEFAULT_CATEGORY, "created_at": 0.0, **item}
    return _build(CannedMessage, values, where)


def _check_references(engine: EngineConfig, canned: tuple[CannedMessage, ...]) -> None:
    ids = [d.id for d in engine.departments]
    if len(set(ids)) != len(ids):
        raise ConfigError("departments: two departments have the same id")
    agent_ids = [a.id for a in engine.agents]
    if len(set(agent_ids)) != len(agent_ids):
        raise ConfigError("agents: two agents have the same id")
    known = set(ids)
    for agent in engine.agents:
        if not agent.departments:
            raise ConfigError(f"agents: {agent.id!r} needs at least one department")
        missing = set(agent.departments) - known
        if missing:
            raise ConfigError(f"agents: {agent.id!r} names unknown department(s) {sorted(missing)}")
    for message in canned:
        if message.department is not None and message.department not in known:
            raise ConfigError(f"canned: {message.id!r} names unknown department")


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _array(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be an array of tables ([[{name}]])")
    return value


def _build(
    cls: type[T],
    values: object,
    where: str,
    *,
    skip: tuple[str, ...] = (),
    convert: Mapping[str, type] | None = None,
) -> T:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where} must be a table")
    fields = _fields_of(values, cls, where, skip=skip)
    for name, to in (convert or {}).items():
        if name in fields:
            try:
                fields[name] = to(fields[name])
            except ValueError as exc:
                raise ConfigError(f"{where}.{name}: {exc}") from exc
    try:
        return cls(**fields)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{where}: {exc}") from exc


def _fields_of(
    values: Mapping[str, Any], cls: type, where: str, *, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check ``values`` against the dataclass ``cls``'s annotated types; return them converted."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}; expected one of {sorted(names)}")
        out[key] = _typed(value, hints[key], f"{where}.{key}")
    return out


def _typed(value: object, hint: Any, where: str) -> object:
    """``value`` as the annotated type ``hint`` wants it, or ConfigError."""
    if isinstance(hint, types.UnionType):  # "str | None": TOML has no null, so only the str
        hint = next(arg for arg in hint.__args__ if arg is not type(None))
    if hint is float:
        if type(value) not in (int, float) or not math.isfinite(float(value)):  # type: ignore[arg-type]
            raise ConfigError(f"{where} must be a number")
        if float(value) < 0:  # type: ignore[arg-type]
            raise ConfigError(f"{where} must not be negative")
        return float(value)  # type: ignore[arg-type]
    if hint is int:
        if type(value) is not int or value < 0:
            raise ConfigError(f"{where} must be a non-negative integer")
        return value
    if hint is bool:
        if type(value) is not bool:
            raise ConfigError(f"{where} must be true or false")
        return value
    if hint is str or (isinstance(hint, type) and issubclass(hint, str)):
        if type(value) is not str or not value:
            raise ConfigError(f"{where} must be a non-empty string")
        return value
    if getattr(hint, "__origin__", None) is tuple:
        if not isinstance(value, list) or not all(type(v) is str and v for v in value):
            raise ConfigError(f"{where} must be a list of non-empty strings")
        return tuple(value)
    raise ConfigError(f"{where} cannot be set from the configuration file")
