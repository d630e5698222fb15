"""``helpline agent add|list|remove``: the agents stored in the database.

Removing an agent revokes its tokens; its tickets remain. A running daemon applies every change
within a second.
"""

from __future__ import annotations

import argparse
from typing import Any

from engine import Agent, Store

from ..wire.frames import Role
from ..wire.records import audit_agent
from .audit import record
from .common import CommandError, existing_db_option, with_store

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Add ``helpline agent`` to ``commands`` (``helpline``'s subcommands)."""
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
    existing_db_option(add)
    add.set_defaults(run=_agent_add)
    listing = agent_commands.add_parser(
        "list", help="list agents", description="List the agents, one per line."
    )
    existing_db_option(listing)
    listing.set_defaults(run=_agent_list)
    remove = agent_commands.add_parser(
        "remove",
        help="remove an agent",
        description="Remove an agent and revoke its tokens; its tickets remain.",
    )
    remove.add_argument("id", help="the agent's id")
    existing_db_option(remove)
    remove.set_defaults(run=_agent_remove)


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
        agent = Agent(
            id=args.id,
            name=args.name,
            departments=tuple(dict.fromkeys(args.departments)),
            capacity=args.capacity,
        )
        await store.save_agent(agent)
        await record(store, "agent_added", args.id, None, audit_agent(agent))
        print(f"added agent {args.id}")

    return with_store(args, job, changes=True)


def _agent_list(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        for a in await store.agents():
            print(
                f"{a.id}\t{a.name}\t{','.join(a.departments)}\tcapacity={a.capacity}"
                f"\t{a.status.value}"
            )

    return with_store(args, job)


def _agent_remove(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        old = next((a for a in await store.agents() if a.id == args.id), None)
        if old is None:
            raise CommandError(f"no agent {args.id!r}")
        await store.revoke_tokens(subject=f"{Role.AGENT.value}:{args.id}")
        await store.remove_agent(args.id)
        await record(store, "agent_removed", args.id, audit_agent(old), None)
        print(f"removed agent {args.id}")

    return with_store(args, job, changes=True)
