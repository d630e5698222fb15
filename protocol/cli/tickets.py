"""``helpline tickets export``: every ticket that matches, as JSON lines.

Each line is the Ticket record of SPEC.md section 5 with its whole transcript, newest first. The
store is read a page of ``EXPORT_PAGE`` tickets at a time, and paged by key rather than by
offset: each page asks for the tickets that ended no later than the last one written (skipping
those written already), so the export costs the same per page however far it got, and tickets
that end while it runs neither repeat nor shift the pages (they are newer than the first page, so
they are not exported).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TextIO

from engine import MAX_PAGE, Store, TicketKind

from ..wire.records import ticket_record
from .common import EXIT_OK, existing_db_option, period_options, require_db, with_store

__all__ = ["EXPORT_PAGE", "add_commands", "export_tickets"]

EXPORT_PAGE: Final = MAX_PAGE
"""Tickets read from the store at a time by ``tickets export`` (the store's largest page)."""


def add_commands(commands: Any) -> None:
    """Add ``helpline tickets`` to ``commands`` (``helpline``'s subcommands)."""
    tickets = commands.add_parser(
        "tickets",
        help="export tickets",
        description="Read the tickets (finished, missed and failed chats) stored in the database.",
    )
    ticket_commands = tickets.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="export"
    )
    export = ticket_commands.add_parser(
        "export",
        help="write tickets as JSON lines",
        description=(
            "Write every ticket that matches the filters as one JSON object per line, newest "
            "first: the Ticket record of protocol/SPEC.md section 5, with the whole transcript "
            "('entries'), the transfers and invites ('handoffs') and the rating comment. Any "
            "number of tickets streams out; it works while the daemon runs."
        ),
    )
    export.add_argument(
        "--kind",
        choices=[kind.value for kind in TicketKind],
        help="only finished chats (transcript), chats nobody took (missed), or chats lost to a "
        "server fault (failed) (default: all three)",
    )
    export.add_argument("--department", metavar="ID", help="only tickets of this department")
    export.add_argument(
        "--agent", metavar="ID", help="only chats this agent handled (owned, or was invited to)"
    )
    export.add_argument(
        "--visitor-email",
        metavar="EMAIL",
        help="only chats of the visitor with this email address (compared without regard to case)",
    )
    period_options(export, "tickets of chats")
    export.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="FILE",
        help="the file to write; it is replaced only once the export is complete "
        "(default: -, standard output)",
    )
    existing_db_option(export)
    export.set_defaults(run=_tickets_export)


async def export_tickets(
    store: Store,
    out: TextIO,
    filters: Mapping[str, Any],
    *,
    since: float | None = None,
    until: float | None = None,
    ascii_only: bool = False,
    page_size: int = EXPORT_PAGE,
) -> int:
    """Write every ticket matching ``filters`` to ``out`` as JSON lines, newest first.

    Pages by key (see the module docstring): the next page holds the tickets that ended no later
    than the last one written, less the ``skip`` at its head that were written already (those
    that ended at that same moment). ``page_size`` is at most the store's ``MAX_PAGE``. Returns
    how many tickets were written.
    """
    names = {a.id: a.name for a in await store.agents()}

    def name_of(agent_id: str) -> str:
        return names.get(agent_id, agent_id)

    written, bound, skip = 0, until, 0
    while True:
        page = await store.tickets(
            **filters, since=since, until=bound, limit=page_size, offset=skip
        )
        for ticket in page:
            record = ticket_record(ticket, name_of)
            out.write(json.dumps(record, ensure_ascii=ascii_only, allow_nan=False) + "\n")
        written += len(page)
        if len(page) < page_size:
            return written
        last = page[-1].ended_at
        run = sum(1 for ticket in page if ticket.ended_at == last)
        next_bound = math.nextafter(last, math.inf)
        skip = skip + run if next_bound == bound else run
        bound = next_bound


def _tickets_export(args: argparse.Namespace) -> int:
    filters: dict[str, Any] = {
        "kind": None if args.kind is None else TicketKind(args.kind),
        "department": args.department,
        "agent": args.agent,
        "visitor_email": args.visitor_email,
    }
    require_db(args)
    if args.output == "-":
        stdout = sys.stdout
        ascii_only = (stdout.encoding or "").lower().replace("-", "") != "utf8"

        async def to_stdout(store: Store) -> None:
            try:
                await export_tickets(
                    store,
                    stdout,
                    filters,
                    since=args.since,
                    until=args.until,
                    ascii_only=ascii_only,
                )
                stdout.flush()
            except BrokenPipeError:  # the reader went away (| head): stop quietly
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stdout.fileno())  # so that the interpreter's last flush is quiet
                os.close(devnull)

        return with_store(args, to_stdout)
    # Into FILE.partial first, renamed to FILE once complete: FILE is never half written.
    partial_path = Path(f"{args.output}.partial")
    written = 0
    try:
        with partial_path.open("w", encoding="utf-8") as out:

            async def to_file(store: Store) -> None:
                nonlocal written
                written = await export_tickets(
                    store, out, filters, since=args.since, until=args.until
                )

            with_store(args, to_file)
        partial_path.replace(args.output)
    except BaseException:
        partial_path.unlink(missing_ok=True)
        raise
    print(
        f"exported {written} ticket{'' if written == 1 else 's'} to {args.output}", file=sys.stderr
    )
    return EXIT_OK
