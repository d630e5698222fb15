"""Run traffic through the real engine on a virtual clock: the routing that runs is the live code.

Theory of operation
-------------------
`simulate` opens a real engine (`open_engine`) over an in-memory SQLite store (``":memory:"``,
or a new file when asked to keep it, with ``synchronous=OFF``) and the engine's journal of live
chats off (a replay has nothing to recover), seeded with the desk's departments and agents. The
in-memory store runs its writes in trio's thread (``engine.store.sqlite``, Rule 6): the same SQL
and group commits, without waiting for a writer thread to be scheduled; and it keeps no routing
traces (``trace_days=0``: the flight recorder records every step as live, but a finished chat's
trace is not written, since nobody can ask for it). Then, on a virtual clock:

* every agent connects, goes online and reads its events. An offer of a chat is accepted after
  the agent's reaction time (lognormal around the desk's median, drawn from a hash of the request
  and the agent, so the same agent reacts to the same chat alike in every run); an offer withdrawn
  meanwhile (another agent took the chat, the window lapsed) is let go. A chat the agent took is
  ended with ``end_chat`` once its recorded handle time has passed;
* the engine's wall clock is pinned (``pin_wall_clock``) so that each request comes at its
  recorded wall-clock time (``Traffic.start`` plus its offset): business hours, tickets and
  waits fall on the recorded days;
* every visitor opens its chat at its recorded time and stays until the chat ends. A visitor with
  a patience leaves (``leave``) if no agent has joined when it runs out;
* the outcome of every request is then read back from the tickets the engine wrote, as a
  recorded day's is: ``accepted_at - started_at`` is the wait, a missed chat's ``end_reason`` the
  reason.

The clock. `run` runs the simulation on a `VirtualClock` (``replay.clock``): when every task is
blocked, virtual time jumps to the next deadline, so hours of routing run in seconds and nothing
waits for real time. The clock is held still while the engine starts and the agents go online
(the store writes their presence), and from the last visitor on (the tickets are read back and
the engine stops); the module docstring of ``replay.clock`` says why it may run free in between.
`simulate` also runs under trio's ``MockClock(autojump_threshold=0)``, as tests do (pytest-trio's
``autojump_clock``); it then opens the engine inside ``hold_clock_for_store``, so that the
store keeps that clock from jumping while it works.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import trio

from engine import (
    MAX_PAGE,
    AgentConnection,
    AgentStatus,
    ChatEnded,
    Engine,
    EngineConfig,
    EngineError,
    Offer,
    OfferWithdrawn,
    SystemEvent,
    Ticket,
    TicketKind,
    Visitor,
    hold_clock_for_store,
    open_engine,
    pin_wall_clock,
)

from .clock import VirtualClock
from .desk import Desk
from .traffic import Outcome, Request, Traffic

__all__ = ["Progress", "Run", "run", "simulate"]

#: Called now and then with (requests opened so far, all requests).
Progress = Callable[[int, int], None]

_REACTION_SIGMA = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """What a replay produced: each request's outcome, and how fast it ran."""

    desk: Desk
    outcomes: Mapping[str, Outcome]  # by request key
    seconds: float  # real seconds the replay took
    simulated: float  # virtual seconds it covered

    @property
    def speedup(self) -> float:
        """Virtual seconds per real second."""
        return self.simulated / self.seconds if self.seconds > 0 else math.inf


def run(
    traffic: Traffic,
    desk: Desk,
    *,
    db: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Run:
    """`simulate` in a trio run of its own, on a `VirtualClock`."""
    clock = VirtualClock()
    result: Run = trio.run(
        lambda: simulate(traffic, desk, db=db, progress=progress),
        clock=clock,
        instruments=[clock],
    )
    return result


async def simulate(
    traffic: Traffic,
    desk: Desk,
    *,
    db: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Run:
    """Replay `traffic` against `desk` (see the module docstring).

    It must run under a `VirtualClock` or ``trio.testing.MockClock(autojump_threshold=0)``.
    `db` keeps the engine's database in a file (it must not exist yet); by default the store is
    in memory and gone afterwards.
    """
    clock = trio.lowlevel.current_clock()
    hold: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if isinstance(clock, VirtualClock):
        pause, resume = clock.pause, clock.resume
    elif getattr(clock, "autojump_threshold", None) == 0:  # trio.testing's MockClock, as tests use
        pause = resume = _nothing
        hold = hold_clock_for_store()
    else:
        raise RuntimeError(
            "simulate needs a virtual clock: replay.clock.VirtualClock, or "
            "trio.testing.MockClock(autojump_threshold=0)"
        )
    started = time.perf_counter()
    with hold:
        path: str | os.PathLike[str] = ":memory:"
        if db is not None:
            path = Path(db)
            if path.exists():
                raise FileExistsError(f"{os.fspath(db)} exists already; a replay writes a new one")
        config = EngineConfig(
            departments=desk.departments,
            agents=desk.agents,
            journal=False,
            trace_days=30.0 if db is not None else 0.0,  # a throwaway store keeps no traces
        )
        pause()
        try:
            t0 = trio.current_time()  # the moment of the first request, on the recorded day
            pin_wall_clock(traffic.start - t0)
            async with open_engine(config, db=path, synchronous="OFF") as engine:
                sim = _Simulation(engine, traffic, desk)
                await sim.run(progress, t0, ready=resume, done=pause)
                simulated = trio.current_time() - t0
                outcomes = await sim.outcomes()
        finally:
            resume()
    return Run(
        desk=desk,
        outcomes=outcomes,
        seconds=time.perf_counter() - started,
        simulated=simulated,
    )


class _Simulation:
    """The simulated agents and visitors around one engine."""

    def __init__(self, engine: Engine, traffic: Traffic, desk: Desk) -> None:
        self.engine = engine
        self.traffic = traffic
        self.desk = desk
        self.requests = {r.key: r for r in traffic.requests}

    async def run(
        self,
        progress: Progress | None,
        t0: float,
        *,
        ready: Callable[[], None],
        done: Callable[[], None],
    ) -> None:
        """Bring the agents online, call `ready`, play the traffic from `t0` on (the trio time
        of the first request), call `done`, let them go."""
        async with trio.open_nursery() as agents:
            for agent in self.desk.agents:
                await agents.start(self._agent, agent.id)
            ready()
            total = len(self.traffic.requests)
            async with trio.open_nursery() as visitors:
                for n, request in enumerate(self.traffic.requests):
                    await trio.sleep_until(t0 + request.at)
                    visitors.start_soon(self._visitor, request)
                    if progress is not None and n % 100 == 0:
                        progress(n, total)
            done()
            if progress is not None:
                progress(total, total)
            agents.cancel_scope.cancel()

    # --- visitors -------------------------------------------------------------------------------

    async def _visitor(self, request: Request) -> None:
        visitor = Visitor(name=request.key, visitor_id=request.key)
        async with self.engine.open_chat(
            department=request.department, question=request.key, visitor=visitor
        ) as chat:
            patience = math.inf if request.patience is None else request.patience
            give_up = trio.current_time() + patience
            joined = False
            while True:
                with trio.move_on_at(math.inf if joined else give_up) as wait:
                    try:
                        event = await chat.next_event()
                    except trio.EndOfChannel:
                        return
                if wait.cancelled_caught:
                    await chat.leave()  # gone: the chat becomes a missed chat without us
                    return
                if isinstance(event, SystemEvent) and event.event == "joined":
                    joined = True
                elif isinstance(event, ChatEnded):
                    return

    # --- agents ---------------------------------------------------------------------------------

    async def _agent(
        self, agent_id: str, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with self.engine.connect_agent(agent_id) as conn:
            await conn.set_status(AgentStatus.ONLINE)
            task_status.started()
            waiting: dict[str, trio.CancelScope] = {}
            async with trio.open_nursery() as chats:
                while True:
                    try:
                        first = await conn.next_event()
                    except trio.EndOfChannel:
                        return
                    for event in [first, *conn.pending_events()]:
                        if isinstance(event, Offer) and event.kind == "chat":
                            scope = trio.CancelScope()
                            waiting[event.offer_id] = scope
                            chats.start_soon(self._take, conn, event, scope, waiting)
                        elif isinstance(event, OfferWithdrawn):
                            withdrawn = waiting.pop(event.offer_id, None)
                            if withdrawn is not None:
                                withdrawn.cancel()

    async def _take(
        self,
        conn: AgentConnection,
        offer: Offer,
        scope: trio.CancelScope,
        waiting: dict[str, trio.CancelScope],
    ) -> None:
        """Accept `offer` after the agent's reaction time, then hold the chat its handle time."""
        request = self.requests[offer.visitor.visitor_id]
        with scope:
            await trio.sleep(self._reaction(request.key, conn.agent_id))
        waiting.pop(offer.offer_id, None)
        if scope.cancelled_caught:
            return
        try:  # outside the scope: an accept the router took must not be abandoned half way
            chat_id = await conn.accept(offer.offer_id)
        except EngineError:
            return  # another agent was quicker, or the offer lapsed
        await trio.sleep(request.handle)
        try:
            await conn.end_chat(chat_id)
        except EngineError:
            pass  # the chat ended already (the visitor left)

    def _reaction(self, key: str, agent_id: str) -> float:
        seed = zlib.crc32(f"{key}/{agent_id}".encode())
        median = self.desk.reaction
        if median <= 0:
            return 0.0
        return random.Random(seed).lognormvariate(math.log(median), _REACTION_SIGMA)

    # --- results --------------------------------------------------------------------------------

    async def outcomes(self) -> dict[str, Outcome]:
        """Every request's outcome, read from the tickets the engine stored."""
        found: dict[str, Outcome] = {}
        offset = 0
        while True:
            page = await self.engine.tickets(limit=MAX_PAGE, offset=offset)
            for ticket in page:
                found[ticket.visitor.visitor_id] = outcome_of(ticket)
            offset += len(page)
            if len(page) < MAX_PAGE:
                return found


def _nothing() -> None:
    pass


def outcome_of(ticket: Ticket) -> Outcome:
    """What a ticket says happened to its chat."""
    if ticket.accepted_at is None or ticket.kind is TicketKind.MISSED:
        return Outcome(wait=None, missed=ticket.end_reason.value, agents=ticket.agents)
    return Outcome(
        wait=max(0.0, ticket.accepted_at - ticket.started_at),
        agents=ticket.agents,
        busy=max(0.0, ticket.ended_at - ticket.accepted_at),
    )
