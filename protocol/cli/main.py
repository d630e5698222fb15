"""The ``helpline`` command: run the daemon, manage agents, departments and tokens, and read the
tickets and ratings.

Theory of operation
-------------------
``helpline serve`` runs the daemon (``server/daemon.py``) until SIGINT or SIGTERM; it creates its
database file when there is none (and says so), but not a missing directory. The other commands
open the SQLite store directly, do one thing and exit; SQLite's WAL mode lets them run while the
daemon runs. They refuse a database file that does not exist instead of creating an empty one (a
mistyped ``--db`` would otherwise pass silently). Tokens they issue work at once (the daemon reads
tokens at every hello); after changing departments, agents or canned messages they bump the
database's change counter (``server.daemon.note_change``), and a running daemon applies the change
within a second, through the same engine calls as the admin requests (SPEC.md section 6.4).

The department and canned-message commands mirror the admin requests: ``department chat`` and
``department set`` are ``department_update``; ``canned category add|list|remove`` and ``canned
add|list|edit|remove`` are ``canned_category_add``, ``canned_list``, ``canned_category_delete``,
``canned_add``, ``canned_edit`` and ``canned_delete``, with the same checks.

``helpline tickets export`` writes one JSON object per line, each the Ticket record of SPEC.md
section 5 with its whole transcript, newest first. It reads the store a page of ``EXPORT_PAGE``
tickets at a time, and pages by key rather than by offset: each page asks for the tickets that
ended no later than the last one written (skipping those written already), so the export costs the
same per page however far it got, and tickets that end while it runs neither repeat nor shift the
pages (they are newer than the first page, so they are not exported).

Every command prints its result on standard output (a token alone on its line, so a script can
capture it) and its errors on standard error. Exit status: 0 on success, 1 when the command failed,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final, TextIO

import trio

from engine import (
    MAX_PAGE,
    Agent,
    CannedDesk,
    CannedMessage,
    Department,
    EngineError,
    RoutingMode,
    Store,
    StoreError,
    TicketKind,
    open_store,
)
from replay.cli import register as register_replay

from ..server.auth import ADMIN_NAME, issue_token
from ..server.daemon import (
    LOG_FORMATS,
    NEW_TOKEN_HINT,
    DaemonError,
    check_db_path,
    configure_logging,
    note_change,
    run_daemon,
)
from ..server.settings import DEFAULT_DB, DEFAULT_HOST, DEFAULT_PORT, ConfigError, load_config
from ..wire.frames import RATINGS, Role
from ..wire.records import rating_report_record, ticket_record
from .store import add_store_commands, add_store_option, file_of

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2

EXPORT_PAGE: Final = MAX_PAGE
"""Tickets read from the store at a time by ``tickets export`` (the store's largest page)."""

_TIME_HELP: Final = (
    "seconds since the Unix epoch, or an ISO 8601 date or time such as 2024-05-01 or "
    "2024-05-01T09:30+02:00 (without an offset: UTC)"
)


class CommandError(Exception):
    """A command cannot do what it was asked; the message says why."""


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help=f"the SQLite database file (default: ./{DEFAULT_DB}); created if missing, but its "
        "directory must exist",
    )
    add_store_option(parser)


def _existing_db_option(parser: argparse.ArgumentParser) -> None:
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
            raise argparse.ArgumentTypeError(f"expected {_TIME_HELP}, not {text!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        seconds = moment.timestamp()
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"expected a time after 1970, not {text!r}")
    return seconds


def _period_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--since",
        type=parse_time,
        metavar="TIME",
        help=f"only {what} that ended at or after TIME: {_TIME_HELP}",
    )
    parser.add_argument(
        "--until",
        type=parse_time,
        metavar="TIME",
        help=f"only {what} that ended before TIME (same forms as --since)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``helpline`` command."""
    parser = argparse.ArgumentParser(
        prog="helpline",
        description="helpline: a live-chat routing engine for help desks.",
        epilog="Run 'helpline COMMAND --help' for the options of each command.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do (below)"
    )

    serve = commands.add_parser(
        "serve",
        help="run the daemon",
        description=(
            "Run the daemon: serve the WebSocket protocol (protocol/SPEC.md) until SIGINT or "
            "SIGTERM, then send every client a shutdown event and write a ticket for every live "
            "chat. It creates the database file if there is none, and says so. Once it listens, "
            "on first start with an empty database, it prints a new admin token once ("
            + NEW_TOKEN_HINT
            + "). It prints 'helpline listening on ws://HOST:PORT' when it is ready. Agents, "
            "departments and canned messages changed with the other commands reach it within "
            "a second."
        ),
    )
    serve.add_argument(
        "--host", metavar="HOST", help=f"interface to listen on (default: {DEFAULT_HOST})"
    )
    serve.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help=f"TCP port (default: {DEFAULT_PORT}); 0 picks a free port and prints it",
    )
    _db_option(serve)
    serve.add_argument(
        "--config",
        metavar="FILE",
        help=(
            "a TOML file with [server] settings, [engine] timings, [[departments]], [[agents]] "
            "and [[canned]] messages; --host and --port override its [server] values "
            "(default: built-in settings and one department, 'support')"
        ),
    )
    serve.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="console",
        help="how logs are written to standard error: one JSON object per line, or readable "
        "console lines (default: console)",
    )
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="the least severe log level written (default: info)",
    )
    serve.set_defaults(run=_serve)

    agent = commands.add_parser(
        "agent",
        help="add, update, list or remove agents",
        description="Manage the agents stored in the database.",
    )
    agent_commands = agent.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="add, update, list or remove"
    )
    add = agent_commands.add_parser(
        "add", help="add an agent", description="Add an agent (offline, ringtone on)."
    )
    add.add_argument("id", help="the agent's id (as it signs in and appears in tickets)")
    add.add_argument("--name", required=True, help="the agent's display name")
    add.add_argument(
        "--department",
        dest="departments",
        action="append",
        required=True,
        metavar="ID",
        help="a department whose chats the agent takes; repeat for several",
    )
    add.add_argument(
        "--capacity",
        type=int,
        default=3,
        help="how many chats the agent may hold at once (default: 3)",
    )
    _existing_db_option(add)
    add.set_defaults(run=_agent_add)
    update = agent_commands.add_parser(
        "update",
        help="change an agent",
        description="Change an agent's name, departments or capacity; the rest stays.",
    )
    update.add_argument("id", help="the agent's id")
    update.add_argument("--name", help="the agent's display name")
    update.add_argument(
        "--department",
        dest="departments",
        action="append",
        metavar="ID",
        help="a department whose chats the agent takes; repeat for several (they replace the "
        "agent's departments)",
    )
    update.add_argument("--capacity", type=int, help="how many chats the agent may hold at once")
    _existing_db_option(update)
    update.set_defaults(run=_agent_update)
    listing = agent_commands.add_parser(
        "list", help="list agents", description="List the agents, one per line."
    )
    _existing_db_option(listing)
    listing.set_defaults(run=_agent_list)
    remove = agent_commands.add_parser(
        "remove",
        help="remove an agent",
        description="Remove an agent and revoke its tokens; its tickets remain.",
    )
    remove.add_argument("id", help="the agent's id")
    _existing_db_option(remove)
    remove.set_defaults(run=_agent_remove)

    department = commands.add_parser(
        "department",
        help="add, list or change departments",
        description="Manage the departments stored in the database.",
    )
    dept_commands = department.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="add, list, chat or set"
    )
    dept_add = dept_commands.add_parser(
        "add", help="add a department", description="Add a department."
    )
    dept_add.add_argument("id", help="the department's id (visitors open chats in it by id)")
    dept_add.add_argument("--name", required=True, help="the department's display name")
    dept_add.add_argument(
        "--routing",
        choices=[mode.value for mode in RoutingMode],
        default=RoutingMode.BROADCAST.value,
        help="broadcast: offer each chat to every eligible agent, first accept wins; "
        "assigned: one agent at a time, least loaded first (default: broadcast)",
    )
    dept_add.add_argument(
        "--offer-window",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long an offer stays open (default: 30)",
    )
    dept_add.add_argument(
        "--queue-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a chat may wait in the queue before it becomes a missed chat (default: 300)",
    )
    dept_add.add_argument(
        "--queue-limit",
        type=int,
        default=50,
        metavar="N",
        help="how many chats may wait in the queue (default: 50)",
    )
    dept_add.add_argument(
        "--chat-off",
        action="store_true",
        help="create it with chat switched off: visitors' questions become missed chats",
    )
    _existing_db_option(dept_add)
    dept_add.set_defaults(run=_department_add)
    dept_list = dept_commands.add_parser(
        "list", help="list departments", description="List the departments, one per line."
    )
    _existing_db_option(dept_list)
    dept_list.set_defaults(run=_department_list)
    dept_chat = dept_commands.add_parser(
        "chat",
        help="switch a department's chat on or off",
        description=(
            "Switch a department's chat on or off. While it is off, visitors' questions become "
            "missed chats at once; chats already running go on. A running daemon applies it "
            "within a second (like the department_update admin request)."
        ),
    )
    dept_chat.add_argument("id", help="the department's id")
    dept_chat.add_argument("state", choices=("on", "off"), help="on: take chats; off: do not")
    _existing_db_option(dept_chat)
    dept_chat.set_defaults(run=_department_chat)
    dept_set = dept_commands.add_parser(
        "set",
        help="change a department's name, routing and timings",
        description=(
            "Change the settings given; the others stay. A running daemon applies them within "
            "a second (like the department_update admin request); chats already offered or "
            "queued keep the deadlines they have."
        ),
    )
    dept_set.add_argument("id", help="the department's id")
    dept_set.add_argument("--name", help="the department's display name")
    dept_set.add_argument(
        "--routing",
        choices=[mode.value for mode in RoutingMode],
        help="broadcast: offer each chat to every eligible agent, first accept wins; "
        "assigned: one agent at a time, least loaded first",
    )
    dept_set.add_argument(
        "--offer-window", type=float, metavar="SECONDS", help="how long an offer stays open"
    )
    dept_set.add_argument(
        "--queue-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a chat may wait in the queue before it becomes a missed chat",
    )
    dept_set.add_argument(
        "--queue-limit", type=int, metavar="N", help="how many chats may wait in the queue"
    )
    _existing_db_option(dept_set)
    dept_set.set_defaults(run=_department_set)

    _canned_parsers(commands)

    token = commands.add_parser(
        "token",
        help="issue a sign-in token",
        description=(
            "Issue a new sign-in token and print it; the previous token of the same agent (or "
            "admin) is revoked. The database keeps only a hash, so the token is shown only now."
        ),
    )
    token.add_argument("agent", nargs="?", help="the agent to issue a token for")
    token.add_argument(
        "--admin",
        action="store_true",
        help="issue an administrator's token instead of an agent's",
    )
    token.add_argument(
        "--name",
        default=ADMIN_NAME,
        help=f"with --admin: the administrator's name (default: {ADMIN_NAME})",
    )
    _existing_db_option(token)
    token.set_defaults(run=_token)

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
    _period_options(export, "tickets of chats")
    export.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="FILE",
        help="the file to write; it is replaced only once the export is complete "
        "(default: -, standard output)",
    )
    _existing_db_option(export)
    export.set_defaults(run=_tickets_export)

    ratings = commands.add_parser(
        "ratings",
        help="report visitors' ratings",
        description=(
            "Count the good, neutral and bad ratings visitors gave, with the average of their "
            "1-5 scores, per agent (the agent that held the chat when it ended) and per "
            "department, for chats that ended in the period (default: all time)."
        ),
    )
    _period_options(ratings, "chats")
    ratings.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object shaped like the reply to the rating_report request of "
        "protocol/SPEC.md, plus 'since' and 'until', instead of tables",
    )
    _existing_db_option(ratings)
    ratings.set_defaults(run=_ratings)
    add_store_commands(commands, _db_option)
    register_replay(commands)
    return parser


def _canned_parsers(commands: Any) -> None:
    canned = commands.add_parser(
        "canned",
        help="manage canned messages and their categories",
        description=(
            "Manage the canned messages agents pick while they type '#', and their categories. "
            "A message belongs to one department or is shared by all; its text may hold "
            "{visitor.name}, {visitor.email}, {agent.name} and {department.name}. A running "
            "daemon applies every change within a second."
        ),
    )
    actions = canned.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="category, add, list, edit or remove"
    )
    category = actions.add_parser(
        "category",
        help="add, list or remove categories",
        description="Manage the categories canned messages are grouped in.",
    )
    category_actions = category.add_subparsers(
        dest="category_action", required=True, metavar="ACTION", help="add, list or remove"
    )
    cat_add = category_actions.add_parser(
        "add", help="add a category", description="Add a category and print its id."
    )
    cat_add.add_argument("name", help="the category's display name")
    cat_add.add_argument("--id", default="", help="the category's id (default: a random one)")
    _existing_db_option(cat_add)
    cat_add.set_defaults(run=_canned_category_add)
    cat_list = category_actions.add_parser(
        "list",
        help="list categories",
        description="List the categories, one per line: id, name, number of messages.",
    )
    _existing_db_option(cat_list)
    cat_list.set_defaults(run=_canned_category_list)
    cat_remove = category_actions.add_parser(
        "remove",
        help="remove a category",
        description=(
            "Remove a category. One that still holds messages is refused unless --delete-messages "
            "or --move-to says what becomes of them."
        ),
    )
    cat_remove.add_argument("id", help="the category's id")
    what = cat_remove.add_mutually_exclusive_group()
    what.add_argument(
        "--delete-messages", action="store_true", help="delete the category's messages too"
    )
    what.add_argument(
        "--move-to", metavar="CATEGORY", help="move the category's messages to this category"
    )
    _existing_db_option(cat_remove)
    cat_remove.set_defaults(run=_canned_category_remove)

    add = actions.add_parser(
        "add",
        help="add a canned message",
        description="Add a canned message to a category and print its id.",
    )
    add.add_argument("text", help="the message's text, placeholders such as {visitor.name} allowed")
    add.add_argument("--category", required=True, help="the category's id (it must exist)")
    add.add_argument(
        "--department",
        metavar="ID",
        help="the department whose agents may use it (default: shared by every department)",
    )
    add.add_argument("--id", default="", help="the message's id (default: a random one)")
    _canned_label_options(add)
    _existing_db_option(add)
    add.set_defaults(run=_canned_add)
    listing = actions.add_parser(
        "list",
        help="list canned messages",
        description=(
            "List the canned messages, newest first, one per line: id, category, department "
            "('shared' for all), text, then title=, shortcut= and reading= for those it has."
        ),
    )
    listing.add_argument(
        "--department", metavar="ID", help="only those this department's agents may use"
    )
    listing.add_argument("--category", help="only those of this category")
    _existing_db_option(listing)
    listing.set_defaults(run=_canned_list)
    edit = actions.add_parser(
        "edit",
        help="change a canned message",
        description="Change a canned message's text, category or department; the rest stays.",
    )
    edit.add_argument("id", help="the message's id")
    edit.add_argument("--text", help="the new text")
    edit.add_argument("--category", help="the new category's id")
    owner = edit.add_mutually_exclusive_group()
    owner.add_argument("--department", metavar="ID", help="make it one department's only")
    owner.add_argument("--shared", action="store_true", help="share it with every department")
    _canned_label_options(edit, clear=True)
    _existing_db_option(edit)
    edit.set_defaults(run=_canned_edit)
    remove = actions.add_parser(
        "remove", help="remove a canned message", description="Remove a canned message."
    )
    remove.add_argument("id", help="the message's id")
    _existing_db_option(remove)
    remove.set_defaults(run=_canned_remove)


def _canned_label_options(parser: argparse.ArgumentParser, *, clear: bool = False) -> None:
    empty = " ('' removes it)" if clear else ""
    parser.add_argument("--title", help=f"a short name agents see in the list{empty}")
    parser.add_argument(
        "--shortcut",
        help=f"one word an agent types after '#' to get this message first{empty}",
    )
    parser.add_argument(
        "--reading",
        help=f"how the title is read, found by '#' too: the kana of a Japanese title{empty}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``helpline`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "token" and bool(args.agent) == bool(args.admin):
        parser.error("token: name an agent, or pass --admin (not both)")
    since, until = getattr(args, "since", None), getattr(args, "until", None)
    if since is not None and until is not None and since >= until:
        parser.error("--since must be earlier than --until")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (CommandError, DaemonError, ConfigError, StoreError, OSError, sqlite3.Error) as exc:
        print(f"helpline: {_describe(exc, args)}", file=sys.stderr)
        return EXIT_FAILED
    except BaseExceptionGroup as group:  # raised from inside the engine's or store's nursery
        failure = _expected(group)
        if failure is None:
            raise
        print(f"helpline: {_describe(failure, args)}", file=sys.stderr)
        return EXIT_FAILED


def _describe(exc: Exception, args: argparse.Namespace) -> str:
    """What to tell the user about a failure: SQLite's own words get the file's name."""
    if isinstance(exc, sqlite3.Error):
        return f"cannot use {getattr(args, 'db', 'the database')} as a helpline database: {exc}"
    return str(exc)


def _expected(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    """The one expected failure a group of exceptions wraps, if that is all it holds."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    if len(leaves) == 1 and isinstance(
        leaves[0], CommandError | DaemonError | ConfigError | StoreError | OSError | sqlite3.Error
    ):
        return leaves[0]
    return None


# -- serve ---------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    overrides = {"host": args.host, "port": args.port}
    server = dataclasses.replace(
        config.server, **{k: v for k, v in overrides.items() if v is not None}
    )
    try:
        check_db_path(args.db)
    except DaemonError as exc:  # a mistyped --db: a usage error
        print(f"helpline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(args.log_format, level=args.log_level)
    trio.run(partial(run_daemon, dataclasses.replace(config, server=server), db=args.db))
    return EXIT_OK


# -- the store ----------------------------------------------------------------------------------


def _with_store(
    args: argparse.Namespace,
    job: Callable[[Store], Awaitable[None]],
    *,
    changes: bool = False,
) -> int:
    """Run ``job`` on the existing database; ``changes``: then tell a running daemon."""
    _require_db(args)

    async def run() -> None:
        async with open_store(args.db, synchronous="FULL") as store:
            await job(store)
            if changes:
                await note_change(store)

    trio.run(run)
    return EXIT_OK


def _agent_add(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        known = {d.id for d in await store.departments()}
        missing = [d for d in args.departments if d not in known]
        if missing:
            raise CommandError(
                f"no department {', '.join(missing)}; add it first ('helpline department add')"
            )
        if any(a.id == args.id for a in await store.agents()):
            raise CommandError(f"agent {args.id!r} exists already")
        if args.capacity < 0:
            raise CommandError("--capacity must not be negative")
        await store.save_agent(
            Agent(
                id=args.id,
                name=args.name,
                departments=tuple(dict.fromkeys(args.departments)),
                capacity=args.capacity,
            )
        )
        print(f"added agent {args.id}")

    return _with_store(args, job, changes=True)


def _agent_update(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        old = next((a for a in await store.agents() if a.id == args.id), None)
        if old is None:
            raise CommandError(f"no agent {args.id!r}")
        if args.name is None and args.departments is None and args.capacity is None:
            raise CommandError("nothing to change: give --name, --department or --capacity")
        changes: dict[str, Any] = {}
        if args.name is not None:
            if not args.name.strip():
                raise CommandError("--name must not be blank")
            changes["name"] = args.name
        if args.departments is not None:
            known = {d.id for d in await store.departments()}
            missing = [d for d in args.departments if d not in known]
            if missing:
                raise CommandError(f"no department {', '.join(missing)}")
            changes["departments"] = tuple(dict.fromkeys(args.departments))
        if args.capacity is not None:
            if args.capacity < 0:
                raise CommandError("--capacity must not be negative")
            changes["capacity"] = args.capacity
        await store.save_agent(dataclasses.replace(old, **changes))
        print(f"changed agent {args.id}")

    return _with_store(args, job, changes=True)


def _agent_list(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        for a in await store.agents():
            print(
                f"{a.id}\t{a.name}\t{','.join(a.departments)}\tcapacity={a.capacity}"
                f"\t{a.status.value}"
            )

    return _with_store(args, job)


def _agent_remove(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        if not any(a.id == args.id for a in await store.agents()):
            raise CommandError(f"no agent {args.id!r}")
        await store.revoke_tokens(subject=f"{Role.AGENT.value}:{args.id}")
        await store.remove_agent(args.id)
        print(f"removed agent {args.id}")

    return _with_store(args, job, changes=True)


def _department_add(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        if any(d.id == args.id for d in await store.departments()):
            raise CommandError(f"department {args.id!r} exists already")
        if args.offer_window <= 0 or args.queue_timeout < 0 or args.queue_limit < 0:
            raise CommandError("--offer-window must be positive; the others not negative")
        await store.save_department(
            Department(
                id=args.id,
                name=args.name,
                chat_enabled=not args.chat_off,
                routing=RoutingMode(args.routing),
                offer_window=args.offer_window,
                queue_timeout=args.queue_timeout,
                queue_limit=args.queue_limit,
            )
        )
        print(f"added department {args.id}")

    return _with_store(args, job, changes=True)


def _department_list(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        for d in await store.departments():
            print(
                f"{d.id}\t{d.name}\t{d.routing.value}\tchat={'on' if d.chat_enabled else 'off'}"
                f"\toffer_window={d.offer_window:g}\tqueue_timeout={d.queue_timeout:g}"
                f"\tqueue_limit={d.queue_limit}"
            )

    return _with_store(args, job)


async def _stored_department(store: Store, dept_id: str) -> Department:
    found = next((d for d in await store.departments() if d.id == dept_id), None)
    if found is None:
        raise CommandError(f"no department {dept_id!r} ('helpline department list' lists them)")
    return found


def _department_chat(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        old = await _stored_department(store, args.id)
        await store.save_department(dataclasses.replace(old, chat_enabled=args.state == "on"))
        print(f"department {args.id}: chat {args.state}")

    return _with_store(args, job, changes=True)


def _department_set(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("name", args.name),
            ("routing", None if args.routing is None else RoutingMode(args.routing)),
            ("offer_window", args.offer_window),
            ("queue_timeout", args.queue_timeout),
            ("queue_limit", args.queue_limit),
        )
        if value is not None
    }
    if not changes:
        raise CommandError("nothing to change: give --name, --routing, --offer-window, ...")
    if args.offer_window is not None and not (
        math.isfinite(args.offer_window) and args.offer_window > 0
    ):
        raise CommandError("--offer-window must be a positive number of seconds")
    if args.queue_timeout is not None and not (
        math.isfinite(args.queue_timeout) and args.queue_timeout >= 0
    ):
        raise CommandError("--queue-timeout must not be negative")
    if args.queue_limit is not None and args.queue_limit < 0:
        raise CommandError("--queue-limit must not be negative")
    if args.name is not None and not args.name.strip():
        raise CommandError("--name must not be empty")

    async def job(store: Store) -> None:
        old = await _stored_department(store, args.id)
        await store.save_department(dataclasses.replace(old, **changes))
        print(f"changed department {args.id}")

    return _with_store(args, job, changes=True)


# -- canned messages -----------------------------------------------------------------------------


def _with_canned(
    args: argparse.Namespace, job: Callable[[Store, CannedDesk], Awaitable[None]]
) -> int:
    async def run(store: Store) -> None:
        try:
            await job(store, await CannedDesk.open(store, time.time))
        except EngineError as exc:
            raise CommandError(exc.message) from None

    return _with_store(args, run, changes=True)


def _check_canned_category(desk: CannedDesk, category_id: str) -> None:
    if all(c.id != category_id for c in desk.categories()):
        raise CommandError(
            f"no canned category {category_id!r} ('helpline canned category list' lists them; "
            "'helpline canned category add' adds one)"
        )


async def _check_canned_department(store: Store, department: str | None) -> None:
    if department is not None:
        await _stored_department(store, department)


def _canned_message(desk: CannedDesk, message_id: str) -> CannedMessage:
    found = next((m for m in desk.messages() if m.id == message_id), None)
    if found is None:
        raise CommandError(f"no canned message {message_id!r}")
    return found


def _canned_category_add(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        if args.id and any(c.id == args.id for c in desk.categories()):
            raise CommandError(f"canned category {args.id!r} exists already")
        category = await desk.add_category(args.name, category_id=args.id)
        print(category.id)

    return _with_canned(args, job)


def _canned_category_list(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        for c in sorted(desk.categories(), key=lambda c: c.id):
            held = len(desk.messages(category=c.id))
            print(f"{c.id}\t{c.name}\t{held} message{'' if held == 1 else 's'}")

    return _with_canned(args, job)


def _canned_category_remove(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        _check_canned_category(desk, args.id)
        held = len(desk.messages(category=args.id))
        if args.move_to is not None:
            _check_canned_category(desk, args.move_to)
            await desk.delete_category(args.id, messages="move", move_to=args.move_to)
        elif args.delete_messages:
            await desk.delete_category(args.id, messages="delete")
        elif held:
            raise CommandError(
                f"canned category {args.id!r} holds {held} message{'' if held == 1 else 's'}; "
                "pass --delete-messages or --move-to CATEGORY"
            )
        else:
            await desk.delete_category(args.id)
        print(f"removed canned category {args.id}")

    return _with_canned(args, job)


def _canned_add(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        if args.id and any(m.id == args.id for m in desk.messages()):
            raise CommandError(f"canned message {args.id!r} exists already")
        _check_canned_category(desk, args.category)
        await _check_canned_department(store, args.department)
        message = await desk.add_message(
            args.text,
            category=args.category,
            department=args.department,
            message_id=args.id,
            title=args.title or "",
            shortcut=args.shortcut or "",
            reading=args.reading or "",
        )
        print(message.id)

    return _with_canned(args, job)


def _canned_list(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        if args.category is not None:
            _check_canned_category(desk, args.category)
        await _check_canned_department(store, args.department)
        departments = None if args.department is None else (args.department,)
        for m in desk.messages(departments=departments, category=args.category):
            text = _escape(m.text)
            labels = "".join(
                f"\t{name}={_escape(value)}"
                for name, value in (
                    ("title", m.title),
                    ("shortcut", m.shortcut),
                    ("reading", m.reading),
                )
                if value
            )
            print(f"{m.id}\t{m.category}\t{m.department or 'shared'}\t{text}{labels}")

    return _with_canned(args, job)


def _escape(text: str) -> str:
    """``text`` on one line of a tab-separated listing."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def _canned_edit(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        _canned_message(desk, args.id)
        labels = {"title": args.title, "shortcut": args.shortcut, "reading": args.reading}
        given = [args.text, args.category, args.department, *labels.values()]
        if all(value is None for value in given) and not args.shared:
            raise CommandError(
                "nothing to change: give --text, --category, --department, --shared, --title, "
                "--shortcut or --reading"
            )
        if args.category is not None:
            _check_canned_category(desk, args.category)
        await _check_canned_department(store, args.department)
        if args.shared or args.department is not None:
            await desk.edit_message(
                args.id,
                text=args.text,
                category=args.category,
                department=args.department,
                **labels,
            )
        else:
            await desk.edit_message(args.id, text=args.text, category=args.category, **labels)
        print(f"changed canned message {args.id}")

    return _with_canned(args, job)


def _canned_remove(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        _canned_message(desk, args.id)
        await desk.delete_message(args.id)
        print(f"removed canned message {args.id}")

    return _with_canned(args, job)


# -- tokens --------------------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        if args.admin:
            token = await issue_token(store, Role.ADMIN, args.name, now=time.time())
        else:
            if not any(a.id == args.agent for a in await store.agents()):
                raise CommandError(f"no agent {args.agent!r}")
            token = await issue_token(store, Role.AGENT, args.agent, now=time.time())
        print(token)

    return _with_store(args, job)


# -- tickets and ratings ------------------------------------------------------------------------


def _require_db(args: argparse.Namespace) -> None:
    """Refuse a database file that does not exist: only ``serve`` creates one."""
    path = file_of(args.db)
    if path is not None and not Path(path).is_file():
        raise CommandError(
            f"no database file {args.db}; pass the daemon's database with --db PATH "
            f"(the file 'helpline serve --db' uses; default ./{DEFAULT_DB}), or run "
            f"'helpline serve --db {args.db}' once to create it"
        )


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
    _require_db(args)
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

        return _with_store(args, to_stdout)
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

            _with_store(args, to_file)
        partial_path.replace(args.output)
    except BaseException:
        partial_path.unlink(missing_ok=True)
        raise
    print(
        f"exported {written} ticket{'' if written == 1 else 's'} to {args.output}", file=sys.stderr
    )
    return EXIT_OK


def _ratings(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        report = rating_report_record(await store.rating_report(since=args.since, until=args.until))
        if args.json:
            print(json.dumps({**report, "since": args.since, "until": args.until}))
        else:
            print(format_ratings(report, since=args.since, until=args.until), end="")

    return _with_store(args, job)


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
        table = [[str(row[key]), *(str(row[r]) for r in RATINGS), _average(row)] for row in rows]
        table.append(["total", *(str(report[r]) for r in RATINGS), _average(report)])
        lines += ["", *_table([title, *RATINGS, "score"], table)]
    return "\n".join(lines) + "\n"


def _average(row: Mapping[str, Any]) -> str:
    """The average score of a report row, and of how many scores: ``4.5 (2)``, or ``-``."""
    average = row.get("average_score")
    return "-" if average is None else f"{average:.2f} ({row.get('scored', 0)})"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the numbers right-aligned."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    return [line(header), *(line(row) for row in rows)]


if __name__ == "__main__":
    sys.exit(main())
