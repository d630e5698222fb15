"""A sweep: the same traffic replayed with 4, 5, ... 12 agents, as a table and as a chart.

``--sweep agents=4..12`` (or ``agents=4..12:2`` for every second count) replays the traffic once
per agent count, with that many agents in every replayed department at once (`--department`
chooses them), everything else as the replay's other options say. Each row gives, per
department, the p50, p90 and p99 waits and the missed chats. ``--png FILE`` draws the p90 wait and
the missed chats against the number of agents, with matplotlib (the ``bench`` extra).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .desk import Changes, Desk
from .report import Figures, figures
from .simulate import Progress, Run, run
from .traffic import Traffic

__all__ = ["SweepRow", "draw_png", "format_sweep", "parse_sweep", "sweep"]

_SPEC = re.compile(r"^agents=(\d+)\.\.(\d+)(?::(\d+))?$")
MAX_STEPS = 50


def parse_sweep(text: str) -> list[int]:
    """``agents=4..12`` -> [4, 5, ..., 12]; ``agents=4..12:2`` -> [4, 6, ..., 12]."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise ValueError(f"expected agents=FIRST..LAST or agents=FIRST..LAST:STEP, not {text!r}")
    first, last = int(match[1]), int(match[2])
    step = int(match[3] or 1)
    if first < 1 or last < first or step < 1:
        raise ValueError("a sweep needs 1 <= FIRST <= LAST and STEP >= 1")
    counts = list(range(first, last + 1, step))
    if len(counts) > MAX_STEPS:
        raise ValueError(f"a sweep runs at most {MAX_STEPS} replays; use a STEP")
    return counts


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepRow:
    """The figures of every department with `agents` agents each."""

    agents: int
    run: Run
    departments: dict[str, Figures]


def sweep(
    traffic: Traffic,
    desk: Desk,
    changes: Changes,
    counts: Sequence[int],
    departments: tuple[str, ...],
    *,
    on_run: Callable[[int, int], Progress | None] = lambda i, n: None,
) -> list[SweepRow]:
    """Replay `traffic` once per agent count; `on_run(i, count)` may give a progress callback."""
    rows: list[SweepRow] = []
    for count in counts:
        changed = changes.with_agents(count, departments)
        replay_desk = changed.apply(desk, traffic.department_ids)
        result = run(traffic, replay_desk, progress=on_run(len(rows), count))
        rows.append(
            SweepRow(
                agents=count,
                run=result,
                departments={
                    d: figures(traffic.requests, result.outcomes, d, replay_desk)
                    for d in traffic.department_ids
                },
            )
        )
    return rows


def _s(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"


def format_sweep(rows: Sequence[SweepRow]) -> str:
    """One line per agent count: per department its waits (s) and missed chats."""
    if not rows:
        return ""
    depts = list(rows[0].departments)
    header = ["agents"]
    for d in depts:
        header += [f"{d} p50", "p90", "p99", "missed"]
    table = [header]
    for row in rows:
        cells = [str(row.agents)]
        for d in depts:
            f = row.departments[d]
            cells += [_s(f.p50), _s(f.p90), _s(f.p99), f"{f.missed_total:,}"]
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    )


def sweep_json(rows: Sequence[SweepRow]) -> list[dict[str, Any]]:
    return [
        {
            "agents": row.agents,
            "seconds": round(row.run.seconds, 3),
            "departments": {d: f.to_json() for d, f in row.departments.items()},
        }
        for row in rows
    ]


MATPLOTLIB_MISSING = (
    "--png needs matplotlib, which comes with helpline's bench extra: "
    "pip install 'helpline[bench]' (or, in a checkout: pip install -e '.[bench]')"
)


def draw_png(rows: Sequence[SweepRow], path: str | os.PathLike[str], title: str) -> None:
    """Draw p90 wait and missed chats against agents; raises ImportError without matplotlib."""
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    from matplotlib.ticker import MaxNLocator  # type: ignore[import-not-found, unused-ignore]

    agents = [row.agents for row in rows]
    fig, (waits, missed) = plt.subplots(1, 2, figsize=(10, 4))
    for d in rows[0].departments:
        waits.plot(agents, [row.departments[d].p90 for row in rows], marker="o", label=d)
        missed.plot(agents, [row.departments[d].missed_total for row in rows], marker="o", label=d)
    waits.set(xlabel="agents", ylabel="p90 wait (s)", title="p90 wait")
    missed.set(xlabel="agents", ylabel="missed chats", title="missed chats")
    for ax in (waits, missed):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
