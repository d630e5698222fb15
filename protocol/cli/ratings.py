"""``helpline ratings``: the good, neutral and bad ratings per agent and per department."""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

from engine import Store

from ..wire.frames import RATINGS
from ..wire.records import rating_report_record
from .common import existing_db_option, period_options, with_store

__all__ = ["add_commands", "format_ratings"]


def add_commands(commands: Any) -> None:
    """Add ``helpline ratings`` to ``commands`` (``helpline``'s subcommands)."""
    ratings = commands.add_parser(
        "ratings",
        help="report visitors' ratings",
        description=(
            "Count the good, neutral and bad ratings visitors gave, per agent (the agent that "
            "held the chat when it ended) and per department, for chats that ended in the period "
            "(default: all time)."
        ),
    )
    period_options(ratings, "chats")
    ratings.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object shaped like the reply to the rating_report request of "
        "protocol/SPEC.md, plus 'since' and 'until', instead of tables",
    )
    existing_db_option(ratings)
    ratings.set_defaults(run=_ratings)


def _ratings(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        report = rating_report_record(await store.rating_report(since=args.since, until=args.until))
        if args.json:
            print(json.dumps({**report, "since": args.since, "until": args.until}))
        else:
            print(format_ratings(report, since=args.since, until=args.until), end="")

    return with_store(args, job)


def _when(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def format_ratings(
    report: Mapping[str, Any], *, since: float | None = None, until: float | None = None
) -> str:
    """The ``rating_report`` fields as readable text: the period, then a table per agent and per
    department, then the totals."""
    if since is None and until is None:
        period = "at any time"
    elif until is None:
        period = f"since {_when(since or 0.0)}"
    elif since is None:
        period = f"before {_when(until)}"
    else:
        period = f"from {_when(since)} to {_when(until)}"
    lines = [f"Ratings of chats that ended {period}"]
    total = sum(report[rating] for rating in RATINGS)
    if total == 0:
        return "\n".join([*lines, "", "No rated chats."]) + "\n"
    for title, rows, key in (
        ("agent", report["by_agent"], "agent_id"),
        ("department", report["by_department"], "department"),
    ):
        table = [[str(row[key]), *(str(row[r]) for r in RATINGS)] for row in rows]
        table.append(["total", *(str(report[r]) for r in RATINGS)])
        lines += ["", *_table([title, *RATINGS], table)]
    return "\n".join(lines) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the numbers right-aligned."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    return [line(header), *(line(row) for row in rows)]
