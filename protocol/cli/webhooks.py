"""The webhooks' part of the ``helpline`` command: ``helpline webhook add|list|remove|failures|
replay|discard``, the admin requests of SPEC.md section 6.7 on the store directly.

A running daemon needs no reload: its deliverer reads the webhooks from the store at every look.
``failures --json`` prints one JSON object per line, each shaped like an item of the
``webhook_failures`` reply.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable

from engine import EngineError, Store, StoreError
from engine.model.desk_events import DeskEventKind

from ..server.roles.webhooks import add_webhook, delivery_record, new_webhook, remove_webhook

__all__ = ["add_webhook_commands"]

Job = Callable[[Store], Awaitable[None]]
WithStore = Callable[[argparse.Namespace, Job], int]


def add_webhook_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    db_option: Callable[[argparse.ArgumentParser], None],
    with_store: WithStore,
) -> None:
    """Register ``webhook`` on the ``helpline`` parser; ``with_store`` runs a job on the store."""
    webhook = commands.add_parser(
        "webhook",
        help="add, list or remove webhooks; see, replay and discard failed deliveries",
        description="Manage the webhooks that receive the desk's events (protocol/SPEC.md "
        "section 13). A running daemon picks changes up within a second.",
    )
    actions = webhook.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        help="add, list, remove, failures, replay, discard",
    )
    add = actions.add_parser("add", help="add a webhook", description="Add a webhook.")
    add.add_argument("url", help="where events are posted: an http:// or https:// URL")
    add.add_argument(
        "--secret", required=True, help="the HMAC key the receiver checks signatures with"
    )
    add.add_argument(
        "--event",
        dest="events",
        action="append",
        default=[],
        choices=[k.value for k in DeskEventKind],
        metavar="KIND",
        help="an event kind to send; repeat for several (default: every kind)",
    )
    add.add_argument("--department", default="", help="only this department's chats")
    add.add_argument("--id", default="", help="the webhook's id (default: a new one)")
    listing = actions.add_parser("list", help="list webhooks", description="List the webhooks.")
    remove = actions.add_parser(
        "remove", help="remove a webhook", description="Remove a webhook and its queued events."
    )
    remove.add_argument("id", help="the webhook's id")
    failures = actions.add_parser(
        "failures",
        help="list deliveries given up",
        description="List the deliveries given up, oldest first.",
    )
    failures.add_argument("--webhook", help="only this webhook's")
    failures.add_argument("--limit", type=int, default=100, help="at most N (default: 100)")
    failures.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = actions.add_parser(
        "replay",
        help="deliver failed events again",
        description="Put failed deliveries back in line: all, one webhook's (--webhook), or the "
        "delivery ids given.",
    )
    replay.add_argument(
        "delivery_ids",
        nargs="*",
        metavar="DELIVERY_ID",
        help="a delivery to send again (as 'failures' lists it); none: every failed one",
    )
    replay.add_argument("--webhook", help="only this webhook's failed deliveries")
    discard = actions.add_parser(
        "discard",
        help="delete failed deliveries for good",
        description="Delete failed deliveries without sending them again: all, one webhook's "
        "(--webhook), or the delivery ids given.",
    )
    discard.add_argument(
        "delivery_ids",
        nargs="*",
        metavar="DELIVERY_ID",
        help="a failed delivery to delete (as 'failures' lists it); none: every failed one",
    )
    discard.add_argument("--webhook", help="only this webhook's failed deliveries")
    for parser, job in (
        (add, _add),
        (listing, _list),
        (remove, _remove),
        (failures, _failures),
        (replay, _replay),
        (discard, _discard),
    ):
        db_option(parser)
        parser.set_defaults(run=_runner(job, with_store))


def _runner(
    job: Callable[[argparse.Namespace, Store], Awaitable[None]], with_store: WithStore
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def bound(store: Store) -> None:
            try:
                await job(args, store)
            except EngineError as exc:  # the command line reports a store's refusal
                raise StoreError(exc.message, code=exc.code) from None

        return with_store(args, bound)

    return run


async def _add(args: argparse.Namespace, store: Store) -> None:
    if args.department and all(d.id != args.department for d in await store.departments()):
        raise EngineError("not_found", f"no department {args.department!r}")
    hook = new_webhook(
        url=args.url,
        secret=args.secret,
        events=args.events,
        department=args.department,
        webhook_id=args.id,
        now=time.time(),
    )
    await add_webhook(store, hook)
    print(f"added webhook {hook.id}")


async def _list(args: argparse.Namespace, store: Store) -> None:
    for hook in await store.webhooks():
        kinds = ",".join(k.value for k in hook.events) or "all events"
        print(f"{hook.id}\t{hook.url}\t{hook.department or 'all departments'}\t{kinds}")


async def _remove(args: argparse.Namespace, store: Store) -> None:
    await remove_webhook(store, args.id)
    print(f"removed webhook {args.id}")


async def _failures(args: argparse.Namespace, store: Store) -> None:
    for d in await store.outbox_failures(webhook_id=args.webhook, limit=args.limit):
        if args.json:
            print(json.dumps(delivery_record(d), ensure_ascii=False))
        else:
            print(
                f"{d.delivery_id}\t{d.webhook_id}\t{d.chat_id}\t{d.kind.value}"
                f"\tattempts={d.attempts}\t{d.last_error}"
            )


async def _replay(args: argparse.Namespace, store: Store) -> None:
    count = await store.outbox_replay(
        now=time.time(), webhook_id=args.webhook, delivery_ids=args.delivery_ids
    )
    print(f"replayed {count} deliveries")


async def _discard(args: argparse.Namespace, store: Store) -> None:
    count = await store.outbox_discard(webhook_id=args.webhook, delivery_ids=args.delivery_ids)
    print(f"discarded {count} failed deliveries")
