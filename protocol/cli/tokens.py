"""``helpline token``: issue a sign-in token for an agent or an administrator.

The previous token of the same agent (or admin) is revoked; the database keeps only a hash, so
the token is printed alone on its line, once, for a script to capture.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from engine import Store

from ..server.auth import ADMIN_NAME, issue_token
from ..wire.frames import Role
from .common import CommandError, existing_db_option, with_store

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Add ``helpline token`` to ``commands`` (``helpline``'s subcommands)."""
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
    existing_db_option(token)
    token.set_defaults(run=_token)


def _token(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        if args.admin:
            token = await issue_token(store, Role.ADMIN, args.name, now=time.time())
        else:
            if not any(a.id == args.agent for a in await store.agents()):
                raise CommandError(f"no agent {args.agent!r}")
            token = await issue_token(store, Role.AGENT, args.agent, now=time.time())
        print(token)

    return with_store(args, job)
