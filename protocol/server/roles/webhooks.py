"""Webhooks for admins: ``webhook_add``, ``webhook_list``, ``webhook_remove``, ``webhook_failures``
``webhook_replay`` and ``webhook_discard`` (SPEC.md section 6.7), and the records they answer with.

Webhooks live in the store only (the deliverer reads them at every delivery), so a change made
here, or by ``helpline webhook`` on the command line, takes effect at the deliverer's next look
without any reload. The secret is written once and never shown back. The command line
(``protocol/cli/webhooks.py``) uses the same checks and records.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final

import httpx

from engine import EngineError, Store, StoreError
from engine.model.desk_events import Delivery, DeskEventKind, Webhook
from engine.store.outbox import event_json

from ...wire.frames import Request
from ...wire.records import Fields, fit

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["delivery_record", "new_webhook", "webhook_handlers", "webhook_record"]

MIN_SECRET: Final = 16
"""Bytes a webhook's secret must have at least."""

Handler = Callable[[Request], Awaitable[Fields]]


def new_webhook(
    *,
    url: str,
    secret: str,
    events: Sequence[str],
    department: str,
    webhook_id: str,
    now: float,
) -> Webhook:
    """A webhook from what an admin gave; ``EngineError("invalid_field")`` says what is wrong."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise EngineError("invalid_field", f"url must be an http:// or https:// URL, not {url!r}")
    if len(secret.encode()) < MIN_SECRET:
        raise EngineError("invalid_field", f"secret must have at least {MIN_SECRET} bytes")
    kinds = []
    for name in events:
        try:
            kinds.append(DeskEventKind(name))
        except ValueError:
            known = ", ".join(k.value for k in DeskEventKind)
            raise EngineError("invalid_field", f"unknown event {name!r}; one of {known}") from None
    return Webhook(
        id=webhook_id or f"wh-{secrets.token_hex(4)}",
        url=url,
        secret=secret,
        department=department,
        events=tuple(dict.fromkeys(kinds)),
        created_at=now,
    )


def webhook_record(hook: Webhook) -> Fields:
    """A webhook on the wire: everything but its secret."""
    return {
        "id": hook.id,
        "url": hook.url,
        "department": hook.department,
        "events": [k.value for k in hook.events],
        "created_at": hook.created_at,
    }


def delivery_record(delivery: Delivery) -> Fields:
    """A failed delivery on the wire, with the event it carried."""
    return {
        "delivery_id": delivery.delivery_id,
        "webhook_id": delivery.webhook_id,
        "chat_id": delivery.chat_id,
        "type": delivery.kind.value,
        "attempts": delivery.attempts,
        "queued_at": delivery.queued_at,
        "failed_at": delivery.done_at,
        "last_error": delivery.last_error,
        "event": event_json(delivery),
    }


async def add_webhook(store: Store, hook: Webhook) -> None:
    """Store a new webhook; an id in use is ``invalid_state``."""
    try:
        await store.save_webhook(hook)
    except StoreError as exc:
        if exc.code == "webhook_exists":
            raise EngineError("invalid_state", f"webhook {hook.id!r} exists already") from None
        raise


async def remove_webhook(store: Store, webhook_id: str) -> None:
    """Delete a webhook and its outbox; an unknown id is ``not_found``."""
    try:
        await store.remove_webhook(webhook_id)
    except StoreError as exc:
        if exc.code == "not_found":
            raise EngineError("not_found", f"no webhook {webhook_id!r}") from None
        raise


def webhook_handlers(conn: Connection) -> dict[str, Handler]:
    """The admin's webhook requests, by type."""
    engine = conn.engine
    store = engine.store

    async def add(request: Request) -> Fields:
        department = request.get("department", str, "")
        if department and engine.department_record(department) is None:
            raise EngineError("not_found", f"no department {department!r}")
        hook = new_webhook(
            url=request.require("url", str),
            secret=request.require("secret", str),
            events=request.strings("events"),
            department=department,
            webhook_id=request.get("id", str, ""),
            now=engine.now(),
        )
        await add_webhook(store, hook)
        conn.log.info("webhook_added", webhook=hook.id, department=department)
        return {"webhook": webhook_record(hook)}

    async def listing(request: Request) -> Fields:
        return {"webhooks": [webhook_record(h) for h in await store.webhooks()]}

    async def remove(request: Request) -> Fields:
        webhook_id = request.require("id", str)
        await remove_webhook(store, webhook_id)
        conn.log.info("webhook_removed", webhook=webhook_id)
        return {}

    async def failures(request: Request) -> Fields:
        found = await store.outbox_failures(
            webhook_id=request.get("webhook_id", str), limit=request.get("limit", int, 100)
        )
        return fit(found, lambda shown: {"failures": [delivery_record(d) for d in shown]})

    async def replay(request: Request) -> Fields:
        count = await store.outbox_replay(
            now=engine.now(),
            webhook_id=request.get("webhook_id", str),
            delivery_ids=request.strings("delivery_ids"),
        )
        conn.log.info("webhooks_replayed", deliveries=count)
        return {"replayed": count}

    async def discard(request: Request) -> Fields:
        count = await store.outbox_discard(
            webhook_id=request.get("webhook_id", str),
            delivery_ids=request.strings("delivery_ids"),
        )
        conn.log.info("webhook_failures_discarded", deliveries=count)
        return {"discarded": count}

    return {
        "webhook_add": add,
        "webhook_list": listing,
        "webhook_remove": remove,
        "webhook_failures": failures,
        "webhook_replay": replay,
        "webhook_discard": discard,
    }
