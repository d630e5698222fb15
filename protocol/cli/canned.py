"""``helpline canned``: canned messages and their categories.

``canned category add|list|remove`` and ``canned add|list|edit|remove`` are the admin requests
``canned_category_add``, ``canned_list``, ``canned_category_delete``, ``canned_add``,
``canned_edit`` and ``canned_delete``, with the same checks. A running daemon applies every
change within a second.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from typing import Any

from engine import CannedDesk, CannedMessage, EngineError, Store

from ..wire.records import canned_category_record, canned_message_record
from .audit import record
from .common import CommandError, existing_db_option, stored_department, with_store

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Add ``helpline canned`` to ``commands`` (``helpline``'s subcommands)."""
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
    existing_db_option(cat_add)
    cat_add.set_defaults(run=_canned_category_add)
    cat_list = category_actions.add_parser(
        "list",
        help="list categories",
        description="List the categories, one per line: id, name, number of messages.",
    )
    existing_db_option(cat_list)
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
    existing_db_option(cat_remove)
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
    existing_db_option(add)
    add.set_defaults(run=_canned_add)
    listing = actions.add_parser(
        "list",
        help="list canned messages",
        description=(
            "List the canned messages, newest first, one per line: id, category, department "
            "('shared' for all), text."
        ),
    )
    listing.add_argument(
        "--department", metavar="ID", help="only those this department's agents may use"
    )
    listing.add_argument("--category", help="only those of this category")
    existing_db_option(listing)
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
    existing_db_option(edit)
    edit.set_defaults(run=_canned_edit)
    remove = actions.add_parser(
        "remove", help="remove a canned message", description="Remove a canned message."
    )
    remove.add_argument("id", help="the message's id")
    existing_db_option(remove)
    remove.set_defaults(run=_canned_remove)


def _with_canned(
    args: argparse.Namespace, job: Callable[[Store, CannedDesk], Awaitable[None]]
) -> int:
    async def run(store: Store) -> None:
        try:
            await job(store, await CannedDesk.open(store, time.time))
        except EngineError as exc:
            raise CommandError(exc.message) from None

    return with_store(args, run, changes=True)


def _check_canned_category(desk: CannedDesk, category_id: str) -> None:
    if all(c.id != category_id for c in desk.categories()):
        raise CommandError(
            f"no canned category {category_id!r} ('helpline canned category list' lists them; "
            "'helpline canned category add' adds one)"
        )


async def _check_canned_department(store: Store, department: str | None) -> None:
    if department is not None:
        await stored_department(store, department)


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
        await record(store, "canned_changed", category.id, None, canned_category_record(category))
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
        await record(store, "canned_changed", args.id, {"category": args.id, "messages": held})
        print(f"removed canned category {args.id}")

    return _with_canned(args, job)


def _canned_add(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        if args.id and any(m.id == args.id for m in desk.messages()):
            raise CommandError(f"canned message {args.id!r} exists already")
        _check_canned_category(desk, args.category)
        await _check_canned_department(store, args.department)
        message = await desk.add_message(
            args.text, category=args.category, department=args.department, message_id=args.id
        )
        await record(store, "canned_changed", message.id, None, canned_message_record(message))
        print(message.id)

    return _with_canned(args, job)


def _canned_list(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        if args.category is not None:
            _check_canned_category(desk, args.category)
        await _check_canned_department(store, args.department)
        departments = None if args.department is None else (args.department,)
        for m in desk.messages(departments=departments, category=args.category):
            text = m.text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
            print(f"{m.id}\t{m.category}\t{m.department or 'shared'}\t{text}")

    return _with_canned(args, job)


def _canned_edit(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        old = _canned_message(desk, args.id)
        if args.text is None and args.category is None and args.department is None:
            if not args.shared:
                raise CommandError(
                    "nothing to change: give --text, --category, --department or --shared"
                )
        if args.category is not None:
            _check_canned_category(desk, args.category)
        await _check_canned_department(store, args.department)
        if args.shared or args.department is not None:
            await desk.edit_message(
                args.id, text=args.text, category=args.category, department=args.department
            )
        else:
            await desk.edit_message(args.id, text=args.text, category=args.category)
        new = _canned_message(desk, args.id)
        await record(
            store,
            "canned_changed",
            args.id,
            canned_message_record(old),
            canned_message_record(new),
        )
        print(f"changed canned message {args.id}")

    return _with_canned(args, job)


def _canned_remove(args: argparse.Namespace) -> int:
    async def job(store: Store, desk: CannedDesk) -> None:
        old = _canned_message(desk, args.id)
        await desk.delete_message(args.id)
        await record(store, "canned_changed", args.id, canned_message_record(old), None)
        print(f"removed canned message {args.id}")

    return _with_canned(args, job)
