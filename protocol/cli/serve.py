"""``helpline serve``: run the daemon until SIGINT or SIGTERM.

It creates its database file when there is none (and says so), but not a missing directory:
a mistyped ``--db`` is a usage error (exit status 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from functools import partial
from typing import Any

import trio

from ..server.daemon import (
    LOG_FORMATS,
    NEW_TOKEN_HINT,
    DaemonError,
    check_db_path,
    configure_logging,
    run_daemon,
)
from ..server.node import NodeSettings, run_node
from ..server.settings import DEFAULT_HOST, DEFAULT_PORT, load_config
from .common import EXIT_OK, EXIT_USAGE, db_option

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Add ``helpline serve`` to ``commands`` (``helpline``'s subcommands)."""
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
    db_option(serve)
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
    cluster = serve.add_argument_group(
        "several nodes",
        "Run this daemon as one node of a desk shared by several (README: Running several "
        "nodes). Needs a PostgreSQL --store. One node at a time holds the routing lease and "
        "runs the desk; the others relay their clients to it and take over when it dies.",
    )
    cluster.add_argument(
        "--node", metavar="NAME", help="join the cluster on --store under this node name"
    )
    cluster.add_argument(
        "--advertise",
        metavar="URL",
        help="the ws://HOST:PORT other nodes reach this one at (default: where it listens)",
    )
    cluster.add_argument(
        "--lease",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long the routing lease lasts unless renewed, on the database's clock "
        "(default: 5); a dead holder is replaced within about this plus --renew",
    )
    cluster.add_argument(
        "--renew",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often the lease is renewed and followers look for a free one (default: 1)",
    )
    serve.set_defaults(run=_serve)


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
    config = dataclasses.replace(config, server=server)
    if args.node is None:
        if args.advertise is not None:
            print("helpline: --advertise needs --node", file=sys.stderr)
            return EXIT_USAGE
        configure_logging(args.log_format, level=args.log_level)
        trio.run(partial(run_daemon, config, db=args.db))
        return EXIT_OK
    try:
        node = NodeSettings(
            name=args.node, advertise=args.advertise, lease=args.lease, renew=args.renew
        )
    except ValueError as exc:
        print(f"helpline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(args.log_format, level=args.log_level)
    trio.run(partial(run_node, config, db=str(args.db), node=node))
    return EXIT_OK
