"""The one error type of the wire, and every code that may appear on it.

Theory of operation
-------------------
Like h11's ``LocalProtocolError`` / ``RemoteProtocolError``, the wire has one exception,
:class:`ProtocolError`, and the interesting part is the *code* it carries, not its class. A code is
a short stable string that travels to the client inside an error reply
(``{"type": "reply", "ref": ..., "ok": false, "error": {"code": ..., "message": ...}}``) or, when no
``ref`` could be read, inside a ref-less ``error`` event.

The tables below are the single source of truth for codes: protocol/SPEC.md documents exactly these,
and a test checks that every code listed here is documented there. The codec raises the
:data:`CODEC_ERROR_CODES` (and ``forbidden`` when told the connection's role); the gateway and the
engine use the :data:`SERVER_ERROR_CODES`.
:data:`CLOSE_CODES` lists the WebSocket close codes the server uses.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "CLOSE_CODES",
    "CODEC_ERROR_CODES",
    "ERROR_CODES",
    "SERVER_ERROR_CODES",
    "ProtocolError",
]

CODEC_ERROR_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "frame_too_large": "The frame is larger than the frame size limit; it was not unpacked.",
        "malformed": (
            "The frame is not exactly one msgpack map: invalid or truncated msgpack, trailing "
            "bytes, an ext type, a non-string or duplicate map key, invalid UTF-8, a length "
            "declared beyond the end of the frame, or nesting deeper than the depth limit."
        ),
        "unknown_type": "The frame's type is not a request type of this protocol version.",
        "missing_field": "A required field is absent (or nil).",
        "invalid_field": (
            "A field has the wrong type, is out of range, is too long or too short, or is not "
            "one of the allowed values; or a string, binary, array or map anywhere in the frame, "
            "unknown fields included, is over a global limit."
        ),
        "bad_ref": "The request's ref is missing, not an integer, negative, or not below 2**53.",
    }
)

SERVER_ERROR_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "hello_required": "The first request on a connection must be hello.",
        "unsupported_version": "The hello names a protocol version this server does not speak.",
        "unauthorized": (
            "The hello's token is missing, unknown, revoked or issued for another role; or a "
            "resume token was presented with the id of another chat."
        ),
        "forbidden": (
            "The connection's role may not send this request, or the request reaches beyond "
            "what the connection may touch (another agent's handoff, another department's "
            "tickets)."
        ),
        "not_found": (
            "The named department, agent, chat, offer, ticket, canned message or canned category "
            "does not exist."
        ),
        "rate_limited": "Too many requests; slow down and retry later.",
        "too_many_chats": (
            "Too many open chats: per connection, per verified visitor or per address (SPEC.md "
            "section 11); end one, or wait until one ends. The connection stays open."
        ),
        "stale_offer": "The offer expired, was withdrawn or was declined before this answer.",
        "offer_taken": "Another agent accepted the offer first.",
        "not_your_offer": "The offer was addressed to another agent.",
        "capacity_full": (
            "The agent already holds as many chats as its capacity allows (reserved: offers "
            "reserve capacity, so version 1 never sends it)."
        ),
        "chat_off": (
            "The department's chat is switched off: a transfer to it, or going online while "
            "chat is off in every department of the agent."
        ),
        "agent_unavailable": (
            "The transfer or invite target is offline, disconnected, full, or (for a "
            "department) has no eligible agent."
        ),
        "not_in_chat": (
            "The agent is not a participant of that chat, or the chat does not exist or ended."
        ),
        "not_owner": "Only the agent that owns the chat may do this.",
        "handoff_pending": "A transfer or invite for this chat is already waiting for an answer.",
        "no_handoff": "There is no pending transfer or invite to cancel.",
        "already_rated": "The chat was rated already.",
        "category_not_empty": (
            "The canned category still holds messages; delete it with messages `delete` or "
            "`move` to say what becomes of them."
        ),
        "chat_ended": "The chat ended while the request was on its way; nothing was changed.",
        "slow_consumer": (
            "The connection did not read its events fast enough and was dropped; reconnect."
        ),
        "shutting_down": "The server is stopping and takes no new chats; retry later.",
        "busy": "The server is momentarily overloaded (a mailbox is full); retry shortly.",
        "store_unavailable": (
            "The database could not save the change. A message was not stored (send it again "
            "with the same `client_msg_id`). Any other change may have taken effect, but might "
            "not survive a crash: the events that follow tell what happened."
        ),
        "internal": "An unexpected server fault; the request may or may not have taken effect.",
        "invalid_state": (
            "The request does not fit the current state: a second hello, send before open_chat, "
            "open_chat while a chat is open, rate before the chat ended, cancel_end with no "
            "ending pending, a handoff of a chat that is not active, adding a department, an "
            "agent, a canned message or a canned category whose id exists, and so on."
        ),
    }
)

ERROR_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {**CODEC_ERROR_CODES, **SERVER_ERROR_CODES}
)
"""Every error code that may appear on the wire (codec and server), code -> meaning."""

CLOSE_CODES: Final[Mapping[int, str]] = MappingProxyType(
    {
        1000: (
            "Normal closure by either side; nothing went wrong (for a visitor: also when another "
            "connection resumed its chat)."
        ),
        1001: "Going away: the server is shutting down (a shutdown event was sent first).",
        1008: (
            "Policy violation: no hello before the deadline, the first request was not hello, "
            "a failed hello, a frame without a readable ref was refused (an error event was "
            "sent first), or the agent was removed."
        ),
        1009: "Message too big: a WebSocket message was larger than the frame size limit.",
        1011: "Internal error: the server hit an unexpected fault serving this connection.",
        4000: "Slow consumer: the client did not read its events fast enough.",
        4001: "Heartbeat timeout: no pong answered the server's WebSocket ping in time.",
    }
)


class ProtocolError(Exception):
    """A frame was refused; ``code`` is its wire error code.

    ``ref`` is the request's ref when the frame was a map with a valid ref (reply with an error
    reply), else None (send a ref-less ``error`` event, then close). ``field`` names the
    offending top-level field when there is one.
    """

    code: str
    message: str
    ref: int | None
    field: str | None

    def __init__(
        self, code: str, message: str, *, ref: int | None = None, field: str | None = None
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.ref = ref
        self.field = field

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        rebuild = functools.partial(ProtocolError, ref=self.ref, field=self.field)
        return (rebuild, (self.code, self.message))

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"ProtocolError(code={self.code!r}, message={self.message!r}, "
            f"ref={self.ref!r}, field={self.field!r})"
        )
