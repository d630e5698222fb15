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
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar, overload

from .fields import MAX_REF, Field, Kind, Role, boolean, integer, number, string, strings
from .limits import DEFAULT_LIMITS, SERVER_FRAME_LIMITS, Limits

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


ALL_ROLES: Final = frozenset(Role)
VISITOR: Final = frozenset({Role.VISITOR})
AGENT: Final = frozenset({Role.AGENT})
ADMIN: Final = frozenset({Role.ADMIN})
STAFF: Final = frozenset({Role.AGENT, Role.ADMIN})
SUPERVISOR: Final = frozenset({Role.SUPERVISOR})
SUPERVISING: Final = frozenset({Role.SUPERVISOR, Role.ADMIN})  # admins supervise every department
IN_CHAT: Final = frozenset({Role.AGENT, Role.SUPERVISOR})  # a supervisor once it barged in


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
    number("overflow_wait?", 0.0, 7 * DAY),
    integer("overflow_queue?", 0, 100_000),
    strings("overflow_to?", 16),
    number("silence_timeout?", 0.0, DAY),
    number("skills_wait?", 0.0, DAY),
    string("hours_timezone?", 64, min_len=1),
    strings("hours_weekly?", 64, item_max_len=32),
    strings("hours_holidays?", 366, item_max_len=10),
)

SHORTCUT_LEN: Final = 64
_CANNED_LABELS: Final = (
    string("title?"),
    string("shortcut?", SHORTCUT_LEN),
    string("reading?"),
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
        strings("skills?", 16, item_max_len=64),
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
    _req(
        "rate",
        VISITOR,
        string("rating?", choices=RATINGS),
        string("comment?", COMMENT_LEN),
        integer("score?", 1, 5),
        at_least_one=("rating", "score"),
    ),
    # Every role: the departments, and whether anyone is online in each.
    _req("departments", ALL_ROLES),
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
    _req("tag", AGENT, string("chat_id"), strings("tags", 32, min_items=1, item_max_len=64)),
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
        string("tag?", 64, min_len=1),
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
        strings("skills?", 64, item_max_len=64),
    ),
    _req(
        "agent_update",
        ADMIN,
        string("id"),
        string("name?", min_len=1),
        strings("departments?", 64, min_items=1),
        integer("capacity?", 0, 1000),
        at_least_one=("name", "departments", "capacity"),
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
    _req("routing_trace", SUPERVISING, string("chat_id")),
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
        *_CANNED_LABELS,
    ),
    _req(
        "canned_edit",
        ADMIN,
        string("id"),
        string("text?", TEXT_LEN, min_len=1),
        string("category?", min_len=1),
        string("department?", min_len=1),
        boolean("shared?"),
        *_CANNED_LABELS,
        at_least_one=("text", "category", "department", "shared", "title", "shortcut", "reading"),
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
    # Admins: webhooks (protocol/server/roles/webhooks.py).
    _req(
        "webhook_add",
        ADMIN,
        string("url", 2048),
        string("secret", min_len=16),
        strings("events?", 16, item_max_len=64),
        string("department?", min_len=1),
        string("id?", min_len=1),
    ),
    _req("webhook_list", ADMIN),
    _req("webhook_remove", ADMIN, string("id")),
    _req("webhook_failures", ADMIN, string("webhook_id?", min_len=1), integer("limit?", 1, 500)),
    _req(
        "webhook_replay",
        ADMIN,
        string("webhook_id?", min_len=1),
        strings("delivery_ids?", 500, item_max_len=64),
    ),
    _req(
        "webhook_discard",
        ADMIN,
        string("webhook_id?", min_len=1),
        strings("delivery_ids?", 500, item_max_len=64),
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
            _event("queued", VISITOR, "chat_id", "position", optional=("eta",)),
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
            _event(
                "ended", _CHAT_AUDIENCE, "chat_id", "reason", optional=("ticket_id", "opens_at")
            ),
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
                optional=("note", "from_agent", "from_agent_name"),
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
    "reassigning",
)
"""The values of a ``system`` event's ``kind`` field."""


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
