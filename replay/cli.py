"""``helpline replay``: what would that stretch of traffic have looked like with another desk?

`register(commands)` adds the command to the ``helpline`` parser (its subparsers object); the
command's function returns the exit status: 0 when the replay ran, 1 when it could not (the reason
on standard error), 2 for a usage error (from argparse).

The figures go to standard output (a table per department, or one JSON object with ``--json``);
a progress line goes to standard error once a replay has run for a couple of seconds. The engine's
own log lines are kept to warnings, on standard error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import structlog
import trio

from engine import Hours, RoutingMode, StoreError
from engine.model.hours import check_hours

from .desk import ALL, Changes, Desk, generated_desk, recorded_desk
from .report import build_report, duration, format_report, report_json
from .simulate import Progress, run
from .sweep import MATPLOTLIB_MISSING, draw_png, format_sweep, parse_sweep, sweep, sweep_json
from .traffic import Traffic, generate_day, read_jsonl, read_store

__all__ = ["register"]

T = TypeVar("T")

DESCRIPTION = """\
Replay a recorded stretch of chat traffic against another configuration, on a virtual clock, and
print per department the waits (p50, p90, p99 seconds until an agent accepted), the missed chats
by reason and the agents' utilisation, side by side with what really happened.

The traffic is every chat request with its time and department and each chat's handle time (from
accept to end), read from a store's tickets (--db), from a file written by 'helpline tickets
export' (--from), or generated (--generate N: a synthetic day, first run once with a default desk
to record what "really happened"). The replay runs the real engine, the same routing code as the
daemon, over a temporary database: simulated agents go online, accept offers after a reaction
time and end each chat after its recorded handle time; simulated visitors open their chats at
their recorded times, and a visitor who left the queue in the recording leaves after the same
wait. A chat nobody took has no recorded handle time: it gets one drawn from its department's.

The desk replayed against is, unless changed, the one recorded: the store's departments and the
agents who handled chats in that stretch (all of them online throughout). Change it with
--agents, --agent-capacity, --routing, --queue-timeout, --queue-limit, --hours, --timezone,
--overflow-wait, --overflow-queue and --overflow-to, each either for every department
(--agents 8) or for one (--agents support=8, repeatable). The engine's clock shows the recorded
days (a generated day is Tuesday 2024-05-14, UTC), so other business hours close the desk when
they would have.
"""

EPILOG = """\
examples:
  helpline replay --db helpline.db --since 2024-05-14 --until 2024-05-15
  helpline replay --db helpline.db --since 2024-05-14 --until 2024-05-15 --agents support=8
  helpline replay --from tickets.jsonl --routing assigned --json
  helpline replay --generate 2000 --agents 4 --department support
  helpline replay --generate 2000 --sweep agents=2..8 --png sweep.png
  helpline replay --generate 2000 --hours 'mon-fri 09:00-12:00' --timezone Europe/Berlin
  helpline replay --generate 2000 --overflow-queue support=3 --overflow-to support=sales

Utilisation is busy chat-seconds / (agents x capacity x span), the span running from the first
request to the end of the last chat. Times for --since and --until are seconds since the epoch or
ISO 8601 (UTC unless an offset is given); like 'helpline tickets export' they select tickets by
when the chat ended.
"""


def register(commands: Any, parse_time: Callable[[str], float]) -> None:
    """Add ``replay`` to the subparsers of the ``helpline`` command; ``parse_time`` reads
    --since and --until (the command line's own, shared by its commands)."""
    p: argparse.ArgumentParser = commands.add_parser(
        "replay",
        help="replay recorded traffic against another configuration (what-if)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_argument_group("the traffic (one of --db, --from, --generate)")
    source.add_argument(
        "--db",
        "--store",
        dest="db",
        metavar="PATH",
        help="read the tickets of this helpline database, and the desk it was run with (its "
        "departments' settings and agents); with --from, only the desk",
    )
    source.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="read the tickets from FILE, JSON lines as 'helpline tickets export' writes them "
        "(without --db the desk is guessed: default department settings, the agents named on "
        "the tickets, capacity 3)",
    )
    source.add_argument(
        "--generate",
        type=_positive_int,
        metavar="N",
        help="generate a day of N chats (Poisson arrivals over a working-day profile, sales 35%% "
        "broadcast, support 65%% assigned, lognormal handle times and patience) and record it "
        "with a desk staffed for its peak, then replay that recording",
    )
    source.add_argument(
        "--seed", type=int, default=1, metavar="N", help="the generator's seed (default: 1)"
    )
    source.add_argument(
        "--record",
        metavar="PATH",
        help="with --generate: keep the recorded day's database at PATH (a new file), to export "
        "or replay again",
    )
    source.add_argument(
        "--since", type=parse_time, metavar="TIME", help="only chats that ended at or after TIME"
    )
    source.add_argument(
        "--until", type=parse_time, metavar="TIME", help="only chats that ended before"
    )
    source.add_argument(
        "--department",
        action="append",
        default=[],
        metavar="ID",
        help="replay only this department's chats (repeatable; default: every department)",
    )
    whatif = p.add_argument_group(
        "the what-if (each VALUE is for every department, or DEPT=VALUE for one; repeatable)"
    )
    whatif.add_argument(
        "--agents",
        action="append",
        default=[],
        metavar="[DEPT=]N",
        help="staff the department with N agents (of its recorded capacity unless "
        "--agent-capacity says otherwise)",
    )
    whatif.add_argument(
        "--agent-capacity",
        action="append",
        default=[],
        metavar="[DEPT=]N",
        help="how many chats each of the department's agents holds at once",
    )
    whatif.add_argument(
        "--routing",
        action="append",
        default=[],
        metavar="[DEPT=]MODE",
        help="broadcast (every eligible agent is offered the chat; the first to accept takes it) "
        "or assigned (one agent at a time: least loaded, then longest idle)",
    )
    whatif.add_argument(
        "--queue-timeout",
        action="append",
        default=[],
        metavar="[DEPT=]SECONDS",
        help="how long a chat waits in the queue before it is missed",
    )
    whatif.add_argument(
        "--queue-limit",
        action="append",
        default=[],
        metavar="[DEPT=]N",
        help="how many chats may wait in the department's queue",
    )
    whatif.add_argument(
        "--hours",
        action="append",
        default=[],
        metavar="[DEPT=]SPANS",
        help="business hours: weekly spans separated by ';' such as 'mon-fri 09:00-17:00; sat "
        "10:00-14:00', or 'always'; outside them a request is missed (reason closed_hours)",
    )
    whatif.add_argument(
        "--timezone",
        action="append",
        default=[],
        metavar="[DEPT=]ZONE",
        help="the time zone of the business hours, such as Europe/Berlin",
    )
    whatif.add_argument(
        "--overflow-wait",
        action="append",
        default=[],
        metavar="[DEPT=]SECONDS",
        help="overflow a chat whose estimated wait passes SECONDS (0: off)",
    )
    whatif.add_argument(
        "--overflow-queue",
        action="append",
        default=[],
        metavar="[DEPT=]N",
        help="overflow a chat that would wait behind N others (0: off)",
    )
    whatif.add_argument(
        "--overflow-to",
        action="append",
        default=[],
        metavar="[DEPT=]D1,D2",
        help="the departments an overflowing chat is offered to, in order ('none': it is missed "
        "with reason overflow)",
    )
    whatif.add_argument(
        "--reaction",
        type=_non_negative,
        metavar="SECONDS",
        help="the median time a simulated agent takes to accept an offer (default: 4)",
    )
    whatif.add_argument(
        "--sweep",
        metavar="agents=A..B[:STEP]",
        help="replay once per number of agents from A to B (that many in every replayed "
        "department at once; choose them with --department) and print a table of waits and "
        "missed chats against agents",
    )
    whatif.add_argument(
        "--png",
        metavar="FILE",
        help="with --sweep: draw p90 waits and missed chats against agents into FILE (needs "
        "matplotlib: pip install 'helpline[bench]')",
    )
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    out.add_argument("--quiet", action="store_true", help="no progress line on standard error")
    p.set_defaults(run=_main)


# --- argument types -------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, not {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, not {text!r}")
    return value


class UsageError(Exception):
    """An option's value cannot be used; the message says why."""


def _per_department(values: list[str], option: str, convert: Callable[[str], T]) -> dict[str, T]:
    """``["8", "support=4"]`` -> ``{"": 8, "support": 4}``."""
    found: dict[str, T] = {}
    for value in values:
        dept, _, raw = value.rpartition("=")
        try:
            found[dept or ALL] = convert(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise UsageError(f"{option} {value}: {exc}") from None
    return found


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected at least 1")
    return value


def _seconds(text: str) -> float:
    return _non_negative(text)


def _changes(args: argparse.Namespace) -> Changes:
    return Changes(
        agents=_per_department(args.agents, "--agents", _count),
        capacity=_per_department(args.agent_capacity, "--agent-capacity", _count),
        routing=_per_department(args.routing, "--routing", RoutingMode),
        queue_timeout=_per_department(args.queue_timeout, "--queue-timeout", _seconds),
        queue_limit=_per_department(args.queue_limit, "--queue-limit", _count),
        hours=_per_department(args.hours, "--hours", _weekly),
        timezone=_per_department(args.timezone, "--timezone", _zone),
        overflow_wait=_per_department(args.overflow_wait, "--overflow-wait", _seconds),
        overflow_queue=_per_department(args.overflow_queue, "--overflow-queue", _at_least_0),
        overflow_to=_per_department(args.overflow_to, "--overflow-to", _departments),
        reaction=args.reaction,
    )


def _weekly(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "always":
        return ()
    spans = tuple(s.strip() for s in text.split(";") if s.strip())
    check_hours(Hours(weekly=spans))
    return spans


def _zone(text: str) -> str:
    check_hours(Hours(timezone=text.strip()))
    return text.strip()


def _at_least_0(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("expected 0 or more")
    return value


def _departments(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "none":
        return ()
    return tuple(d.strip() for d in text.split(",") if d.strip())


# --- the command ----------------------------------------------------------------------------------


def _main(args: argparse.Namespace) -> int:
    _quiet_logs()
    try:
        return _replay(args)
    except (UsageError, ValueError, OSError, StoreError, sqlite3.Error) as exc:
        print(f"helpline replay: {exc}", file=sys.stderr)
        return 1


def _replay(args: argparse.Namespace) -> int:
    sources = [x for x in (args.from_file, args.generate) if x is not None]
    if len(sources) > 1 or not (sources or args.db):
        raise UsageError("name one source of traffic: --db PATH, --from FILE or --generate N")
    if args.record and args.generate is None:
        raise UsageError("--record keeps a generated day's database: use it with --generate")
    if args.png and not args.sweep:
        raise UsageError("--png draws a sweep: use it with --sweep")
    counts = parse_sweep(args.sweep) if args.sweep else []
    changes = _changes(args)
    progress = _ProgressLine(enabled=not args.quiet)
    traffic, desk = _traffic(args, progress)
    if args.department:
        unknown = sorted(set(args.department) - set(traffic.department_ids))
        if unknown:
            raise UsageError(
                f"no chats of {', '.join(unknown)} in the traffic "
                f"(it has {', '.join(traffic.department_ids) or 'none'})"
            )
        traffic = traffic.only(args.department)
    desk = desk.only(traffic.department_ids)
    for option, values in (
        ("--agents", changes.agents),
        ("--agent-capacity", changes.capacity),
        ("--routing", changes.routing),
        ("--queue-timeout", changes.queue_timeout),
        ("--queue-limit", changes.queue_limit),
        ("--hours", changes.hours),
        ("--timezone", changes.timezone),
        ("--overflow-wait", changes.overflow_wait),
        ("--overflow-queue", changes.overflow_queue),
        ("--overflow-to", changes.overflow_to),
    ):
        stray = sorted(set(values) - {ALL, *traffic.department_ids})
        if stray:
            raise UsageError(f"{option}: no chats of {', '.join(stray)} in the traffic")
    targets = {d for ds in changes.overflow_to.values() for d in ds}
    stray = sorted(targets - set(traffic.department_ids))
    if stray:
        raise UsageError(f"--overflow-to: no department {', '.join(stray)} in the replay")
    if not traffic.requests:
        raise UsageError("no chats to replay in that period")
    if not desk.agents and not changes.agents:
        raise UsageError("the traffic names no agents; say how many with --agents N")
    out = sys.stdout
    if counts:
        return _sweep(args, traffic, desk, changes, counts, progress, out)
    replay_desk = changes.apply(desk, traffic.department_ids)
    result = run(traffic, replay_desk, progress=progress.phase("replaying"))
    progress.clear()
    report = build_report(traffic, result, desk)
    if args.json:
        out.write(json.dumps(report_json(report), indent=2) + "\n")
    else:
        out.write(format_report(report) + "\n")
    return 0


def _traffic(args: argparse.Namespace, progress: _ProgressLine) -> tuple[Traffic, Desk]:
    """The traffic to replay and the desk it was recorded with."""
    if args.generate is not None:
        day = generate_day(args.generate, seed=args.seed)
        desk = generated_desk(day)
        with tempfile.TemporaryDirectory(prefix="helpline-replay-") as tmp:
            db = Path(args.record) if args.record else Path(tmp) / "recorded.db"
            if db.exists():
                raise UsageError(f"--record {db}: the file exists; name a new one")
            run(day, desk, db=db, progress=progress.phase("recording the generated day"))
            traffic = trio.run(_read_store, db, args)
        progress.clear()
        recorded = Traffic(
            requests=traffic.requests,
            source=day.source,
            start=traffic.start,
            departments=traffic.departments,
            agents=traffic.agents,
            drawn_handles=traffic.drawn_handles,
            skipped_failed=traffic.skipped_failed,
        )
        return recorded, dataclass_replace_reaction(recorded_desk(recorded), desk.reaction)
    if args.from_file is not None:
        traffic = read_jsonl(args.from_file, since=args.since, until=args.until, seed=args.seed)
        if args.db:
            stored = trio.run(_read_store, args.db, args)
            traffic = Traffic(
                requests=traffic.requests,
                source=traffic.source,
                start=traffic.start,
                departments=stored.departments,
                agents=stored.agents,
                drawn_handles=traffic.drawn_handles,
                skipped_failed=traffic.skipped_failed,
            )
        return traffic, recorded_desk(traffic)
    traffic = trio.run(_read_store, args.db, args)
    return traffic, recorded_desk(traffic)


def dataclass_replace_reaction(desk: Desk, reaction: float) -> Desk:
    return Desk(departments=desk.departments, agents=desk.agents, reaction=reaction)


async def _read_store(db: str | os.PathLike[str], args: argparse.Namespace) -> Traffic:
    return await read_store(db, since=args.since, until=args.until, seed=args.seed)


def _sweep(
    args: argparse.Namespace,
    traffic: Traffic,
    desk: Desk,
    changes: Changes,
    counts: list[int],
    progress: _ProgressLine,
    out: TextIO,
) -> int:
    def on_run(i: int, count: int) -> Progress | None:
        return progress.phase(f"sweep {i + 1}/{len(counts)}: {count} agents")

    rows = sweep(traffic, desk, changes, counts, tuple(args.department), on_run=on_run)
    progress.clear()
    spent = sum(row.run.seconds for row in rows)
    if args.json:
        out.write(json.dumps({"source": traffic.source, "sweep": sweep_json(rows)}, indent=2))
        out.write("\n")
    else:
        where = f", department {', '.join(args.department)}" if args.department else ""
        out.write(
            f"swept {len(rows)} replays of {len(traffic.requests):,} chats from {traffic.source}"
            f"{where}, {duration(traffic.span)} of traffic each, in {spent:.1f} s; waits in "
            "seconds, agents per department\n\n"
        )
        out.write(format_sweep(rows) + "\n")
    if args.png:
        try:
            draw_png(rows, args.png, f"replay of {traffic.source}")
        except ImportError:
            print(f"helpline replay: {MATPLOTLIB_MISSING}", file=sys.stderr)
            return 1
        print(f"chart written to {args.png}", file=sys.stderr)
    return 0


class _ProgressLine:
    """One line on stderr, once a phase has run for two seconds, at most once a second."""

    def __init__(self, *, enabled: bool, stream: TextIO | None = None) -> None:
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._width = 0

    def phase(self, label: str) -> Progress | None:
        if not self._enabled:
            return None
        started = time.monotonic()
        last = started

        def update(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - started < 2 or (now - last < 1 and done < total):
                return
            last = now
            self._write(f"{label}: {done:,}/{total:,} chats opened, {now - started:.0f} s")

        return update

    def _write(self, line: str) -> None:
        if self._stream.isatty():
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def clear(self) -> None:
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0


def _quiet_logs() -> None:
    """The engine's log lines: warnings and errors only, on standard error."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
