"""A virtual clock for trio that jumps to the next deadline as soon as nothing is left to run.

Theory of operation
-------------------
Trio asks its clock one question each time round its run loop, when no task is ready to run: how
long may I sleep, in real seconds, before the next deadline (``deadline_to_sleep_time``)? This
clock's time is virtual and only moves forward by jumps. It is also a trio ``Instrument``, so it
sees every task step. Its answer:

* the next deadline has come: 0 (trio fires it now);
* a task ran since the last question: 0, without jumping. Trio polls for I/O once more without
  sleeping, which collects anything that arrived meanwhile (a thread's result, for one);
* nothing ran since the last question and that poll brought nothing: jump to the next deadline
  and answer 0. Everything was blocked, so nothing could have happened before that deadline;
* the clock is *held* (`pause` ... `resume`, or `hold`): no jump; sleep until I/O wakes the
  loop, a millisecond at most.

Trio's own ``MockClock(autojump_threshold=0)`` behaves alike, with one difference that matters
here: a task that waits for a worker thread counts as blocked, so virtual time may jump while the
thread works. The engine guards its store against that by keeping a task busy while a store
operation runs, but only under a MockClock, and that busy loop cost a replay of 1,000 chats a
third of its CPU time (measured: 4.3 s under MockClock, 2.7 s under this clock). With this clock
a replay holds time still itself where it waits for the store (starting the engine, agents going
online, reading the tickets back, stopping) and lets it run free in between. Then the only store
work in flight is the writing of tickets (the journal of live chats is off), which comes after
every decision about its chat: the router freed the agents' capacity when it ended the chat, and
the ticket's times were taken before the write. A jump during that write only delays, in virtual
time, when the participants hear that the chat ended (an agent's ``end_chat`` may then be
answered ``busy``, which the simulated agent ignores). A test checks that a replay gives the same
outcome for every chat on either clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["VirtualClock"]

_HELD_SLEEP = 0.001  # real seconds a held clock sleeps at most before looking again


class VirtualClock(trio.abc.Clock, trio.abc.Instrument):
    """Virtual time that jumps to the next deadline when every task is blocked (see the module).

    Pass it to trio as both the clock and an instrument:
    ``trio.run(fn, clock=clock, instruments=[clock])``.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._stepped = True
        self._held = False
        #: How many times the clock jumped: a debugging aid.
        self.jumps = 0

    # trio.abc.Clock

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        if deadline <= self._now:
            return 0.0
        if self._held:
            return _HELD_SLEEP
        if self._stepped:  # look once more for I/O before deciding that all is blocked
            self._stepped = False
            return 0.0
        if math.isinf(deadline):
            return _HELD_SLEEP  # nothing to jump to: only I/O can wake anything
        self._now = deadline
        self.jumps += 1
        return 0.0

    # trio.abc.Instrument

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._stepped = True

    # holding

    def pause(self) -> None:
        """Keep virtual time still until `resume`."""
        self._held = True

    def resume(self) -> None:
        """Let virtual time jump again."""
        self._held = False

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep virtual time still for the duration of the block."""
        self.pause()
        try:
            yield
        finally:
            self.resume()
