"""The one error type the engine raises to its callers.

Every refusal carries a wire error code (a short stable string that frontends switch on) and a human
message that says what to do. The codes are the same the wire protocol uses, so the gateway passes
them through unchanged.
"""

from __future__ import annotations


class EngineError(Exception):
    """A request the engine refused or could not do: a stable `code`, a `message` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EngineError) and (self.code, self.message) == (
            other.code,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))
