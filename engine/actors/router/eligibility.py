"""Who may take a chat, and how long a waiting chat is expected to wait.

Eligibility. `_consider` looks at every agent of the chat's department and says, for each, whether
it may be offered the chat now and why not (the reasons of model.trace): offline, disconnected,
already in the chat, tried, full, reserved by pending offers, or missing a skill the chat
requires. A chat that requires skills goes only to agents who have them all until the
department's `skills_wait` has passed since it was opened; then it is *relaxed* and any agent of
the department may take it (a timer marks the moment, and the flight recorder says so).

Business hours. A department is open when its schedule says so (model.hours); outside the hours
its chat is off for new chats.

Queue ETA. The expected wait of the chat at `position` in a department's queue is

    eta = max(0, position - free) * mean_handle_time / capacity

where `capacity` is the total capacity of the department's present agents (online, connected or
in their grace), `free` the slots of its available agents that no chat or pending offer holds,
and `mean_handle_time` the mean time from accept to end of the department's last
`HANDLE_SAMPLES` transcripts, or `PRIOR_HANDLE_TIME` seconds while it has none. No present agent
means no estimate (None). A chat is the `position`-th to be served; each of the `capacity` slots
frees about once per handle time, so the queue drains at about capacity / mean_handle_time chats
a second.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

import trio

from ...model.hours import is_open, opens_at
from ...model.records import AgentStatus
from .. import messages as m
from .inspection import Inspection
from .recorder import RawCandidate
from .state import AgentState, Chat, DeptState

PRIOR_HANDLE_TIME: Final = 180.0  # seconds, assumed per chat until a department has history
HANDLE_SAMPLES: Final = 50


class Eligibility(Inspection):
    """Decide who may take a chat now, keep handle times, and estimate waits."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handle_times: dict[str, deque[float]] = {}

    def _skills_relaxed(self, chat: Chat, dept: DeptState) -> bool:
        return not chat.skills or chat.relaxed or dept.config.skills_wait <= 0

    def _consider(
        self, chat: Chat, dept: DeptState, *, explain: bool = True
    ) -> tuple[list[AgentState], list[RawCandidate]]:
        """The agents who may be offered `chat` now, and (`explain`) a verdict on every other
        agent of `dept`."""
        relaxed = self._skills_relaxed(chat, dept)
        needed = frozenset(chat.skills)
        eligible: list[AgentState] = []
        verdicts: list[RawCandidate] = []
        for agent in self._members_of(dept.config.id):
            reason, detail = "", ""
            if agent.status is not AgentStatus.ONLINE:
                reason = "offline"
            elif not agent.connected:
                reason = "disconnected"
            elif agent.id in chat.members:
                reason = "in_chat"
            elif agent.id in chat.tried:
                reason = "tried"
            elif len(agent.chats) >= agent.capacity:
                reason = "full"
            elif agent.load >= agent.capacity:
                reason = "reserved"
            elif not relaxed and not needed <= agent.skills:
                reason, detail = "missing_skill", ",".join(sorted(needed - agent.skills))
            if reason and explain:
                verdicts.append(self._candidate(agent, "skipped", reason, detail))
            elif not reason:
                eligible.append(agent)
        return eligible, verdicts

    def _rank(
        self, eligible: list[AgentState], verdicts: list[RawCandidate], *, assigned: bool
    ) -> tuple[list[AgentState], list[RawCandidate]]:
        """Who gets the offer: every eligible agent, or (assigned) the least loaded, then the
        longest idle; the verdicts gain the eligible agents with why they were or were not."""
        if not assigned:
            chosen = eligible
            ranked = [self._candidate(a, "chosen", "broadcast") for a in eligible]
        else:
            best = min(eligible, key=lambda a: (a.load, a.idle_since, a.id))
            chosen = [best]
            ranked = [
                self._candidate(a, "chosen", "least_loaded")
                if a is best
                else self._candidate(a, "eligible", "ranked_lower")
                for a in sorted(eligible, key=lambda a: (a.load, a.idle_since, a.id))
            ]
        return chosen, ranked + verdicts

    def _open_now(self, dept: DeptState) -> bool:
        return is_open(dept.config.hours, self._wall())

    def _opens_at(self, dept: DeptState) -> float | None:
        return opens_at(dept.config.hours, self._wall())

    def _note_handle_time(self, chat: Chat) -> None:
        if chat.accepted_at is None:
            return
        times = self._handle_times.setdefault(chat.department, deque(maxlen=HANDLE_SAMPLES))
        times.append(max(0.0, self._wall() - chat.accepted_at))

    def _mean_handle_time(self, dept_id: str) -> float:
        times = self._handle_times.get(dept_id)
        return sum(times) / len(times) if times else PRIOR_HANDLE_TIME

    def _wait_model(self, dept: DeptState) -> tuple[int, int, float]:
        """(free slots, capacity, mean handle time) of a department, for `_eta`."""
        present = [a for a in self._members_of(dept.config.id) if a.present]
        capacity = sum(a.capacity for a in present)
        free = sum(max(0, a.capacity - a.load) for a in present if a.available)
        return free, capacity, self._mean_handle_time(dept.config.id)

    def _eta(
        self, dept: DeptState, position: int, model: tuple[int, int, float] | None = None
    ) -> float | None:
        """The expected wait, in seconds, of the chat at `position` (see the module docstring)."""
        free, capacity, mean = model or self._wait_model(dept)
        if capacity <= 0:
            return None
        return round(max(0, position - free) * mean / capacity, 1)

    def _tell_positions(self, dept: DeptState) -> None:
        """Tell each waiting visitor its place and expected wait when either changed (the wait
        by at least 5 seconds or a tenth)."""
        model = self._wait_model(dept) if dept.queue else None
        for position, chat_id in enumerate(dept.queue, start=1):
            chat = self._chats[chat_id]
            eta = self._eta(dept, position, model)
            told = chat.told_eta
            moved = (eta is None) != (told is None) or (
                eta is not None and told is not None and abs(eta - told) >= max(5.0, told / 10)
            )
            if chat.told_position != position or moved:
                chat.told_position, chat.told_eta = position, eta
                self._tell(chat, m.QueuePosition(position=position, eta=eta))

    def _arm_skills_timer(self, chat: Chat, dept: DeptState) -> None:
        """A chat that requires skills is relaxed `skills_wait` after it was opened."""
        if self._skills_relaxed(chat, dept):
            return
        left = chat.started_at + dept.config.skills_wait - self._wall()
        self._timers.set(("skills", chat.id), trio.current_time() + max(0.0, left))
