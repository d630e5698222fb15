"""Bounded outbound queues: how events leave the actors without ever making them wait.

An `Outlet` is one consumer's queue (an embedded handle, or one WebSocket connection). An `Outbox`
is everything one participant reads through: a visitor has one outlet, an agent one per open
connection. Pushing never blocks: an outlet that is full belongs to a slow consumer; it is closed
(its reader sees `EngineError("slow_consumer")` once it has drained what was queued) and the outbox
forgets it, so one slow reader never slows a chat. Pushes happen from actor code without awaiting,
so on trio's single thread a push is atomic.

A consumer that can take an event without waiting (a WebSocket connection: encode the frame, append
it to its own bounded queue) attaches a `Sink` instead of running a task that reads the outlet:
from then on a push calls the sink directly, with no queue and no wake-up in between. The sink
keeps the fan-out rule: it never waits, and answers False when its own queue is full (the outlet
is then closed as a slow consumer's). Events queued before the sink was attached, and replays,
reach it through `Sink.replay`, which never counts as slow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol

import trio

from ..model.errors import EngineError
from ..model.events import Event


class Sink(Protocol):
    """Where an outlet delivers when its consumer takes events without waiting (no reader task).

    Every method is called from actor code and MUST NOT block or raise.
    """

    def push(self, event: Event) -> bool:
        """Take one live event; False if the consumer fell behind (its queue is full)."""

    def replay(self, events: Sequence[Event]) -> None:
        """Take earlier events (queued before the sink, a resume, a newcomer's transcript)."""

    def closed(self, kicked: bool) -> None:
        """The outlet closed: `kicked` if as a slow consumer, else by its owner or the engine."""


class Outlet:
    """One consumer's bounded event queue."""

    __slots__ = ("_backlog", "_recv", "_send", "_shut", "_sink", "_size", "_waiting", "kicked")

    def __init__(self, size: int) -> None:
        # The queue and the backlog are made when first needed: an outlet that gets a sink before
        # anything is queued (a WebSocket connection's) never holds either.
        self._size = size
        self._send: trio.MemorySendChannel[Event] | None = None
        self._recv: trio.MemoryReceiveChannel[Event] | None = None
        self._backlog: deque[Event] | None = None  # a replayed transcript, read before the queue
        self._waiting: trio.CancelScope | None = None  # a reader's wait, cancelled by a replay
        self._sink: Sink | None = None
        self._shut = False
        self.kicked = False

    def _queue(self) -> tuple[trio.MemorySendChannel[Event], trio.MemoryReceiveChannel[Event]]:
        if self._send is None or self._recv is None:
            self._send, self._recv = trio.open_memory_channel[Event](self._size)
            if self._shut:
                self._send.close()
        return self._send, self._recv

    def attach(self, sink: Sink) -> None:
        """Deliver to `sink` from now on, starting with what is queued (see the module docstring).

        An outlet that was closed already reports it to the sink at once.
        """
        sink.replay(self.pending())
        if self._shut:  # closed before the sink came: the sink learns it now
            sink.closed(self.kicked)
            return
        self._sink = sink

    def push(self, event: Event) -> bool:
        """Queue `event`; returns False (and closes the outlet) if the consumer fell behind."""
        sink = self._sink
        if sink is not None:
            if sink.push(event):
                return True
            self.kicked = True
            self.close()
            return False
        if self._shut:
            return False
        try:
            self._queue()[0].send_nowait(event)
        except trio.WouldBlock:
            self.kicked = True
            self.close()
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
        if self._sink is not None:
            self._sink.replay(tuple(events))
            return
        if self._backlog is None:
            self._backlog = deque()
        self._backlog.extend(events)
        if self._backlog and self._waiting is not None:
            self._waiting.cancel()

    def close(self) -> None:
        """Stop queueing; the reader drains what is queued and then stops (a sink is told)."""
        self._shut = True
        if self._send is not None:
            self._send.close()
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.closed(self.kicked)

    async def receive(self) -> Event:
        """The next event; raises EngineError("slow_consumer") or trio.EndOfChannel when done.

        The backlog comes first, also when it is filled while the reader waits: `replay` cancels
        the wait (a cancelled receive takes nothing from the queue) and the reader looks again.
        """
        recv = self._queue()[1]
        while not self._backlog:
            with trio.CancelScope() as self._waiting:
                try:
                    return await recv.receive()
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
        out: list[Event] = []
        if self._backlog:
            out.extend(self._backlog)
            self._backlog.clear()
        if self._recv is None:
            return out
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

    def push(self, event: Event, skip: Outlet | None = None) -> None:
        """Deliver to every live outlet but `skip`, dropping the ones that fell behind."""
        dead = [o for o in self.outlets if o is not skip and not o.push(event)]
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
