"""The ``helpline`` command: its parser and ``main``; each subject's commands have a module.

Theory of operation
-------------------
``build_parser`` asks each subject module to add its subcommands, in the order ``helpline --help``
lists them: ``serve`` (run the daemon, ``serve.py``), ``agent`` (``agents.py``), ``department``
(``departments.py``), ``canned`` (``canned.py``), ``token`` (``tokens.py``), ``tickets``
(``tickets.py``), ``ratings`` (``ratings.py``), ``audit`` (``audit.py``), ``migrate`` and
``store`` (``store.py``), ``nodes`` (``nodes.py``), and ``replay`` (registered by the replay
package, ``replay/cli.py``).
Each subcommand names its function as the parser's ``run`` default; ``main`` parses, checks what
argparse cannot (``token`` names one of an agent, ``--admin`` or ``--supervisor``; ``--since`` is
before ``--until``) and runs it. What the commands share (the database options, opening the
store, exit statuses) is in ``common.py``; every change they make is written to the audit log
with the actor ``cli`` (``audit.py``).

Every command prints its result on standard output (a token alone on its line, so a script can
capture it) and its errors on standard error. Exit status: 0 on success, 1 when the command failed,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Sequence

from engine import StoreError
from replay.cli import register as register_replay

from ..server.daemon import DaemonError
from ..server.settings import ConfigError
from . import agents, canned, departments, nodes, ratings, serve, tickets, tokens
from .audit import add_audit_command, run_audit
from .common import (
    EXIT_FAILED,
    CommandError,
    db_option,
    existing_db_option,
    parse_time,
    with_store,
)
from .routing import add_routing_commands
from .store import add_store_commands
from .webhooks import add_webhook_commands

__all__ = ["build_parser", "main"]


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
    serve.add_commands(commands)
    agents.add_commands(commands)
    department_commands = departments.add_commands(commands)
    for subject in (canned, tokens, tickets, ratings):
        subject.add_commands(commands)
    add_audit_command(commands, existing_db_option, parse_time, run_audit)
    add_store_commands(commands, db_option)
    nodes.add_commands(commands)
    add_routing_commands(
        commands, department_commands, existing_db_option, with_store, CommandError
    )
    register_replay(commands, parse_time)
    add_webhook_commands(commands, existing_db_option, with_store)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``helpline`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "token":
        if [bool(args.agent), bool(args.admin), bool(args.supervisor)].count(True) != 1:
            parser.error("token: name an agent, or pass --admin or --supervisor NAME (one)")
        if bool(args.supervisor) != bool(args.department):
            parser.error("token: --supervisor NAME goes with at least one --department ID")
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
