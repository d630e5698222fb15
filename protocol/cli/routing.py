"""The routing part of the ``helpline`` command: ``why CHAT_ID`` and ``department hours DEPT``.

``helpline why CHAT_ID`` prints a chat's routing flight recorder (SPEC.md, ``routing_trace``) as
a timeline: one line per step with its time (UTC) and what was decided, and under an offer or a
queue every candidate agent with its verdict, reason and figures. By default it reads the trace
stored with the chat's ticket (finished chats, kept for the configured days); a live chat's trace
lives in the running daemon, which ``--url`` and ``--token`` (an admin's) ask instead.

``helpline department hours DEPT`` prints a department's business hours; with ``--timezone``,
``--weekly`` or ``--holidays`` it changes them (like ``department_update`` with the ``hours_*``
fields) and a running daemon applies the change within a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import trio

from engine import Candidate, Department, Hours, RoutingTrace, Store, TraceStep
from engine.model.hours import check_hours
from engine.store import traces as trace_rows

from ..client import ClientError, connect

__all__ = ["add_routing_commands", "format_trace"]

WithStore = Callable[..., int]


def add_routing_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    department: argparse._SubParsersAction[argparse.ArgumentParser],
    db_option: Callable[[argparse.ArgumentParser], None],
    with_store: WithStore,
    error: type[Exception],
) -> None:
    """Register ``why`` and ``department hours`` on the ``helpline`` parser."""
    why = commands.add_parser(
        "why",
        help="explain where a chat went and why (its routing trace)",
        description="Print a chat's routing steps as a timeline: every offer with each candidate "
        "agent and why it was chosen or skipped, queue waits, timeouts, overflow, reassignments "
        "and how the chat ended. Reads the trace stored with a finished chat; for a live chat "
        "give the daemon's --url and an admin --token.",
    )
    why.add_argument("chat_id", metavar="CHAT_ID", help="the chat (as tickets show it)")
    why.add_argument("--url", help="ask a running daemon, e.g. ws://127.0.0.1:8765")
    why.add_argument("--token", help="an admin token for --url")
    db_option(why)
    why.set_defaults(run=lambda args: _why(args, with_store, error))

    hours = department.add_parser(
        "hours",
        help="show or set a department's business hours",
        description="Show a department's business hours, or change what is given. Outside the "
        "hours new chats become missed chats (reason closed_hours) and visitors are told when "
        "the department opens.",
    )
    hours.add_argument("id", help="the department's id")
    hours.add_argument("--timezone", metavar="ZONE", help="an IANA time zone, e.g. Europe/Berlin")
    hours.add_argument(
        "--weekly",
        nargs="*",
        metavar="SPAN",
        help="weekly spans such as 'mon-fri 09:00-17:00' 'sat 10:00-14:00' (none: always open)",
    )
    hours.add_argument(
        "--holidays", nargs="*", metavar="DATE", help="closed all day: dates YYYY-MM-DD"
    )
    db_option(hours)
    hours.set_defaults(run=lambda args: _hours(args, with_store, error))


def _why(args: argparse.Namespace, with_store: WithStore, error: type[Exception]) -> int:
    if args.url:
        if not args.token:
            raise error("--url needs an admin --token")

        async def ask() -> None:
            async with connect(args.url, role="admin", token=args.token) as admin:
                try:
                    reply = await admin.request("routing_trace", chat_id=args.chat_id)
                except ClientError as exc:
                    raise error(exc.message) from None
            print(format_trace(_from_wire(reply)))

        trio.run(ask)
        return 0

    async def job(store: Store) -> None:
        trace = await store.read(lambda conn: trace_rows.read(conn, args.chat_id))
        if trace is None:
            raise error(
                f"no stored routing trace of chat {args.chat_id!r} (a live chat's trace is in "
                "the daemon: pass --url and --token; old traces are pruned)"
            )
        print(format_trace(trace))

    return with_store(args, job)


def _from_wire(reply: Mapping[str, Any]) -> RoutingTrace:
    return RoutingTrace(
        chat_id=str(reply["chat_id"]),
        live=bool(reply["live"]),
        dropped=int(reply["dropped"]),
        steps=tuple(
            TraceStep(
                at=float(s["at"]),
                kind=str(s["kind"]),
                department=str(s["department"]),
                detail=str(s["detail"]),
                candidates=tuple(Candidate(**dict(c)) for c in s["candidates"]),
            )
            for s in reply["steps"]
        ),
    )


def format_trace(trace: RoutingTrace) -> str:
    """A trace as a readable timeline."""
    state = "live" if trace.live else "ended"
    lines = [f"chat {trace.chat_id} ({state}, {len(trace.steps)} steps)"]
    if trace.dropped:
        lines.append(f"  ... {trace.dropped} earlier steps not kept")
    for step in trace.steps:
        when = dt.datetime.fromtimestamp(step.at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{when}  [{step.department}] {step.kind}: {step.detail}".rstrip(": "))
        for c in step.candidates:
            extra = f" ({c.detail})" if c.detail else ""
            lines.append(
                f"    {c.agent:<16} {c.verdict:<8} {c.reason}{extra}"
                f"  load {c.load}/{c.capacity}, idle {c.idle:g} s"
            )
    return "\n".join(lines)


def _hours(args: argparse.Namespace, with_store: WithStore, error: type[Exception]) -> int:
    change = args.timezone is not None or args.weekly is not None or args.holidays is not None

    async def job(store: Store) -> None:
        found = [d for d in await store.departments() if d.id == args.id]
        if not found:
            raise error(f"no department {args.id!r} ('helpline department list' lists them)")
        department: Department = found[0]
        if change:
            old = department.hours
            hours = Hours(
                timezone=old.timezone if args.timezone is None else args.timezone,
                weekly=old.weekly if args.weekly is None else tuple(args.weekly),
                holidays=old.holidays if args.holidays is None else tuple(args.holidays),
            )
            _check(hours, error)
            department = dataclasses.replace(department, hours=hours)
            await store.save_department(department)
        print(_describe(department.id, department.hours))

    return with_store(args, job, changes=change)


def _check(hours: Hours, error: type[Exception]) -> None:
    try:
        check_hours(hours)
    except ValueError as exc:
        raise error(str(exc)) from None


def _describe(dept_id: str, hours: Hours) -> str:
    weekly: Sequence[str] = hours.weekly or ("always open",)
    holidays = ", ".join(hours.holidays) or "none"
    return f"department {dept_id}: {'; '.join(weekly)} ({hours.timezone}); holidays: {holidays}"
