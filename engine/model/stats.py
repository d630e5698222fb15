"""What the engine counts for its operators: plain numbers, kept on the message path for free.

Theory of operation:

Rule 1. Only the trio thread writes these numbers, and writing one is an integer addition: no lock,
        no await, no allocation on the message path. The store's writer thread hands its figures
        over through the same callback that delivers its outcomes, so they too are written by the
        trio thread.
Rule 2. Nothing here formats anything. An exporter (the daemon's `/metrics`) reads a consistent
        enough picture when it is scraped and turns it into its own format; gauges that describe
        the present (chats by state, queue lengths) are asked of the router at scrape time instead
        of being kept up to date here.
Rule 3. A histogram is a fixed list of upper bounds and a count per bucket (the last bucket is
        +Inf), with the sum and count of every observation, which is all a Prometheus histogram
        needs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Histogram", "Stats"]

# Seconds: from sub-millisecond hops inside the daemon up to a visitor's long wait for an agent.
FAST_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WAIT_SECONDS = (1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
BATCH_SIZES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)


class Histogram:
    """Counts of observations at or below each bound; the last count is everything above."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it) pairs up to +Inf, as Prometheus has them."""
        pairs, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            pairs.append((bound, total))
        return pairs


@dataclass(slots=True, eq=False)
class Stats:
    """The engine's counters and histograms (see the module docstring)."""

    #: offers of chats, transfers and invites by outcome: made, accepted, declined, expired,
    #: withdrawn (taken by someone else, cancelled, or the agent went away)
    offers: Counter[str] = field(default_factory=Counter)
    #: tickets written, by kind (transcript, missed, failed)
    tickets: Counter[str] = field(default_factory=Counter)
    #: seconds from a visitor's request to an agent's accept
    accept_wait: Histogram = field(default_factory=lambda: Histogram(WAIT_SECONDS))
    #: seconds one group commit of the store took, and how many jobs it carried
    commit_seconds: Histogram = field(default_factory=lambda: Histogram(FAST_SECONDS))
    commit_batch: Histogram = field(default_factory=lambda: Histogram(BATCH_SIZES))
    #: the router's loop iterations; a number that stops growing under load means a stalled loop
    loop_turns: int = 0
    #: changes of who can take chats where: an agent's status, its first connection opening or
    #: its last closing, an agent or department added, changed or removed. A reader that keeps
    #: an answer about who is online compares it to tell when to ask again.
    presence_changes: int = 0
