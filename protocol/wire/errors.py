"""The one error type of the wire, and every code that may appear on it.

Theory of operation
-------------------
Like h11's ``LocalProtocolError`` / ``RemoteProtocolError``, the wire has one exception,
:class:`ProtocolError`, and the interesting part is the *code* it carries, not its class. A code is
a short stable string that travels to the client inside an error reply
(``{"type": "reply", "ref": ..., "ok": false, "error": {"code": ..., "message": ...}}``) or, when no
``ref`` could be read, inside a ref-less ``error`` event.

The tables below are the single source of truth for codes on the wire: protocol/SPEC.md documents
exactly these, and a test checks that every code listed here is documented there. The codec raises
the :data:`CODEC_ERROR_CODES` (and ``forbidden`` when told the connection's role); the
:data:`SERVER_ERROR_CODES` are the few the gateway adds and the engine's own codes, which the engine
defines (``engine/model/errors.py``) and this module imports.
:data:`CLOSE_CODES` lists the WebSocket close codes the server uses.

:func:`wire_error` is the one place where a refusal of the engine or the store becomes a wire
error: the engine's codes pass unchanged, the store's are named as SPEC.md section 8 names them,
and a code the wire does not know becomes ``internal`` (its message keeps the code).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from engine import StoreError
from engine.model.errors import ENGINE_ERROR_CODES, EngineError

__all__ = [
    "CLOSE_CODES",
    "CODEC_ERROR_CODES",
    "ERROR_CODES",
    "SERVER_ERROR_CODES",
    "ProtocolError",
    "wire_error",
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

_GATEWAY_ERROR_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "hello_required": "The first request on a connection must be hello.",
        "unsupported_version": "The hello names a protocol version this server does not speak.",
        "unauthorized": (
            "The hello's token is missing, unknown, revoked or issued for another role; or a "
            "resume token was presented with the id of another chat."
        ),
        "rate_limited": "Too many requests; slow down and retry later.",
        "too_many_chats": (
            "Too many open chats: per connection, per verified visitor or per address (SPEC.md "
            "section 11); end one, or wait until one ends. The connection stays open."
        ),
    }
)

SERVER_ERROR_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        **_GATEWAY_ERROR_CODES,
        **{c: m for c, m in ENGINE_ERROR_CODES.items() if c not in CODEC_ERROR_CODES},
    }
)
"""The codes the gateway adds and the engine's own (engine/model/errors.py), code -> meaning."""

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


_STORE_PASSED: Final = frozenset({"not_found", "already_rated"})
"""The codes of a ``StoreError`` that reach the wire as they are; any other is store_unavailable."""

_STORE_RENAMED: Final[Mapping[str, str]] = MappingProxyType(
    {"store_busy": "busy", "store_closed": "store_unavailable", "store_failed": "store_unavailable"}
)
"""The store's own codes, carried by an ``EngineError``, as the wire names them (SPEC.md 8)."""


def wire_error(exc: EngineError | StoreError | ProtocolError) -> ProtocolError:
    """The wire error for a refusal of the engine, of the store, or of the wire itself."""
    if isinstance(exc, ProtocolError):
        return exc
    code = exc.code
    if isinstance(exc, StoreError) and code not in _STORE_PASSED:
        code = "store_unavailable"
    code = _STORE_RENAMED.get(code, code)
    if code not in ERROR_CODES:
        return ProtocolError("internal", f"{code}: {exc.message}")
    return ProtocolError(code, exc.message)
