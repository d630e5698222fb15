"""The wire's vocabulary: the request schema table, the event table, limits, and frame objects.

Theory of operation
-------------------
Every request type of the protocol is one entry of :data:`REQUESTS`, written with a handful of
field constructors that read like the specification::

    _req("rate", VISITOR, string("rating", choices=RATINGS), string("comment?", COMMENT_LEN))

A name ending in ``?`` marks an optional field; ``at_least_one`` and ``needs`` state the few rules
that span fields (a transfer names a target; an agent's hello carries a token). Each field carries
its wire type, its limits (string lengths are counted in UTF-8 bytes, list lengths in items,
numbers as inclusive ranges) and, for a few fields, the roles it applies to: the visitor's ``send``
has no ``chat_id`` because a visitor has one chat, while the agent's ``send`` requires one. Adding
a request type or an optional field is one entry or one constructor call here; the codec
(``codec.py``) interprets the table and never names a request type, and a test checks
protocol/SPEC.md against the table.

Decoded frames are frozen, slotted, keyword-only dataclasses with read-only mappings, so a frame can
be handed to any task without copying. A gateway dispatches on ``request.type`` and reads fields
with ``request.require(name, str)`` / ``request.get(name, float, 0.0)``, which mypy understands.

:data:`EVENTS` names every event the server pushes, who receives it and its fields; the encoder
refuses names that are not in it, so events and SPEC.md cannot drift apart silently.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar, overload

__all__ = [
    "ALL_ROLES",
    "DEFAULT_LIMITS",
    "EVENTS",
    "MAX_REF",
    "PROTOCOL_VERSION",
    "REQUESTS",
    "SERVER_FRAME_LIMITS",
    "SYSTEM_KINDS",
    "ErrorReply",
    "Event",
    "EventSpec",
    "Field",
    "FrameSpec",
    "Kind",
    "Limits",
    "Reply",
    "Request",
    "Role",
    "ServerFrame",
    "boolean",
    "integer",
    "number",
    "string",
    "strings",
]

PROTOCOL_VERSION: Final = 1
"""The protocol version this codec speaks; a client names it in its hello."""

MAX_REF: Final = 2**53 - 1
"""The largest valid ref (and id-like integer): every value is exact in a JavaScript number."""


class Role(enum.StrEnum):
    """Who is on the other end of a connection, as named in its hello."""

    VISITOR = "visitor"
    AGENT = "agent"
    ADMIN = "admin"
    SUPERVISOR = "supervisor"


ALL_ROLES: Final = frozenset(Role)
VISITOR: Final = frozenset({Role.VISITOR})
AGENT: Final = frozenset({Role.AGENT})
ADMIN: Final = frozenset({Role.ADMIN})
STAFF: Final = frozenset({Role.AGENT, Role.ADMIN})
SUPERVISOR: Final = frozenset({Role.SUPERVISOR})
SUPERVISING: Final = frozenset({Role.SUPERVISOR, Role.ADMIN})  # admins supervise every department
IN_CHAT: Final = frozenset({Role.AGENT, Role.SUPERVISOR})  # a supervisor once it barged in


class Kind(enum.Enum):
    """A field's wire type; the value is the name SPEC.md uses for it."""

    STR = "string"
    INT = "integer"
    FLOAT = "number"
    BOOL = "boolean"
    STR_LIST = "list of strings"


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One request field: its wire type, whether it must be present, and its limits."""

    name: str
    kind: Kind
    required: bool = True
    min_len: int = 0  # strings: UTF-8 bytes; lists: items
    max_len: int = 0  # strings: UTF-8 bytes; lists: items
    item_min_len: int = 0  # list items: UTF-8 bytes
    item_max_len: int = 0  # list items: UTF-8 bytes
    lo: float | None = None  # numbers: inclusive bounds
    hi: float | None = None
    choices: tuple[str, ...] = ()
    roles: frozenset[Role] | None = None  # None: the field applies to every role

    @property
    def constraint(self) -> str:
        """The field's limits in words, as SPEC.md and error messages state them."""
        if self.choices:
            return "one of " + ", ".join(f"`{choice}`" for choice in self.choices)
        if self.kind is Kind.STR:
            return f"{self.min_len}..{self.max_len} bytes"
        if self.kind is Kind.STR_LIST:
            return (
                f"{self.min_len}..{self.max_len} items, "
                f"each {self.item_min_len}..{self.item_max_len} bytes"
            )
        if self.kind in (Kind.INT, Kind.FLOAT):
            return _range_text(self.lo, self.hi)
        return "true or false"

    def applies_to(self, role: Role | None) -> bool:
        """Whether a connection with ``role`` (None: not yet known) may carry this field."""
        return self.roles is None or role is None or role in self.roles

    def required_for(self, role: Role | None) -> bool:
        """Whether the field must be present for ``role``; role-scoped fields need a known role."""
        if not self.required:
            return False
        return self.roles is None or (role is not None and role in self.roles)


def _range_text(lo: float | None, hi: float | None) -> str:
    def show(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else str(value)

    if lo is not None and hi is not None:
        return f"{show(lo)}..{show(hi)}"
    if lo is not None:
        return f">= {show(lo)}"
    if hi is not None:
        return f"<= {show(hi)}"
    return "any finite value"


def _split(name: str) -> tuple[str, bool]:
    """``"email?"`` -> ``("email", False)``: a trailing ``?`` marks an optional field."""
    if name.endswith("?"):
        return name[:-1], False
    return name, True


def string(
    name: str,
    max_len: int = 256,
    *,
    min_len: int | None = None,
    choices: Iterable[str] = (),
    roles: frozenset[Role] | None = None,
) -> Field:
    """A string field; required strings default to at least 1 byte, optional ones to 0."""
    bare, required = _split(name)
    allowed = tuple(choices)
    if allowed:
        max_len = max(len(choice.encode()) for choice in allowed)
    if min_len is None:
        min_len = 1 if required else 0
    return Field(
        name=bare,
        kind=Kind.STR,
        required=required,
        min_len=min_len,
        max_len=max_len,
        choices=allowed,
        roles=roles,
    )


def integer(name: str, lo: int = 0, hi: int = MAX_REF) -> Field:
    """An integer field within ``lo..hi``; a boolean is never an integer."""
    bare, required = _split(name)
    return Field(name=bare, kind=Kind.INT, required=required, lo=lo, hi=hi)


def number(name: str, lo: float | None = 0.0, hi: float | None = None) -> Field:
    """A finite float field within ``lo..hi``; integers are accepted and become floats."""
    bare, required = _split(name)
    return Field(name=bare, kind=Kind.FLOAT, required=required, lo=lo, hi=hi)


def boolean(name: str) -> Field:
    """A true/false field."""
    bare, required = _split(name)
    return Field(name=bare, kind=Kind.BOOL, required=required)


def strings(name: str, max_items: int, *, min_items: int = 0, item_max_len: int = 256) -> Field:
    """A list of non-empty strings; it decodes to a tuple."""
    bare, required = _split(name)
    return Field(
        name=bare,
        kind=Kind.STR_LIST,
        required=required,
        min_len=min_items,
        max_len=max_items,
        item_min_len=1,
        item_max_len=item_max_len,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameSpec:
    """One request type: the roles that may send it, its fields, and cross-field rules."""

    type: str
    roles: frozenset[Role]
    fields: tuple[Field, ...]
    at_least_one: tuple[str, ...] = ()  # at least one of these optional fields must be present
    needs: tuple[tuple[str, str, str], ...] = ()  # (field, value, other): value needs other


def _req(
    type_: str,
    roles: frozenset[Role],
    *fields: Field,
    at_least_one: tuple[str, ...] = (),
    needs: tuple[tuple[str, str, str], ...] = (),
) -> FrameSpec:
    names = {f.name for f in fields}
    named = set(at_least_one) | {n for rule in needs for n in (rule[0], rule[2])}
    if len(names) != len(fields) or {"type", "ref"} & names or not named <= names:
        raise ValueError(f"bad field list for {type_!r}")
    return FrameSpec(type=type_, roles=roles, fields=fields, at_least_one=at_least_one, needs=needs)


ID_LEN: Final = 256  # ids, names, tokens, short labels
EMAIL_LEN: Final = 254  # RFC 5321 path limit
TEXT_LEN: Final = 16 * 1024  # a chat message or a draft
QUESTION_LEN: Final = 4 * 1024
NOTE_LEN: Final = 1024  # a transfer or invite note
COMMENT_LEN: Final = 4 * 1024  # a rating comment
DAY: Final = 86_400.0

ROLE_NAMES: Final = tuple(role.value for role in Role)
RATINGS: Final = ("good", "neutral", "bad")
STATUSES: Final = ("online", "offline")
ROUTINGS: Final = ("broadcast", "assigned")
TICKET_VIEWS: Final = ("missed", "department", "agent", "visitor", "all")
CANNED_DELETE_MODES: Final = ("refuse", "delete", "move")
TOKEN_ROLES: Final = ("agent", "supervisor")

_DEPARTMENT_SETTINGS: Final = (
    boolean("chat_enabled?"),
    string("routing?", choices=ROUTINGS),
    number("offer_window?", 1.0, 3600.0),
    number("queue_timeout?", 0.0, 7 * DAY),
    integer("queue_limit?", 0, 100_000),
)

_TABLE: Final = (
    # Every role; hello must be the first request on a connection.
    _req(
        "hello",
        ALL_ROLES,
        integer("version", 0, 65_535),
        string("role", choices=ROLE_NAMES),
        string("token?"),
        string("resume_token?"),
        integer("last_seq?"),
        string("chat_id?", min_len=1),
        needs=(
            ("role", "agent", "token"),
            ("role", "admin", "token"),
            ("role", "supervisor", "token"),
        ),
    ),
    _req("ping", ALL_ROLES),
    # Visitors.
    _req(
        "open_chat",
        VISITOR,
        string("department"),
        string("name"),
        string("email?", EMAIL_LEN),
        string("question", QUESTION_LEN, min_len=0),
        string("browser?"),
        string("os?"),
        string("location?"),
        string("visitor_id?"),
        string("visitor_signature?", 128),
    ),
    _req(
        "send",
        VISITOR | IN_CHAT,
        string("chat_id", roles=IN_CHAT),
        string("text", TEXT_LEN),
        string("client_msg_id?", min_len=1),
    ),
    _req("typing", VISITOR | IN_CHAT, string("chat_id", roles=IN_CHAT), boolean("on")),
    _req("leave", VISITOR),
    _req("rate", VISITOR, string("rating", choices=RATINGS), string("comment?", COMMENT_LEN)),
    # Agents.
    _req("set_status", AGENT, string("status", choices=STATUSES)),
    _req("set_ringtone", AGENT, boolean("on")),
    _req("accept", AGENT, string("offer_id")),
    _req("decline", AGENT, string("offer_id")),
    _req(
        "transfer",
        AGENT,
        string("chat_id"),
        string("to_agent?", min_len=1),
        string("to_department?", min_len=1),
        string("note?", NOTE_LEN),
        at_least_one=("to_agent", "to_department"),
    ),
    _req("cancel_transfer", AGENT, string("chat_id")),
    _req("invite", AGENT, string("chat_id"), string("to_agent"), string("note?", NOTE_LEN)),
    _req("cancel_invite", AGENT, string("chat_id")),
    _req("leave_chat", IN_CHAT, string("chat_id")),
    _req("end_chat", AGENT, string("chat_id"), number("delay?", 0.0, DAY)),
    _req("cancel_end", AGENT, string("chat_id")),
    _req("available_agents", STAFF | SUPERVISOR, string("department?", min_len=1)),
    _req("visitor_panel", AGENT, string("chat_id")),
    _req("canned_suggest", AGENT, string("draft", TEXT_LEN, min_len=0), integer("limit?", 1, 50)),
    _req("canned_pick", AGENT, string("message_id"), string("chat_id")),
    _req(
        "tickets",
        STAFF | SUPERVISOR,
        string("view", choices=TICKET_VIEWS),
        string("department?", min_len=1),
        string("agent?", min_len=1),
        string("visitor_email?", EMAIL_LEN, min_len=1),
        number("since?"),
        number("until?"),
        integer("limit?", 1, 500),
        integer("offset?"),
        needs=(("view", "visitor", "visitor_email"),),
    ),
    _req("ticket", STAFF | SUPERVISOR, integer("ticket_id", 1)),
    _req("mark_handled", STAFF, integer("ticket_id", 1)),
    # Admins.
    _req("department_add", ADMIN, string("id"), string("name"), *_DEPARTMENT_SETTINGS),
    _req(
        "department_update",
        ADMIN,
        string("id"),
        string("name?", min_len=1),
        *_DEPARTMENT_SETTINGS,
    ),
    _req("department_list", ADMIN),
    _req(
        "agent_add",
        ADMIN,
        string("id"),
        string("name"),
        strings("departments", 64, min_items=1),
        integer("capacity?", 0, 1000),
    ),
    _req("agent_remove", ADMIN, string("id")),
    _req("agent_list", ADMIN),
    _req(
        "token_issue",
        ADMIN,
        string("agent_id?", min_len=1),
        string("role?", choices=TOKEN_ROLES),
        string("name?", min_len=1),
        strings("departments?", 64, min_items=1),
        needs=(("role", "supervisor", "name"), ("role", "supervisor", "departments")),
    ),
    _req(
        "audit_list",
        ADMIN,
        number("since?"),
        number("until?"),
        string("actor?", min_len=1),
        string("action?", min_len=1),
        integer("limit?", 1, 1000),
        integer("offset?"),
    ),
    _req("rating_report", ADMIN, number("since?"), number("until?")),
    # Admins: canned messages and their categories.
    _req("canned_category_add", ADMIN, string("name"), string("id?", min_len=1)),
    _req("canned_category_rename", ADMIN, string("id"), string("name")),
    _req(
        "canned_category_delete",
        ADMIN,
        string("id"),
        string("messages?", choices=CANNED_DELETE_MODES),
        string("move_to?", min_len=1),
        needs=(("messages", "move", "move_to"),),
    ),
    _req(
        "canned_add",
        ADMIN,
        string("text", TEXT_LEN),
        string("category"),
        string("department?", min_len=1),
        string("id?", min_len=1),
    ),
    _req(
        "canned_edit",
        ADMIN,
        string("id"),
        string("text?", TEXT_LEN, min_len=1),
        string("category?", min_len=1),
        string("department?", min_len=1),
        boolean("shared?"),
        at_least_one=("text", "category", "department", "shared"),
    ),
    _req("canned_delete", ADMIN, string("id")),
    _req("canned_list", ADMIN, string("department?", min_len=1), string("category?", min_len=1)),
    # Supervisors (and admins, who supervise every department).
    _req("supervise_start", SUPERVISING),
    _req("supervise_stop", SUPERVISING),
    _req("monitor", SUPERVISING, string("chat_id")),
    _req("unmonitor", SUPERVISING, string("chat_id")),
    _req("whisper", SUPERVISING, string("chat_id"), string("text", TEXT_LEN)),
    _req("barge", SUPERVISOR, string("chat_id")),
    _req(
        "reassign",
        SUPERVISING,
        string("chat_id"),
        string("to_agent?", min_len=1),
        string("to_department?", min_len=1),
        string("note?", NOTE_LEN),
        at_least_one=("to_agent", "to_department"),
    ),
)

REQUESTS: Final[Mapping[str, FrameSpec]] = MappingProxyType({spec.type: spec for spec in _TABLE})
"""Every request type, type -> its schema. The codec validates requests against this table."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSpec:
    """One event the server pushes: who receives it, and its required and optional fields."""

    name: str
    audience: frozenset[Role]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


def _event(
    name: str, audience: frozenset[Role], *required: str, optional: tuple[str, ...] = ()
) -> EventSpec:
    return EventSpec(name=name, audience=audience, required=required, optional=optional)


_CHAT_AUDIENCE: Final = VISITOR | AGENT | SUPERVISING  # supervisors: chats they monitor

EVENTS: Final[Mapping[str, EventSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _event("chat_opened", VISITOR, "chat_id", "resume_token", "seq", "department"),
            _event("queued", VISITOR, "chat_id", "position"),
            _event(
                "message",
                _CHAT_AUDIENCE,
                "chat_id",
                "seq",
                "at",
                "author",
                "author_name",
                "text",
                optional=("client_msg_id",),
            ),
            _event(
                "system",
                _CHAT_AUDIENCE,
                "chat_id",
                "seq",
                "at",
                "kind",
                optional=("agent", "agent_name", "delay", "detail"),
            ),
            _event("typing", _CHAT_AUDIENCE, "chat_id", "author", "on"),
            _event("ended", _CHAT_AUDIENCE, "chat_id", "reason", optional=("ticket_id",)),
            _event(
                "offer",
                AGENT,
                "offer_id",
                "chat_id",
                "department",
                "kind",
                "question",
                "visitor",
                "ringtone",
                "expires_in",
                optional=("note", "from_agent"),
            ),
            _event("offer_withdrawn", AGENT, "offer_id", "reason", optional=("chat_id",)),
            _event("handoff_result", AGENT, "chat_id", "kind", "outcome", "target"),
            _event("chat_assigned", AGENT, "chat_id", "role"),
            _event("chat_removed", AGENT, "chat_id", "reason"),
            _event("status", AGENT, "status", "ringtone"),
            _event(
                "whisper",
                AGENT | SUPERVISING,
                "chat_id",
                "seq",
                "at",
                "author",
                "author_name",
                "text",
            ),
            _event("desk_changed", SUPERVISING, "chats", "removed", "queues"),
            _event("shutdown", ALL_ROLES, "reason"),
            _event("error", ALL_ROLES, "code", "message"),
        )
    }
)
"""Every event the server pushes, name -> spec. ``encode_event`` refuses names not listed here."""

SYSTEM_KINDS: Final = (
    "joined",
    "left",
    "transferred",
    "invited",
    "ending",
    "ending_cancelled",
    "ended",
    "requeued",
    "barged",
)
"""The values of a ``system`` event's ``kind`` field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Hard limits applied while decoding, before and after unpacking.

    String lengths are UTF-8 bytes. ``max_depth`` counts nested maps and lists, the top-level map
    being depth 1. Per-field limits from :data:`REQUESTS` apply on top of these global caps.
    """

    max_frame_size: int = 64 * 1024
    max_str_len: int = 16 * 1024
    max_list_len: int = 1024
    max_map_len: int = 256
    max_depth: int = 8

    def __post_init__(self) -> None:
        for name in ("max_frame_size", "max_str_len", "max_list_len", "max_map_len", "max_depth"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{name} must be a positive int, got {value!r}")


DEFAULT_LIMITS: Final = Limits()
"""Limits the server applies to requests."""

SERVER_FRAME_LIMITS: Final = Limits(
    max_frame_size=4 * 1024 * 1024, max_str_len=64 * 1024, max_list_len=10_000, max_map_len=1024
)
"""Limits a client applies to server frames: replies such as ``ticket`` can be large."""

T = TypeVar("T")
D = TypeVar("D")


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A validated request: its type, its ref, and its known fields (unknown ones are dropped).

    Strings are ``str``, integer fields ``int``, number fields ``float`` (never NaN or infinite),
    list fields tuples of ``str``. Absent optional fields are absent from ``fields``.
    """

    type: str
    ref: int
    fields: Mapping[str, object]

    def require(self, name: str, kind: builtins.type[T]) -> T:
        """The value of field ``name``, which must be present and a ``kind``."""
        value = self.fields[name]
        if not isinstance(value, kind):
            raise TypeError(f"field {name!r} of {self.type!r} is {type(value).__name__}")
        return value

    @overload
    def get(self, name: str, kind: builtins.type[T]) -> T | None: ...

    @overload
    def get(self, name: str, kind: builtins.type[T], default: D) -> T | D: ...

    def get(self, name: str, kind: builtins.type[T], default: object = None) -> object:
        """The value of field ``name`` if present (it must then be a ``kind``), else ``default``."""
        if name not in self.fields:
            return default
        return self.require(name, kind)

    def strings(self, name: str) -> tuple[str, ...]:
        """The value of list-of-strings field ``name``; an absent optional list is empty."""
        value = self.fields.get(name, ())
        if not isinstance(value, tuple) or not all(isinstance(item, str) for item in value):
            raise TypeError(f"field {name!r} of {self.type!r} is not a list of strings")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A successful reply to the request with ``ref``; ``result`` holds its result fields."""

    ref: int
    result: Mapping[str, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReply:
    """A failed reply to the request with ``ref``: a wire error code and a human message."""

    ref: int
    code: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A push from the server: the event's name and its fields (maps read-only, lists tuples)."""

    name: str
    fields: Mapping[str, object]


ServerFrame = Reply | ErrorReply | Event
"""What a client decodes from a server frame."""
