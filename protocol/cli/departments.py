"""``helpline department add|list|chat|set``: the departments stored in the database.

``department chat`` and ``department set`` are the admin request ``department_update``. A
running daemon applies every change within a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any

from engine import Department, RoutingMode, Store

from ..wire.records import department_record
from .audit import record
from .common import CommandError, existing_db_option, stored_department, with_store

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Add ``helpline department`` to ``commands`` (``helpline``'s subcommands)."""
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
    existing_db_option(dept_add)
    dept_add.set_defaults(run=_department_add)
    dept_list = dept_commands.add_parser(
        "list", help="list departments", description="List the departments, one per line."
    )
    existing_db_option(dept_list)
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
    existing_db_option(dept_chat)
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
    existing_db_option(dept_set)
    dept_set.set_defaults(run=_department_set)


def _department_add(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        if any(d.id == args.id for d in await store.departments()):
            raise CommandError(f"department {args.id!r} exists already")
        if args.offer_window <= 0 or args.queue_timeout < 0 or args.queue_limit < 0:
            raise CommandError("--offer-window must be positive; the others not negative")
        department = Department(
            id=args.id,
            name=args.name,
            chat_enabled=not args.chat_off,
            routing=RoutingMode(args.routing),
            offer_window=args.offer_window,
            queue_timeout=args.queue_timeout,
            queue_limit=args.queue_limit,
        )
        await store.save_department(department)
        await record(store, "department_added", args.id, None, department_record(department))
        print(f"added department {args.id}")

    return with_store(args, job, changes=True)


def _department_list(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        for d in await store.departments():
            print(
                f"{d.id}\t{d.name}\t{d.routing.value}\tchat={'on' if d.chat_enabled else 'off'}"
                f"\toffer_window={d.offer_window:g}\tqueue_timeout={d.queue_timeout:g}"
                f"\tqueue_limit={d.queue_limit}"
            )

    return with_store(args, job)


async def _department_changed(store: Store, old: Department, new: Department) -> None:
    await record(
        store, "department_changed", new.id, department_record(old), department_record(new)
    )


def _department_chat(args: argparse.Namespace) -> int:
    async def job(store: Store) -> None:
        old = await stored_department(store, args.id)
        new = dataclasses.replace(old, chat_enabled=args.state == "on")
        await store.save_department(new)
        await _department_changed(store, old, new)
        print(f"department {args.id}: chat {args.state}")

    return with_store(args, job, changes=True)


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
        old = await stored_department(store, args.id)
        new = dataclasses.replace(old, **changes)
        await store.save_department(new)
        await _department_changed(store, old, new)
        print(f"changed department {args.id}")

    return with_store(args, job, changes=True)
