"""The figures of a replay, per department, side by side with what the traffic recorded.

For each department, from the outcomes of its requests:

* waits: p50, p90 and p99 of the seconds from a request until an agent accepted it, over the
  chats that were taken (nearest-rank percentiles);
* missed: how many chats nobody took, in all and by the ticket's end reason;
* utilisation: busy chat-seconds / (agent slots x span), where busy chat-seconds add up, over the
  chats that were taken, the seconds from accept to end; agent slots are the department's agents'
  capacities summed (agents x capacity); span runs from the first request of the traffic to the
  end of the last chat. An agent who serves two departments counts in both.

The recorded column comes from the traffic's own outcomes and the desk it was recorded with;
when the traffic has no recorded outcomes (a generated day replayed directly) it is left out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .desk import Desk
from .simulate import Run
from .traffic import Outcome, Request, Traffic

__all__ = ["Figures", "figures", "format_report", "percentile", "report_json"]


def percentile(xs: Sequence[float], p: float) -> float:
    """The `p`-th percentile (0..100) of `xs` by the nearest-rank method; NaN for no data."""
    if not xs:
        return math.nan
    ordered = sorted(xs)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """One department's figures in one run (recorded or replayed)."""

    chats: int
    answered: int
    p50: float
    p90: float
    p99: float
    missed: Mapping[str, int] = field(default_factory=dict)  # end reason -> count
    utilisation: float | None = None  # None when the desk is unknown
    staffing: str = ""  # '6 x 3, assigned'

    @property
    def missed_total(self) -> int:
        return sum(self.missed.values())

    def to_json(self) -> dict[str, Any]:
        def num(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else round(x, 3)

        return {
            "chats": self.chats,
            "answered": self.answered,
            "wait_p50": num(self.p50),
            "wait_p90": num(self.p90),
            "wait_p99": num(self.p99),
            "missed": self.missed_total,
            "missed_by_reason": dict(sorted(self.missed.items())),
            "utilisation": num(self.utilisation),
            "staffing": self.staffing,
        }


def figures(
    requests: Sequence[Request],
    outcomes: Mapping[str, Outcome],
    department: str,
    desk: Desk | None,
) -> Figures:
    """The figures of `department` in one run (see the module docstring)."""
    span = _span(requests, outcomes)
    mine = [(r, outcomes[r.key]) for r in requests if r.department == department]
    waits = [o.wait for _, o in mine if o.wait is not None]
    missed = Counter(o.missed or "unknown" for _, o in mine if o.wait is None)
    busy = sum(o.busy for _, o in mine)
    slots = desk.slots(department) if desk is not None else 0
    return Figures(
        chats=len(mine),
        answered=len(waits),
        p50=percentile(waits, 50),
        p90=percentile(waits, 90),
        p99=percentile(waits, 99),
        missed=dict(missed),
        utilisation=busy / (slots * span) if slots and span > 0 else None,
        staffing=desk.describe(department) if desk is not None else "",
    )


def _span(requests: Sequence[Request], outcomes: Mapping[str, Outcome]) -> float:
    if not requests:
        return 0.0
    ends = [r.at + (outcomes[r.key].wait or 0.0) + outcomes[r.key].busy for r in requests]
    return max(max(ends), requests[-1].at) - requests[0].at


def recorded_outcomes(traffic: Traffic) -> dict[str, Outcome] | None:
    """The traffic's recorded outcomes by request key, or None if it has none."""
    found = {r.key: r.recorded for r in traffic.requests if r.recorded is not None}
    return found if len(found) == len(traffic.requests) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """A replay's figures per department, with the recorded ones when known."""

    traffic: Traffic
    run: Run
    replayed: Mapping[str, Figures]
    recorded: Mapping[str, Figures] | None


def build_report(traffic: Traffic, run: Run, recorded_desk: Desk | None) -> Report:
    depts = traffic.department_ids
    past = recorded_outcomes(traffic)
    return Report(
        traffic=traffic,
        run=run,
        replayed={d: figures(traffic.requests, run.outcomes, d, run.desk) for d in depts},
        recorded=None
        if past is None
        else {d: figures(traffic.requests, past, d, recorded_desk) for d in depts},
    )


def report_json(report: Report) -> dict[str, Any]:
    """The report as one JSON object."""
    run = report.run
    return {
        "source": report.traffic.source,
        "chats": len(report.traffic.requests),
        "simulated_seconds": round(run.simulated, 3),
        "seconds": round(run.seconds, 3),
        "speedup": round(run.speedup, 1),
        "drawn_handle_times": report.traffic.drawn_handles,
        "skipped_failed": report.traffic.skipped_failed,
        "departments": {
            d: {
                "replay": report.replayed[d].to_json(),
                "recorded": None if report.recorded is None else report.recorded[d].to_json(),
            }
            for d in report.replayed
        },
    }


def _secs(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def duration(seconds: float) -> str:
    """'23 h 41 min', '12 min 5 s', '40 s'."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min {s % 60} s"
    return f"{s} s"


def format_report(report: Report) -> str:
    """The report as text: a header, then a table per department."""
    run, traffic = report.run, report.traffic
    lines = [
        f"replayed {len(traffic.requests):,} chats from {traffic.source}: "
        f"{duration(run.simulated)} of traffic in {run.seconds:.1f} s "
        f"({run.speedup:,.0f}x real time)",
    ]
    if traffic.drawn_handles:
        lines.append(
            f"handle times drawn for {traffic.drawn_handles:,} missed chats "
            "(from the department's recorded ones)"
        )
    if traffic.skipped_failed:
        lines.append(f"{traffic.skipped_failed:,} failed tickets left out")
    for dept, now in report.replayed.items():
        past = None if report.recorded is None else report.recorded[dept]
        rows: list[tuple[str, str, str]] = [
            ("chats", f"{past.chats:,}" if past else "", f"{now.chats:,}"),
            ("agents x capacity, routing", past.staffing if past else "", now.staffing),
            ("answered", f"{past.answered:,}" if past else "", f"{now.answered:,}"),
            ("wait p50 (s)", _secs(past.p50) if past else "", _secs(now.p50)),
            ("wait p90 (s)", _secs(past.p90) if past else "", _secs(now.p90)),
            ("wait p99 (s)", _secs(past.p99) if past else "", _secs(now.p99)),
            ("missed", f"{past.missed_total:,}" if past else "", f"{now.missed_total:,}"),
        ]
        reasons = sorted(set(now.missed) | set(past.missed if past else {}))
        for reason in reasons:
            rows.append(
                (
                    f"  {reason}",
                    f"{past.missed.get(reason, 0):,}" if past else "",
                    f"{now.missed.get(reason, 0):,}",
                )
            )
        rows.append(
            ("agent utilisation", _pct(past.utilisation) if past else "", _pct(now.utilisation))
        )
        lines.append("")
        header = ("department " + dept, "recorded" if past else "", "replay")
        width = max(len(r[0]) for r in [header, *rows]) + 2
        cols = [max(len(r[i]) for r in [header, *rows]) + 2 for i in (1, 2)]
        for name, a, b in [header, *rows]:
            lines.append(f"{name:<{width}}{a:>{cols[0]}}{b:>{cols[1]}}".rstrip())
    return "\n".join(lines)
