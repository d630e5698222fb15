"""Recorded traffic: the chat requests a replay plays again, and what really happened to each.

Theory of operation
-------------------
A `Request` is one chat request: when it arrived (seconds after the traffic's first request), its
department, how long an agent spent on it once taken (its handle time), and, when known, how long
its visitor would wait for an agent before leaving (its patience). Next to it sits its recorded
`Outcome`: the wait until an agent took it, or the reason nobody did, and who handled it.

Traffic comes from three places, all read through the engine's public API or its export format:

* a store's tickets (`read_store`: `SqliteStore.tickets`, one page of ``MAX_PAGE`` at a time, with
  the store's departments and agents, which say how the desk was set up);
* a file of JSON lines as ``helpline tickets export`` writes it (`read_jsonl`);
* a synthetic day (`generate_day`): arrivals by a Poisson process with a daily profile, handle
  times and patience lognormal, everything drawn from one seeded generator.

A ticket tells the handle time of a chat that was taken (``ended_at - accepted_at``) and the
patience of a visitor who left the queue (``ended_at - started_at`` of a missed chat that ended
with ``visitor_left``). It cannot tell the handle time of a chat nobody took: that one is drawn
from the handle times recorded in the same department (seeded, so a replay is repeatable), and the
traffic counts how many were drawn. A visitor who was served had a patience nobody saw; in the
replay it waits as long as the department lets it. Failed tickets (chats lost to a server fault)
are left out and counted.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from engine import MAX_PAGE, Agent, Department, EndReason, TicketKind, open_store

__all__ = [
    "DayProfile",
    "Outcome",
    "Request",
    "Traffic",
    "generate_day",
    "read_jsonl",
    "read_store",
    "traffic_from_rows",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What happened to one request: taken after `wait` seconds, or missed for `missed`."""

    wait: float | None  # seconds from the request until an agent accepted; None if nobody did
    missed: str = ""  # the end reason of a missed chat ("" when it was taken)
    agents: tuple[str, ...] = ()  # who handled it, in order of joining
    busy: float = 0.0  # seconds it was held by an agent (accepted -> ended)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One chat request as recorded, and what happened to it (`recorded`, if known)."""

    key: str  # the request's name in a replay (its visitor id there)
    at: float  # seconds after the traffic's first request
    department: str
    handle: float  # seconds an agent holds the chat once taken
    patience: float | None = None  # seconds the visitor waits before leaving; None: as long as let
    recorded: Outcome | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Traffic:
    """A stretch of recorded traffic and, when it came from a store, how that desk was set up."""

    requests: tuple[Request, ...]
    source: str
    start: float = 0.0  # wall-clock time of the first request
    departments: tuple[Department, ...] = ()  # as stored, if known
    agents: tuple[Agent, ...] = ()  # as stored, if known
    drawn_handles: int = 0  # missed chats whose handle time was drawn (see the module docstring)
    skipped_failed: int = 0  # failed tickets left out

    @property
    def span(self) -> float:
        """Seconds from the first request to the last."""
        return self.requests[-1].at - self.requests[0].at if self.requests else 0.0

    @property
    def department_ids(self) -> tuple[str, ...]:
        return tuple(sorted({r.department for r in self.requests}))

    def only(self, departments: Iterable[str]) -> Traffic:
        """The same traffic restricted to some departments."""
        keep = set(departments)
        return Traffic(
            requests=tuple(r for r in self.requests if r.department in keep),
            source=self.source,
            start=self.start,
            departments=tuple(d for d in self.departments if d.id in keep),
            agents=self.agents,
            drawn_handles=self.drawn_handles,
            skipped_failed=self.skipped_failed,
        )


# --- from tickets ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """The fields of a ticket that a replay needs (from a Ticket or an exported record)."""

    kind: str
    department: str
    started_at: float
    accepted_at: float | None
    ended_at: float
    end_reason: str
    agents: tuple[str, ...] = field(default=())


def traffic_from_rows(
    rows: Iterable[Row],
    *,
    source: str,
    seed: int = 0,
    departments: Sequence[Department] = (),
    agents: Sequence[Agent] = (),
) -> Traffic:
    """Traffic from ticket rows in any order (see the module docstring for what is drawn)."""
    kept: list[Row] = []
    failed = 0
    for row in rows:
        if row.kind == TicketKind.FAILED.value:
            failed += 1
        else:
            kept.append(row)
    kept.sort(key=lambda r: (r.started_at, r.ended_at))
    handles: dict[str, list[float]] = {}
    for row in kept:
        if row.accepted_at is not None:
            handles.setdefault(row.department, []).append(max(0.0, row.ended_at - row.accepted_at))
    every = [h for hs in handles.values() for h in hs] or [300.0]
    rng = random.Random(seed)
    start = kept[0].started_at if kept else 0.0
    requests: list[Request] = []
    drawn = 0
    for i, row in enumerate(kept):
        patience: float | None = None
        if row.accepted_at is not None:
            handle = max(0.0, row.ended_at - row.accepted_at)
            outcome = Outcome(
                wait=max(0.0, row.accepted_at - row.started_at), agents=row.agents, busy=handle
            )
        else:
            handle = rng.choice(handles.get(row.department) or every)
            drawn += 1
            outcome = Outcome(wait=None, missed=row.end_reason, agents=row.agents)
            if row.end_reason == EndReason.VISITOR_LEFT.value:
                patience = max(0.0, row.ended_at - row.started_at)
        requests.append(
            Request(
                key=f"r{i:06d}",
                at=row.started_at - start,
                department=row.department,
                handle=handle,
                patience=patience,
                recorded=outcome,
            )
        )
    return Traffic(
        requests=tuple(requests),
        source=source,
        start=start,
        departments=tuple(departments),
        agents=tuple(agents),
        drawn_handles=drawn,
        skipped_failed=failed,
    )


async def read_store(
    db: str | os.PathLike[str],
    *,
    since: float | None = None,
    until: float | None = None,
    seed: int = 0,
) -> Traffic:
    """The tickets of a store that ended in ``since <= ended_at < until``, and its desk.

    The file must exist (a mistyped path would otherwise create an empty database). The store is
    only read; a daemon may be running on it.
    """
    if not await trio.Path(db).is_file():
        raise FileNotFoundError(f"no database file {os.fspath(db)}")
    rows: list[Row] = []
    async with open_store(db) as store:
        offset = 0
        while True:
            page = await store.tickets(since=since, until=until, limit=MAX_PAGE, offset=offset)
            rows.extend(
                Row(
                    kind=t.kind.value,
                    department=t.department,
                    started_at=t.started_at,
                    accepted_at=t.accepted_at,
                    ended_at=t.ended_at,
                    end_reason=t.end_reason.value,
                    agents=t.agents,
                )
                for t in page
            )
            offset += len(page)
            if len(page) < MAX_PAGE:
                break
        departments = await store.departments()
        agents = await store.agents()
    return traffic_from_rows(
        rows, source=os.fspath(db), seed=seed, departments=departments, agents=agents
    )


def read_jsonl(
    path: str | os.PathLike[str],
    *,
    since: float | None = None,
    until: float | None = None,
    seed: int = 0,
) -> Traffic:
    """The tickets in a file written by ``helpline tickets export`` (one JSON object a line)."""
    rows: list[Row] = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(_row_of(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                where = f"{os.fspath(path)}, line {number}"
                raise ValueError(f"{where}: not a ticket ({exc})") from None
    rows = [
        r
        for r in rows
        if (since is None or r.ended_at >= since) and (until is None or r.ended_at < until)
    ]
    return traffic_from_rows(rows, source=os.fspath(path), seed=seed)


def _row_of(record: dict[str, Any]) -> Row:
    accepted = record.get("accepted_at")
    return Row(
        kind=str(record["kind"]),
        department=str(record["department"]),
        started_at=float(record["started_at"]),
        accepted_at=None if accepted is None else float(accepted),
        ended_at=float(record["ended_at"]),
        end_reason=str(record["end_reason"]),
        agents=tuple(str(a) for a in record.get("agents", ())),
    )


# --- a synthetic day ------------------------------------------------------------------------------

#: Relative arrival rate in each hour of the day (a help desk's working-day shape).
WORKDAY: tuple[float, ...] = (
    0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.45, 0.9, 1.6, 2.2, 2.5, 2.4,
    2.0, 2.2, 2.4, 2.3, 2.0, 1.6, 1.1, 0.8, 0.6, 0.45, 0.3, 0.2,
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class DayProfile:
    """The shape of a synthetic day: where chats go, how long they take, how patient visitors are.

    Handle times and patience are lognormal, given by their median and the sigma of their log.
    """

    hourly: tuple[float, ...] = WORKDAY
    #: department -> (share of the chats, median handle time in seconds)
    departments: tuple[tuple[str, float, float], ...] = (
        ("sales", 0.35, 240.0),
        ("support", 0.65, 360.0),
    )
    handle_sigma: float = 0.6
    patience_median: float = 240.0
    patience_sigma: float = 1.0


#: The date a generated day falls on: Tuesday 2024-05-14, from midnight UTC.
GENERATED_DAY: Final = 1_715_644_800.0


def generate_day(n: int, *, seed: int = 1, profile: DayProfile | None = None) -> Traffic:
    """A synthetic day of exactly `n` chat requests, on `GENERATED_DAY` (its hours in UTC).

    A Poisson process whose rate follows `profile.hourly`, conditioned on `n` arrivals in the day,
    places its arrivals independently with a density proportional to the rate: each arrival picks
    an hour by its weight, then a uniform moment inside it.
    """
    if n < 1:
        raise ValueError("a day needs at least one chat")
    profile = profile or DayProfile()
    rng = random.Random(seed)
    hours = rng.choices(range(len(profile.hourly)), weights=profile.hourly, k=n)
    times = sorted(3600.0 * (h + rng.random()) for h in hours)
    names = [d for d, _, _ in profile.departments]
    shares = [s for _, s, _ in profile.departments]
    medians = {d: m for d, _, m in profile.departments}
    first = times[0]
    requests = []
    for i, t in enumerate(times):
        dept = rng.choices(names, weights=shares)[0]
        handle = rng.lognormvariate(math.log(medians[dept]), profile.handle_sigma)
        patience = rng.lognormvariate(math.log(profile.patience_median), profile.patience_sigma)
        requests.append(
            Request(
                key=f"r{i:06d}", at=t - first, department=dept, handle=handle, patience=patience
            )
        )
    return Traffic(
        requests=tuple(requests),
        source=f"a generated day of {n:,} chats (seed {seed})",
        start=GENERATED_DAY + first,
    )
