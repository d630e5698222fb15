"""A connection's request budget (SPEC.md section 3, ``rate_limited``)."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """A per-connection request budget: ``burst`` at once, refilled at ``rate`` per second."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
