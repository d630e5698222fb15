"""The store's part of the ``helpline`` command: ``--store URL``, ``migrate`` and ``store copy``.

``--store URL`` is another spelling of ``--db``: ``postgresql://user@host/db``, ``sqlite:///path``
or a plain path. ``helpline migrate`` opens the store, which applies the schema migrations it
lacks, and prints the version before and after. ``helpline store copy FROM TO`` copies a whole
desk (departments, agents, tokens, canned messages, tickets with their ratings, and the journal of
open chats) into an empty store, then counts every table on both sides and prints the counts;
a difference fails the command. Stop the daemon that uses FROM first.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Final

import trio

from engine import StoreError, copy_store, open_store, parse_store_url

__all__ = ["add_store_commands", "add_store_option", "file_of"]

EXIT_OK: Final = 0

_SHOWN: Final = (  # what `store copy` prints, from the tables it counts
    ("departments", "departments"),
    ("agents", "agents"),
    ("tokens", "tokens"),
    ("canned categories", "canned_categories"),
    ("canned messages", "canned_messages"),
    ("tickets", "tickets"),
    ("open chats", "live_chats"),
    ("open chats' lines", "live_entries"),
)


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """``--store URL``, the same option as ``--db`` (which must be defined first)."""
    parser.add_argument(
        "--store",
        dest="db",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="the store: postgresql://user@host/db, sqlite:///path or a path (same as --db)",
    )


def file_of(store: str) -> str | None:
    """The SQLite file a store option names, or None for a PostgreSQL store."""
    where = parse_store_url(store)
    return where.target if where.kind == "sqlite" else None


def add_store_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    db_option: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Register ``migrate`` and ``store copy`` on the ``helpline`` parser."""
    migrate = commands.add_parser(
        "migrate",
        help="bring the database's schema up to this helpline",
        description="Open the store, applying the schema migrations it lacks, and print its "
        "schema version before and after. A database newer than this helpline is refused.",
    )
    db_option(migrate)
    migrate.set_defaults(run=_migrate)

    store = commands.add_parser(
        "store",
        help="copy a desk from one store to another",
        description="Work on whole stores.",
    )
    actions = store.add_subparsers(dest="action", required=True, metavar="ACTION", help="copy")
    copy = actions.add_parser(
        "copy",
        help="copy every record into an empty store",
        description="Copy departments, agents, tokens, canned messages, tickets (with ratings) "
        "and the journal of open chats from FROM into the empty store TO, then count both "
        "sides and print the counts. Stop the daemon that uses FROM first. Each is "
        "postgresql://user@host/db, sqlite:///path or a path.",
    )
    copy.add_argument("source", metavar="FROM", help="the store to copy (it must exist)")
    copy.add_argument("target", metavar="TO", help="the store to fill (created if missing)")
    copy.set_defaults(run=_copy)


def _migrate(args: argparse.Namespace) -> int:
    async def run() -> tuple[int, int]:
        async with open_store(args.db) as store:
            return store.migrated_from, store.schema_version

    before, after = trio.run(run)
    where = parse_store_url(args.db)
    if before == after:
        print(f"{where}: schema version {after}, up to date")
    else:
        print(f"{where}: schema version {before} -> {after}")
    return EXIT_OK


def _copy(args: argparse.Namespace) -> int:
    source_file = file_of(args.source)
    if source_file is not None and not Path(source_file).is_file():
        raise StoreError(f"no database file {source_file} to copy from")
    if parse_store_url(args.source) == parse_store_url(args.target):
        raise StoreError("FROM and TO are the same store")

    async def run() -> None:
        async with open_store(args.source) as source, open_store(args.target) as target:
            report = await copy_store(
                source, target, target_is_postgres=file_of(args.target) is None
            )
        width = max(len(label) for label, _ in _SHOWN)
        print(f"copied {parse_store_url(args.source)} -> {parse_store_url(args.target)}")
        for label, table in _SHOWN:
            print(f"  {label:<{width}}  {report.target[table]:>8}  (source {report.source[table]})")
        print(f"  {'rated tickets':<{width}}  {report.rated:>8}")
        if not report.matches:
            differ = [t for t in report.source if report.source[t] != report.target[t]]
            raise StoreError(f"the counts differ after the copy: {', '.join(differ)}")

    trio.run(run)
    return EXIT_OK
