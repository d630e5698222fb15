"""``helpline token``: issue a sign-in token for an agent, a supervisor or an administrator.

The previous token of the same agent, supervisor or admin is revoked; the database keeps only a
hash, so the token is printed alone on its line, once, for a script to capture. Issuing one is
written to the audit log.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from engine import Store

from ..server.auth import ADMIN_NAME, issue_token
from ..wire.frames import Role
from .audit import record
from .common import CommandError, existing_db_option, stored_department, with_store

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
        "--supervisor",
        metavar="NAME",
        help="issue a supervisor's token instead, for the departments given with --department",
    )
    token.add_argument(
        "--department",
        action="append",
        default=[],
        metavar="ID",
        help="with --supervisor: a department it supervises (repeat for several)",
    )
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
        after: dict[str, Any] = {}
        if args.admin:
            role, name = Role.ADMIN, args.name
            token = await issue_token(store, role, name, now=time.time())
        elif args.supervisor:
            role, name = Role.SUPERVISOR, args.supervisor
            departments = tuple(dict.fromkeys(args.department))
            for department in departments:
                await stored_department(store, department)
            token = await issue_token(store, role, name, now=time.time(), departments=departments)
            after["departments"] = sorted(departments)
        else:
            role, name = Role.AGENT, args.agent
            if not any(a.id == args.agent for a in await store.agents()):
                raise CommandError(f"no agent {args.agent!r}")
            token = await issue_token(store, role, name, now=time.time())
        await record(
            store, "token_issued", f"{role.value}:{name}", None, {"role": role.value, **after}
        )
        print(token)

    return with_store(args, job)
