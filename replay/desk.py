"""The desk a replay runs: departments, agents and how quickly agents answer, and what-if changes.

Theory of operation
-------------------
A `Desk` is what `simulate` hands the real engine (its departments and agents, as an
`EngineConfig` seeds them) plus one behaviour of the simulated agents: the median time an agent
takes to accept an offer. Every agent of the desk is online for the whole replay.

The desk "as recorded" (`recorded_desk`) is taken from the store the traffic came from: its
departments' settings, and the agents who handled at least one chat of the traffic (the agents
who were there), or every agent of a department none of whose agents handled a chat. Traffic read
from an exported file carries no configuration: its departments get the default settings and its
agents are those named on its tickets, in the departments they handled, with capacity 3.

`Changes` are the what-ifs: a number of agents, a capacity or a routing mode, queue settings,
business hours (weekly spans and a time zone) and overflow (limits and fallback departments), for
every department or for one. A department whose agent count is changed is staffed with that
many fresh agents (``<department>-1``, ``<department>-2``...) of the department's recorded
capacity (its agents' median) or the changed one; agents that also served other departments keep
serving those.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from engine import Agent, AgentStatus, Department, Hours, RoutingMode

from .traffic import DayProfile, Traffic

__all__ = ["Changes", "Desk", "generated_desk", "recorded_desk"]

T = TypeVar("T")

DEFAULT_CAPACITY = 3
ALL = ""  # the key of a change that applies to every department


@dataclass(frozen=True, slots=True, kw_only=True)
class Desk:
    """Departments and agents to replay against, and the agents' median time to accept."""

    departments: tuple[Department, ...]
    agents: tuple[Agent, ...]
    reaction: float = 4.0

    def department(self, dept_id: str) -> Department:
        for d in self.departments:
            if d.id == dept_id:
                return d
        return Department(id=dept_id, name=dept_id)

    def agents_of(self, dept_id: str) -> tuple[Agent, ...]:
        return tuple(a for a in self.agents if dept_id in a.departments)

    def slots(self, dept_id: str) -> int:
        """How many chats the department's agents can hold at once (their capacities summed)."""
        return sum(a.capacity for a in self.agents_of(dept_id))

    def only(self, departments: tuple[str, ...]) -> Desk:
        """This desk cut to some departments: their settings, and the agents serving them."""
        keep = set(departments)
        agents = []
        for a in self.agents:
            mine = tuple(d for d in a.departments if d in keep)
            if mine:
                agents.append(
                    a if mine == a.departments else dataclasses.replace(a, departments=mine)
                )
        return Desk(
            departments=tuple(self.department(d) for d in departments),
            agents=tuple(agents),
            reaction=self.reaction,
        )

    def describe(self, dept_id: str) -> str:
        """'6 agents x 3, assigned': the department's staffing and routing, in a few words."""
        agents = self.agents_of(dept_id)
        capacities = sorted({a.capacity for a in agents})
        cap = "/".join(str(c) for c in capacities) or "-"
        return f"{len(agents)} x {cap}, {self.department(dept_id).routing.value}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Changes:
    """What-if changes, per department id, or for every department under the key ``""``."""

    agents: Mapping[str, int] = field(default_factory=dict)
    capacity: Mapping[str, int] = field(default_factory=dict)
    routing: Mapping[str, RoutingMode] = field(default_factory=dict)
    queue_timeout: Mapping[str, float] = field(default_factory=dict)
    queue_limit: Mapping[str, int] = field(default_factory=dict)
    hours: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # weekly spans; () always
    timezone: Mapping[str, str] = field(default_factory=dict)
    overflow_wait: Mapping[str, float] = field(default_factory=dict)
    overflow_queue: Mapping[str, int] = field(default_factory=dict)
    overflow_to: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reaction: float | None = None

    def with_agents(self, count: int, departments: tuple[str, ...] = ()) -> Changes:
        """These changes with `count` agents in `departments` (every department if none)."""
        agents = dict(self.agents)
        for d in departments or (ALL,):
            agents[d] = count
        return dataclasses.replace(self, agents=agents)

    def apply(self, desk: Desk, departments: tuple[str, ...]) -> Desk:
        """`desk` changed as asked, for the departments a replay covers."""
        desk = desk.only(departments)
        depts = {d: desk.department(d) for d in departments}
        for d, dept in depts.items():
            routing = _pick(self.routing, d)
            timeout = _pick(self.queue_timeout, d)
            limit = _pick(self.queue_limit, d)
            weekly = _pick(self.hours, d)
            zone = _pick(self.timezone, d)
            hours = dept.hours
            if weekly is not None or zone is not None:
                hours = Hours(
                    timezone=hours.timezone if zone is None else zone,
                    weekly=hours.weekly if weekly is None else weekly,
                    holidays=hours.holidays,
                )
            wait = _pick(self.overflow_wait, d)
            length = _pick(self.overflow_queue, d)
            to = _pick(self.overflow_to, d)
            depts[d] = dataclasses.replace(
                dept,
                routing=dept.routing if routing is None else routing,
                queue_timeout=dept.queue_timeout if timeout is None else timeout,
                queue_limit=dept.queue_limit if limit is None else limit,
                hours=hours,
                overflow_wait=dept.overflow_wait if wait is None else wait,
                overflow_queue=dept.overflow_queue if length is None else length,
                overflow_to=dept.overflow_to if to is None else tuple(x for x in to if x != d),
            )
        agents = list(desk.agents)
        for d in departments:
            count = _pick(self.agents, d)
            capacity = _pick(self.capacity, d)
            if count is None:
                if capacity is not None:  # the same agents, another capacity
                    agents = [
                        dataclasses.replace(a, capacity=capacity) if d in a.departments else a
                        for a in agents
                    ]
                continue
            own = [a.capacity for a in agents if d in a.departments]
            cap = capacity or (round(statistics.median(own)) if own else DEFAULT_CAPACITY)
            kept = []
            for a in agents:
                if d not in a.departments:
                    kept.append(a)
                elif len(a.departments) > 1:
                    rest = tuple(x for x in a.departments if x != d)
                    kept.append(dataclasses.replace(a, departments=rest))
            agents = kept + [_agent(f"{d}-{i}", (d,), cap) for i in range(1, count + 1)]
        return Desk(
            departments=tuple(depts.values()),
            agents=tuple(agents),
            reaction=desk.reaction if self.reaction is None else self.reaction,
        )


def _pick(values: Mapping[str, T], dept_id: str) -> T | None:
    if dept_id in values:
        return values[dept_id]
    return values.get(ALL)


def _agent(agent_id: str, departments: tuple[str, ...], capacity: int) -> Agent:
    return Agent(
        id=agent_id,
        name=agent_id,
        departments=departments,
        capacity=capacity,
        status=AgentStatus.OFFLINE,
        ringtone=False,
    )


def recorded_desk(traffic: Traffic) -> Desk:
    """The desk the traffic was recorded with, as far as its source tells (module docstring)."""
    wanted = traffic.department_ids
    stored = {d.id: d for d in traffic.departments}
    departments = tuple(stored.get(d, Department(id=d, name=d)) for d in wanted)
    handled: dict[str, set[str]] = {}
    for r in traffic.requests:
        if r.recorded is not None:
            for agent_id in r.recorded.agents:
                handled.setdefault(agent_id, set()).add(r.department)
    agents: dict[str, Agent] = {}
    if traffic.agents:
        for d in wanted:
            of_d = [a for a in traffic.agents if d in a.departments]
            present = [a for a in of_d if a.id in handled] or of_d
            for a in present:
                agents[a.id] = _agent(a.id, a.departments, a.capacity)
    else:
        for agent_id, depts in sorted(handled.items()):
            agents[agent_id] = _agent(agent_id, tuple(sorted(depts)), DEFAULT_CAPACITY)
    return Desk(departments=departments, agents=tuple(agents.values()))


def generated_desk(
    traffic: Traffic, profile: DayProfile | None = None, *, capacity: int = DEFAULT_CAPACITY
) -> Desk:
    """A desk for a generated day: sales broadcast, support assigned, each staffed for its peak.

    Each department gets enough agents to hold 90% of the chats that are open at once in the
    busiest hour on average (offered load = arrivals per second x mean handle time), so the peak
    hours queue a little and the rest of the day does not.
    """
    profile = profile or DayProfile()
    peak_share = max(profile.hourly) / sum(profile.hourly)
    counts = {d: 0 for d in traffic.department_ids}
    for r in traffic.requests:
        counts[r.department] += 1
    departments = []
    agents = []
    for name, _, median in profile.departments:
        if name not in counts:
            continue
        mean_handle = median * math.exp(profile.handle_sigma**2 / 2)
        load = counts[name] * peak_share / 3600 * mean_handle
        staff = max(1, math.ceil(0.9 * load / capacity))
        routing = RoutingMode.BROADCAST if name == "sales" else RoutingMode.ASSIGNED
        departments.append(Department(id=name, name=name.title(), routing=routing))
        agents += [_agent(f"{name}-{i}", (name,), capacity) for i in range(1, staff + 1)]
    return Desk(departments=tuple(departments), agents=tuple(agents))
