"""Bounded outbound queues: how events leave the actors without ever making them wait.

An `Outlet` is one consumer's queue (an embedded handle, or one WebSocket connection). An `Outbox`
is everything one participant reads through: a visitor has one outlet, an agent one per open
connection. Pushing never blocks: an outlet that is full belongs to a slow consumer; it is closed
(its reader sees `EngineError("slow_consumer")` once it has drained what was queued) and the outbox
forgets it, so one slow reader never slows a chat. Pushes happen from actor code without awaiting,
so on trio's single thread a push is atomic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable

import trio

from ..model.errors import EngineError
from ..model.events import Event


class Outlet:
    """One consumer's bounded event queue."""

    def __init__(self, size: int) -> None:
        self._send, self._recv = trio.open_memory_channel[Event](size)
        self._backlog: deque[Event] = deque()  # a replayed transcript, read before the queue
        self._waiting: trio.CancelScope | None = None  # a reader's wait, cancelled by a replay
        self.kicked = False

    def push(self, event: Event) -> bool:
        """Queue `event`; returns False (and closes the outlet) if the consumer fell behind."""
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.kicked = True
            self._send.close()
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    def replay(self, events: Iterable[Event]) -> None:
        """Hand over lines from before this outlet was listening (a resume, a newcomer's view).

        A transcript can be longer than the queue, so it waits in a backlog of its own that the
        reader takes first: replaying never makes a consumer look slow. A reader that is already
        waiting is woken, so that it takes the replay before anything queued after it.
        """
        self._backlog.extend(events)
        if self._backlog and self._waiting is not None:
            self._waiting.cancel()

    def close(self) -> None:
        """Stop queueing; the reader drains what is queued and then stops."""
        self._send.close()

    async def receive(self) -> Event:
        """The next event; raises EngineError("slow_consumer") or trio.EndOfChannel when done.

        The backlog comes first, also when it is filled while the reader waits: `replay` cancels
        the wait (a cancelled receive takes nothing from the queue) and the reader looks again.
        """
        while not self._backlog:
            with trio.CancelScope() as self._waiting:
                try:
                    return await self._recv.receive()
                except trio.EndOfChannel:
                    if self.kicked:
                        raise EngineError(
                            "slow_consumer",
                            "events were not read fast enough and this connection was dropped;"
                            " reconnect",
                        ) from None
                    raise
                finally:
                    self._waiting = None
        return self._backlog.popleft()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            try:
                yield await self.receive()
            except trio.EndOfChannel:
                return

    def pending(self) -> list[Event]:
        """Everything queued and not yet read (for tests and for draining on close)."""
        out: list[Event] = list(self._backlog)
        self._backlog.clear()
        while True:
            try:
                out.append(self._recv.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return out


class Outbox:
    """The outlets one participant reads through; a push reaches all of them."""

    __slots__ = ("outlets",)

    def __init__(self) -> None:
        self.outlets: list[Outlet] = []

    def push(self, event: Event) -> None:
        """Deliver to every live outlet, dropping the ones that fell behind."""
        dead = [o for o in self.outlets if not o.push(event)]
        for outlet in dead:
            self.outlets.remove(outlet)

    def replay(self, events: Iterable[Event]) -> None:
        """Hand earlier lines to every outlet (see `Outlet.replay`)."""
        events = tuple(events)
        for outlet in self.outlets:
            outlet.replay(events)

    def add(self, outlet: Outlet) -> None:
        self.outlets.append(outlet)

    def remove(self, outlet: Outlet) -> None:
        if outlet in self.outlets:
            self.outlets.remove(outlet)
