"""The desk board: what chat sessions leave for the supervisors' desk without sending a message.

A supervisor's desk shows each live chat's last message time, and changes as lines come in. The
board keeps the first without any message: after each batch of lines a session writes the newest
line's time into `last_lines` (one dict store, in the trio thread, like every write to it). The
second needs the router to hear of the batch (`Activity`), which is only worth it while somebody
watches: the router keeps `watchers` at the number of desks open, and a session builds and sends
no `Activity` while it is 0. When a desk opens later, the router reads the times from the board,
so even a chat that has been quiet since shows its last message time.

Only the trio thread reads or writes the board: no lock, no await.
"""

from __future__ import annotations

__all__ = ["DeskBoard"]


class DeskBoard:
    """Shared by the router and the sessions of one engine (see the module docstring)."""

    __slots__ = ("last_lines", "watchers")

    def __init__(self) -> None:
        #: chat id -> when its newest line was written; written by sessions, pruned by the router
        self.last_lines: dict[str, float] = {}
        #: how many supervisors' desks are open; written by the router only
        self.watchers = 0
