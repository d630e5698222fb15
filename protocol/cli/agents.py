"""``helpline agent add|update|skills|list|remove``: the agents stored in the database.

Removing an agent revokes its tokens; its tickets remain. A running daemon applies every change
within a second.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from engine import Agent, Store

from ..wire.frames import Role
from ..wire.records import audit_agent
from .audit import record
from .common import CommandError, existing_db_option, with_store

__all__ = ["add_commands", "skill_list"]

MAX_SKILLS = 64  # as agent_add takes them on the wire (SPEC.md)
SKILL_LEN = 64


def add_commands(commands: Any) -> None:
    """Add ``helpline agent`` to ``commands`` (``helpline``'s subcommands)."""
    agent = commands.add_parser(
        "agent",
        help="add, update, list or remove agents, or set their skills",
        description="Manage the agents stored in the database.",
    )
    agent_commands = agent.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        help="add, update, skills, list or remove",
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
    add.add_argument("--skills", type=skill_list, default=(), metavar="A,B", help=SKILLS_HELP)
    existing_db_option(add)
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
    update.add_argument(
        "--skills", type=skill_list, metavar="A,B", help=SKILLS_HELP + " ('' for none)"
    )
    existing_db_option(update)
    update.set_defaults(run=_agent_update)
    skills = agent_commands.add_parser(
        "skills",
        help="set an agent's skills",
        description="Set an agent's skills, replacing the ones it had. A chat that requires\n"
        "skills (the widget's data-skills, open_chat's skills) is offered first to the\n"
        "agents who have them all, and to any agent of its department once the\n"
        "department's skills wait has passed. A running daemon routes by the new skills\n"
        "within a second.",
        epilog="examples:\n  helpline agent skills ann de,billing\n  helpline agent skills ann ''"
        "   (no skills)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    skills.add_argument("id", help="the agent's id")
    skills.add_argument("skills", type=skill_list, metavar="A,B", help=SKILLS_HELP)
    existing_db_option(skills)
    skills.set_defaults(run=_agent_skills)
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


SKILLS_HELP = (
    f"the agent's skills, comma-separated (such as languages or products; at most {MAX_SKILLS}, "
    f"each 1..{SKILL_LEN} bytes)"
)


def skill_list(text: str) -> tuple[str, ...]:
    """``a,b`` as skills, in order, without repeats; ``''`` is none."""
    skills = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if len(skills) > MAX_SKILLS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SKILLS} skills, not {len(skills)}")
    for skill in skills:
        if len(skill.encode()) > SKILL_LEN:
            raise argparse.ArgumentTypeError(f"a skill has at most {SKILL_LEN} bytes: {skill!r}")
    return skills


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
            skills=args.skills,
        )
        await store.save_agent(agent)
        await record(store, "agent_added", args.id, None, audit_agent(agent))
        print(f"added agent {args.id}")

    return with_store(args, job, changes=True)


def _agent_update(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        old = next((a for a in await store.agents() if a.id == args.id), None)
        if old is None:
            raise CommandError(f"no agent {args.id!r}")
        if all(v is None for v in (args.name, args.departments, args.capacity, args.skills)):
            raise CommandError(
                "nothing to change: give --name, --department, --capacity or --skills"
            )
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
        if args.skills is not None:
            changes["skills"] = args.skills
        new = dataclasses.replace(old, **changes)
        await store.save_agent(new)
        await record(store, "agent_changed", args.id, audit_agent(old), audit_agent(new))
        print(f"changed agent {args.id}")

    return with_store(args, job, changes=True)


def _agent_skills(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        old = next((a for a in await store.agents() if a.id == args.id), None)
        if old is None:
            raise CommandError(f"no agent {args.id!r}")
        new = dataclasses.replace(old, skills=args.skills)
        await store.save_agent(new)
        await record(store, "agent_changed", args.id, audit_agent(old), audit_agent(new))
        print(f"agent {args.id} skills: {', '.join(new.skills) or '(none)'}")

    return with_store(args, job, changes=True)


def _agent_list(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        for a in await store.agents():
            skills = f"\tskills={','.join(a.skills)}" if a.skills else ""
            print(
                f"{a.id}\t{a.name}\t{','.join(a.departments)}\tcapacity={a.capacity}"
                f"\t{a.status.value}{skills}"
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
