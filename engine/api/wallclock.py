"""The engine's wall clock: trio's clock (real or virtual) plus a fixed origin per trio run.

Engines opened one after another in the same run (a restart in a test, under a virtual clock)
agree on what time it is, because the origin is fixed once per run.
"""

from __future__ import annotations

import time

import trio

__all__ = ["pin_wall_clock", "wall_origin"]

_WALL_ORIGIN: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("helpline_wall_origin")


def pin_wall_clock(at_zero: float) -> None:
    """Set this trio run's wall clock: `at_zero` is the wall-clock time (seconds since the epoch)
    at trio time 0, for the engines opened from now on in this run. A replay of recorded traffic
    on a virtual clock pins it so that the engine's hours, tickets and traces fall on the
    recorded days; by default the first engine of a run takes it from `time.time()`."""
    _WALL_ORIGIN.set(at_zero)


def wall_origin() -> float:
    """The wall-clock time at trio time 0 in this run, taken from `time.time()` on first use."""
    try:
        return _WALL_ORIGIN.get()
    except LookupError:
        origin = time.time() - trio.current_time()
        _WALL_ORIGIN.set(origin)
        return origin
