"""The wire's global limits on a frame (SPEC.md section 4): what the server accepts in a request,
and what a client must accept from the server.

Pure: the codec reads them; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_LIMITS", "SERVER_FRAME_LIMITS", "Limits"]


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
