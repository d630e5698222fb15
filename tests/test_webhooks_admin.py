"""Webhooks for admins, over the wire: add, list, remove, failures and replay."""

from __future__ import annotations

from typing import Any

from trio.testing import MockClock

from engine import Engine
from engine.model.desk_events import DeliveryState, DeskEvent, DeskEventKind
from engine.store.outbox import enqueue

from .gateway_harness import open_gateway, refused

SECRET = "0123456789abcdef"


class TestWebhookRequests:
    async def test_add_list_remove(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A webhook is added with its filters, listed without its secret, and removed."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            added: Any = await admin.request(
                "webhook_add",
                id="crm",
                url="https://crm.example.com/hook",
                secret=SECRET,
                events=["chat.ended", "rating.given"],
                department="sales",
            )
            assert {
                "id": "crm",
                "url": "https://crm.example.com/hook",
                "department": "sales",
                "events": ("chat.ended", "rating.given"),  # the client decodes lists as tuples
                "created_at": engine.now(),
            } == dict(added["webhook"])
            listed: Any = await admin.request("webhook_list")
            assert ["crm"] == [h["id"] for h in listed["webhooks"]]
            assert "secret" not in listed["webhooks"][0]
            assert SECRET == (await engine.store.webhooks())[0].secret
            await refused(
                "invalid_state",
                admin.request("webhook_add", id="crm", url="http://x.example", secret=SECRET),
            )
            await admin.request("webhook_remove", id="crm")
            await refused("not_found", admin.request("webhook_remove", id="crm"))

    async def test_refusals(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A URL that is not http(s), a short secret, an unknown kind or department is refused."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            for fields in (
                {"url": "ftp://crm.example.com/hook", "secret": SECRET},
                {"url": "not a url", "secret": SECRET},
                {"url": "https://crm.example.com/hook", "secret": SECRET, "events": ["chat.x"]},
            ):
                await refused("invalid_field", admin.request("webhook_add", **fields))
            await refused(
                "invalid_field",
                admin.request("webhook_add", url="https://crm.example.com", secret="short"),
            )
            await refused(
                "not_found",
                admin.request(
                    "webhook_add", url="https://a.example", secret=SECRET, department="mars"
                ),
            )

    async def test_failures_and_replay(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A delivery given up is listed with its event and error; replay puts it back in line."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            await admin.request("webhook_add", id="crm", url="https://a.example", secret=SECRET)
            event = DeskEvent(
                kind=DeskEventKind.CHAT_OPENED, chat_id="c1", department="sales", at=5.0
            )
            await engine.store.write(lambda conn: enqueue(conn, [event]))
            (row,) = await engine.store.outbox_due(engine.now())
            await engine.store.outbox_mark(
                row.id,
                state=DeliveryState.FAILED,
                attempts=7,
                next_attempt=0.0,
                error="HTTP 503",
                now=engine.now(),
            )
            reply: Any = await admin.request("webhook_failures", webhook_id="crm")
            (failure,) = reply["failures"]
            assert (row.delivery_id, "chat.opened", 7, "HTTP 503", "c1") == (
                failure["delivery_id"],
                failure["type"],
                failure["attempts"],
                failure["last_error"],
                failure["event"]["chat_id"],
            )
            assert {"replayed": 1} == dict(
                await admin.request("webhook_replay", delivery_ids=[row.delivery_id])
            )
            assert {"failures": ()} == dict(await admin.request("webhook_failures"))
            assert [row.delivery_id] == [
                d.delivery_id for d in await engine.store.outbox_due(engine.now())
            ]
            assert {"discarded": 0} == dict(await admin.request("webhook_discard"))  # pending
            await engine.store.outbox_mark(
                row.id, state=DeliveryState.FAILED, attempts=1, next_attempt=0.0, now=engine.now()
            )
            discarded = await admin.request("webhook_discard", delivery_ids=[row.delivery_id])
            assert {"discarded": 1} == dict(discarded)
            assert {"failures": ()} == dict(await admin.request("webhook_failures"))
            assert [] == await engine.store.outbox_due(engine.now())
