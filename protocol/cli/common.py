"""What the ``helpline`` subcommands share: exit statuses, the database options, the store.

The commands other than ``serve`` open the store directly, do one thing and exit; SQLite's WAL
mode lets them run while the daemon runs. They refuse a database file that does not exist instead
of creating an empty one (a mistyped ``--db`` would otherwise pass silently). After changing
departments, agents or canned messages they bump the database's change counter
(``server.daemon.note_change``), and a running daemon applies the change within a second.
"""

from __future__ import annotations

import argparse
import datetime
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import trio

from engine import Department, Store, open_store

from ..server.daemon import note_change
from ..server.settings import DEFAULT_DB
from .store import add_store_option, file_of

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "TIME_HELP",
    "CommandError",
    "db_option",
    "existing_db_option",
    "parse_time",
    "period_options",
    "require_db",
    "stored_department",
    "with_store",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

TIME_HELP: Final = (
    "seconds since the Unix epoch, or an ISO 8601 date or time such as 2024-05-01 or "
    "2024-05-01T09:30+02:00 (without an offset: UTC)"
)


class CommandError(Exception):
    """A command cannot do what it was asked; the message says why."""


def db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help=f"the SQLite database file (default: ./{DEFAULT_DB}); created if missing, but its "
        "directory must exist",
    )
    add_store_option(parser)


def existing_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help=f"the daemon's SQLite database file (default: ./{DEFAULT_DB}); it must exist "
        "('helpline serve' creates it), and may be in use by a running daemon",
    )
    add_store_option(parser)


def parse_time(text: str) -> float:
    """``text`` as seconds since the epoch: a number of seconds, or an ISO 8601 date or time.

    A time without a UTC offset is taken as UTC, like every time on the wire.
    """
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.datetime.fromisoformat(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {TIME_HELP}, not {text!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        seconds = moment.timestamp()
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"expected a time after 1970, not {text!r}")
    return seconds


def period_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--since",
        type=parse_time,
        metavar="TIME",
        help=f"only {what} that ended at or after TIME: {TIME_HELP}",
    )
    parser.add_argument(
        "--until",
        type=parse_time,
        metavar="TIME",
        help=f"only {what} that ended before TIME (same forms as --since)",
    )


def with_store(
    args: argparse.Namespace,
    job: Callable[[Store], Awaitable[None]],
    *,
    changes: bool = False,
) -> int:
    """Run ``job`` on the existing database; ``changes``: then tell a running daemon."""
    require_db(args)

    async def run() -> None:
        async with open_store(args.db, synchronous="FULL") as store:
            await job(store)
            if changes:
                await note_change(store)

    trio.run(run)
    return EXIT_OK


def require_db(args: argparse.Namespace) -> None:
    """Refuse a database file that does not exist: only ``serve`` creates one."""
    path = file_of(args.db)
    if path is not None and not Path(path).is_file():
        raise CommandError(
            f"no database file {args.db}; pass the daemon's database with --db PATH "
            f"(the file 'helpline serve --db' uses; default ./{DEFAULT_DB}), or run "
            f"'helpline serve --db {args.db}' once to create it"
        )


async def stored_department(store: Store, dept_id: str) -> Department:
    found = next((d for d in await store.departments() if d.id == dept_id), None)
    if found is None:
        raise CommandError(f"no department {dept_id!r} ('helpline department list' lists them)")
    return found
