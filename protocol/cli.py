"""The ``helpline`` command: run the daemon, and manage agents, departments and tokens.

Theory of operation
-------------------
``helpline serve`` runs the daemon (``_daemon.py``) until SIGINT or SIGTERM. The other commands
open the SQLite store directly, do one thing and exit; SQLite's WAL mode lets them run while the
daemon runs. Tokens they issue work at once (the daemon reads tokens at every hello); agents and
departments they change are picked up by the daemon when it next starts (to change a running
daemon, use the admin requests over the wire, SPEC.md section 6.4).

Every command prints its result on standard output (a token alone on its line, so a script can
capture it) and its errors on standard error. Exit status: 0 on success, 1 when the command failed,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Final

import trio

from engine import Agent, Department, RoutingMode
from engine._store import SqliteStore, StoreError, open_store

from ._auth import ADMIN_NAME, issue_token
from ._daemon import LOG_FORMATS, configure_logging, run_daemon
from ._frames import Role
from ._settings import DEFAULT_DB, DEFAULT_HOST, DEFAULT_PORT, ConfigError, load_config

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1


class CommandError(Exception):
    """A command cannot do what it was asked; the message says why."""


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="PATH",
        help=f"the SQLite database file (default: ./{DEFAULT_DB}; created if missing)",
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
            "chat. On first start with an empty database it prints a new admin token once. It "
            "prints 'helpline listening on ws://HOST:PORT' when it is ready."
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
        help="add, list or remove agents",
        description="Manage the agents stored in the database.",
    )
    agent_commands = agent.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="add, list or remove"
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
    _db_option(add)
    add.set_defaults(run=_agent_add)
    listing = agent_commands.add_parser(
        "list", help="list agents", description="List the agents, one per line."
    )
    _db_option(listing)
    listing.set_defaults(run=_agent_list)
    remove = agent_commands.add_parser(
        "remove",
        help="remove an agent",
        description="Remove an agent and revoke its tokens; its tickets remain.",
    )
    remove.add_argument("id", help="the agent's id")
    _db_option(remove)
    remove.set_defaults(run=_agent_remove)

    department = commands.add_parser(
        "department",
        help="add or list departments",
        description="Manage the departments stored in the database.",
    )
    dept_commands = department.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="add or list"
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
    _db_option(dept_add)
    dept_add.set_defaults(run=_department_add)
    dept_list = dept_commands.add_parser(
        "list", help="list departments", description="List the departments, one per line."
    )
    _db_option(dept_list)
    dept_list.set_defaults(run=_department_list)

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
    _db_option(token)
    token.set_defaults(run=_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``helpline`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "token" and bool(args.agent) == bool(args.admin):
        parser.error("token: name an agent, or pass --admin (not both)")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (CommandError, ConfigError, StoreError, OSError) as exc:
        print(f"helpline: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BaseExceptionGroup as group:  # raised from inside the engine's or store's nursery
        failure = _expected(group)
        if failure is None:
            raise
        print(f"helpline: {failure}", file=sys.stderr)
        return EXIT_FAILED


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
        leaves[0], CommandError | ConfigError | StoreError | OSError
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
    configure_logging(args.log_format, level=args.log_level)
    trio.run(partial(run_daemon, dataclasses.replace(config, server=server), db=args.db))
    return EXIT_OK


# -- the store ----------------------------------------------------------------------------------


def _with_store(args: argparse.Namespace, job: Callable[[SqliteStore], Awaitable[None]]) -> int:
    async def run() -> None:
        async with open_store(args.db, synchronous="FULL") as store:
            await job(store)

    trio.run(run)
    return EXIT_OK


def _agent_add(args: argparse.Namespace) -> int:
    async def job(store: SqliteStore) -> None:
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

    return _with_store(args, job)


def _agent_list(args: argparse.Namespace) -> int:
    async def job(store: SqliteStore) -> None:
        for a in await store.agents():
            print(
                f"{a.id}\t{a.name}\t{','.join(a.departments)}\tcapacity={a.capacity}"
                f"\t{a.status.value}"
            )

    return _with_store(args, job)


def _agent_remove(args: argparse.Namespace) -> int:
    async def job(store: SqliteStore) -> None:
        if not any(a.id == args.id for a in await store.agents()):
            raise CommandError(f"no agent {args.id!r}")
        await store.revoke_tokens(subject=f"{Role.AGENT.value}:{args.id}")
        await store.remove_agent(args.id)
        print(f"removed agent {args.id}")

    return _with_store(args, job)


def _department_add(args: argparse.Namespace) -> int:
    async def job(store: SqliteStore) -> None:
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

    return _with_store(args, job)


def _department_list(args: argparse.Namespace) -> int:
    async def job(store: SqliteStore) -> None:
        for d in await store.departments():
            print(
                f"{d.id}\t{d.name}\t{d.routing.value}\tchat={'on' if d.chat_enabled else 'off'}"
                f"\toffer_window={d.offer_window:g}\tqueue_timeout={d.queue_timeout:g}"
                f"\tqueue_limit={d.queue_limit}"
            )

    return _with_store(args, job)


def _token(args: argparse.Namespace) -> int:
    async def job(store: SqliteStore) -> None:
        if args.admin:
            token = await issue_token(store, Role.ADMIN, args.name, now=time.time())
        else:
            if not any(a.id == args.agent for a in await store.agents()):
                raise CommandError(f"no agent {args.agent!r}")
            token = await issue_token(store, Role.AGENT, args.agent, now=time.time())
        print(token)

    return _with_store(args, job)


if __name__ == "__main__":
    sys.exit(main())
