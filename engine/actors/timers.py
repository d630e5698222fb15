"""The router's deadline heap: timers are data, not tasks.

The router keeps every pending deadline (offer windows, handoff windows, queue waits, delayed
endings, disconnect graces, retries) in one heap and waits on its mailbox under
``trio.move_on_at(timers.next_deadline())``. Setting a timer again replaces it; cancelling
forgets it.
Stale heap entries are skipped lazily when they surface, so both operations are O(log n) and a
timer fires at most once, at or after its deadline, unless it was cancelled or replaced first.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    """A set of keyed deadlines; each key has at most one live deadline."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._live: dict[K, int] = {}
        self._at: dict[K, float] = {}
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: K) -> bool:
        return key in self._live

    def set(self, key: K, deadline: float) -> None:
        """Arm `key` to fire at `deadline`, replacing any deadline it had."""
        n = next(self._counter)
        self._live[key] = n
        self._at[key] = deadline
        heapq.heappush(self._heap, (deadline, n, key))
        self._compact()

    def cancel(self, key: K) -> bool:
        """Forget `key`'s deadline; returns whether one was armed."""
        self._at.pop(key, None)
        return self._live.pop(key, None) is not None

    def deadline(self, key: K) -> float | None:
        """When `key` fires, or None if it is not armed."""
        return self._at.get(key)

    def next_deadline(self) -> float:
        """The earliest live deadline, or +inf when nothing is armed."""
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def pop_due(self, now: float) -> list[K]:
        """Disarm and return every key whose deadline is at or before `now`, earliest first."""
        due: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, n, key = heapq.heappop(heap)
            if self._live.get(key) == n:
                del self._live[key]
                del self._at[key]
                due.append(key)
        return due

    def _compact(self) -> None:
        # Replaced and cancelled entries stay in the heap until they surface; rebuild when they
        # outnumber the live ones so memory stays proportional to what is armed.
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
            self._heap = [e for e in self._heap if self._live.get(e[2]) == e[1]]
            heapq.heapify(self._heap)
