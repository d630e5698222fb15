"""What a connection's role provides once its hello succeeded: the connection knows its role
only as this."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from engine import EngineError

from ..wire.frames import Request
from ..wire.records import Fields

__all__ = ["RoleHandler"]


class RoleHandler(Protocol):
    """What a connection's role provides once its hello succeeded."""

    def start(self) -> None:
        """Start the role's pumps and push its first events (after the hello reply)."""

    async def handle(self, request: Request) -> Fields:
        """Serve one request; return the reply's result fields or raise an error with a code."""

    posts: frozenset[str]
    """The request types served by ``post`` (pipelined) instead of ``handle``."""

    async def post(
        self, request: Request, then: Callable[[int | EngineError], None]
    ) -> Callable[[], None]:
        """Hand a chat line over; ``then`` gets its seq (or error). Returns a give-up function."""
