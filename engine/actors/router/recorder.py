"""The routing flight recorder: every routing decision about a chat, with why (model.trace).

Theory of operation:

Rule 1. A concern that decides where a chat goes records a step (`_step`) as it decides: the offer
        with every candidate of the department and its verdict, the queue, a lapsed offer,
        overflow, a reassignment, the end. Recording is appending to a list in memory; it never
        waits and never fails.
Rule 2. Memory is bounded: a live chat keeps its last `trace_steps` steps (the number of older ones
        dropped is counted), and a chat's trace is forgotten once its session has closed. A step is
        kept packed (`RawStep`): a step's candidates, one per agent of the department, are four flat
        columns instead of a tuple each: the agents' ids, their verdicts and their capacities, each
        column interned (the next offer in the department usually repeats them, and shares them),
        and their loads and idle times in an array. A department of a hundred agents costs a live
        chat about 0.9 KB per offer rather than 13 KB; none of it is tracked by the garbage
        collector. The model's `TraceStep` and `Candidate` are made from it only when a trace is
        read or written.
Rule 3. When a chat finishes, its trace goes to the store (`store.traces`) with that iteration's
        journal write, or on its own when there is none (the journal is off); nobody waits for
        it, since a trace explains decisions and is not one. It is kept for the configured number
        of days (none: not written at all): a missed chat can be explained a week later. A
        chat restored after a restart starts its trace again with a `restored` step; a crash
        loses the steps of live chats.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from itertools import chain
from operator import itemgetter
from typing import Any, TypeVar

import trio

from ...model.trace import Candidate, RoutingTrace, TraceStep
from ...store import traces as trace_rows
from .state import AgentState, Chat, RouterState

# (agent, verdict, reason, load, capacity, idle, detail): a `Candidate`'s fields, in order
RawCandidate = tuple[str, str, str, int, int, float, str]
# A step's candidates as columns: agent ids, (verdict, reason, detail) triples, capacities, and an
# array of (load, idle) for each in turn, in single precision
Packed = tuple[tuple[str, ...], tuple[tuple[str, str, str], ...], tuple[int, ...], "array[float]"]
# (at, kind, department, detail, candidates): a `TraceStep`'s fields, in order
RawStep = tuple[float, str, str, str, Packed | None]

_AGENT = itemgetter(0)
_VERDICT = itemgetter(1, 2, 6)
_CAPACITY = itemgetter(4)
_NUMBERS = itemgetter(3, 5)
_INTERNED_MAX = 10_000  # distinct values kept for sharing (details name skills: few)

T = TypeVar("T")


class _Interned(dict[T, T]):
    """One shared tuple per distinct value (looked up from C by `map`)."""

    def __missing__(self, key: T) -> T:
        if len(self) >= _INTERNED_MAX:
            self.clear()
        self[key] = key
        return key


class _Columns:
    """The interned values of packed steps: each verdict, and each column of agents, verdicts or
    capacities, which repeat from one offer to the next while a department's agents stay."""

    def __init__(self) -> None:
        self.verdicts: _Interned[tuple[str, str, str]] = _Interned()
        self.agents: _Interned[tuple[str, ...]] = _Interned()
        self.verdict_columns: _Interned[tuple[tuple[str, str, str], ...]] = _Interned()
        self.capacities: _Interned[tuple[int, ...]] = _Interned()


def _pack(candidates: Iterable[RawCandidate], columns: _Columns) -> Packed | None:
    rows = candidates if isinstance(candidates, (list, tuple)) else list(candidates)
    if not rows:
        return None
    return (
        columns.agents[tuple(map(_AGENT, rows))],
        columns.verdict_columns[tuple(map(columns.verdicts.__getitem__, map(_VERDICT, rows)))],
        columns.capacities[tuple(map(_CAPACITY, rows))],
        array("f", list(chain.from_iterable(map(_NUMBERS, rows)))),  # a list: sized exactly
    )


def _made(step: RawStep) -> TraceStep:
    at, kind, department, detail, packed = step
    candidates: tuple[Candidate, ...] = ()
    if packed is not None:
        agents, verdicts, capacities, numbers = packed
        candidates = tuple(
            Candidate(
                agent=agent,
                verdict=verdict,
                reason=reason,
                load=int(load),
                capacity=capacity,
                idle=round(idle, 3),  # stored in single precision
                detail=why,
            )
            for agent, (verdict, reason, why), load, capacity, idle in zip(
                agents, verdicts, numbers[0::2], capacities, numbers[1::2], strict=True
            )
        )
    return TraceStep(at=at, kind=kind, department=department, detail=detail, candidates=candidates)


class Recorder(RouterState):
    """Keep each live chat's routing steps, and hand finished chats' traces to the store."""

    def __init__(self, *, trace_steps: int = 200, keep_traces: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._trace_steps = max(1, trace_steps)
        self._keep_traces = keep_traces  # False: finished chats' traces are not stored
        self._traces: dict[str, list[RawStep]] = {}  # a list: a few steps cost less than a deque
        self._trace_dropped: dict[str, int] = {}
        self._trace_rows: dict[str, trace_rows.TraceRow] = {}  # to write with the next batch
        self._columns = _Columns()
        self._born = trio.current_time()  # an agent that never freed a slot is idle since then

    def _step(
        self,
        chat: Chat,
        kind: str,
        detail: str = "",
        candidates: Iterable[RawCandidate] = (),
    ) -> None:
        steps = self._traces.get(chat.id)
        if steps is None:
            steps = self._traces[chat.id] = []
        elif len(steps) >= self._trace_steps:
            del steps[0]  # rare: a chat with as many routing steps as the bound
            self._trace_dropped[chat.id] = self._trace_dropped.get(chat.id, 0) + 1
        packed = _pack(candidates, self._columns) if candidates else None
        steps.append((self._wall(), kind, chat.department, detail, packed))

    def _candidate(
        self, agent: AgentState, verdict: str, reason: str, detail: str = ""
    ) -> RawCandidate:
        idle = round(max(0.0, trio.current_time() - max(agent.idle_since, self._born)), 3)
        return (agent.id, verdict, reason, agent.load, agent.capacity, idle, detail)

    def _trace_finished(self, chat: Chat) -> None:
        """The chat ended: its trace is written with this iteration's journal write."""
        if not self._keep_traces:
            return
        steps = self._traces.get(chat.id, ())
        self._trace_rows[chat.id] = (
            chat.id,
            chat.department,
            self._wall(),
            trace_rows.dumps(tuple(map(_made, steps)), self._trace_dropped.get(chat.id, 0)),
        )
        self._touches += 1

    def _forget_trace(self, chat_id: str) -> None:
        self._traces.pop(chat_id, None)
        self._trace_dropped.pop(chat_id, None)

    def _take_trace_rows(self) -> tuple[trace_rows.TraceRow, ...]:
        rows, self._trace_rows = tuple(self._trace_rows.values()), {}
        return rows

    def trace_of(self, chat_id: str) -> RoutingTrace | None:
        """A chat's steps while the router still holds them (None once forgotten)."""
        steps = self._traces.get(chat_id)
        if steps is None:
            return None
        return RoutingTrace(
            chat_id=chat_id,
            live=chat_id in self._chats,
            steps=tuple(map(_made, steps)),
            dropped=self._trace_dropped.get(chat_id, 0),
        )
