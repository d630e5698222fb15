"""The routing flight recorder's records: why a chat went where it went.

A chat's trace is a list of steps, oldest first. A step says what the router decided (`kind`), in
which department, with a human `detail`, and, for a decision that chose agents (an offer, a
reassignment), every candidate the department had with its verdict and why:

    verdict   reason
    chosen    broadcast (every eligible agent gets the offer) or least_loaded (assigned routing:
              fewest chats plus offers, then longest idle; the figures are in load/capacity/idle)
    eligible  ranked_lower (assigned routing: eligible, but another agent ranked first)
    skipped   offline, disconnected (in its disconnect grace, or restored and not back yet),
              full (its chats reach its capacity), reserved (pending offers hold its free slots),
              tried (declined or let this chat's offer lapse already), in_chat (already in it),
              missing_skill (lacks a skill the chat requires; `detail` names them)

Step kinds: requested, offered, queued, accepted, declined, timeout (an offer's window passed),
withdrawn (its agent went offline or away), skills_relaxed, overflow, reassign, reassigned,
reassign_failed, requeued, restored, missed (the chat became a missed-chat ticket; `detail` is the
reason), ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Candidate", "RoutingTrace", "TraceStep"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One agent a routing decision looked at, and what it made of it."""

    agent: str
    verdict: str  # "chosen", "eligible", "skipped"
    reason: str
    load: int
    capacity: int
    idle: float  # seconds since it last freed a slot
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceStep:
    """One routing decision about a chat."""

    at: float
    kind: str
    department: str
    detail: str = ""
    candidates: tuple[Candidate, ...] = ()

    def doc(self) -> dict[str, Any]:
        """Every field of the step and its candidates, by name (as JSON and the wire carry it)."""
        # What dataclasses.asdict gives, built by hand: asdict deep-copies every value, and a
        # finished chat's trace is written on the router's loop.
        step = self
        return {
            "at": step.at,
            "kind": step.kind,
            "department": step.department,
            "detail": step.detail,
            "candidates": [
                {
                    "agent": c.agent,
                    "verdict": c.verdict,
                    "reason": c.reason,
                    "load": c.load,
                    "capacity": c.capacity,
                    "idle": c.idle,
                    "detail": c.detail,
                }
                for c in step.candidates
            ],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingTrace:
    """A chat's routing steps, oldest first; `dropped` older steps fell off the cap."""

    chat_id: str
    live: bool
    steps: tuple[TraceStep, ...]
    dropped: int = 0
