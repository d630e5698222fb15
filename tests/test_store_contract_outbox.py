"""The store contract's webhook outbox (engine.store.outbox), run against every implementation.

Events are queued by the writes that decide them, in order, one row per webhook that wants them;
only the oldest pending row of a (webhook, chat) is due; outcomes, failures and replays are kept.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine import Rating, Store, StoreError, copy_store, open_store
from engine.model.desk_events import (
    DeliveryState,
    DeskEvent,
    DeskEventKind,
    Webhook,
)
from engine.store.journal import JournalBatch
from engine.store.outbox import enqueue

from .test_store_contract import make_ticket, submitted


async def queue(store: Store, events: list[DeskEvent]) -> int:
    """Queue events decided outside the engine's writes, as the engine does inside them."""
    return await store.write(lambda conn: enqueue(conn, events))


ALL = Webhook(id="all", url="http://127.0.0.1:1/all", secret="s" * 16, created_at=1.0)
SALES_ENDS = Webhook(
    id="sales-ends",
    url="http://127.0.0.1:1/sales",
    secret="t" * 16,
    department="sales",
    events=(DeskEventKind.CHAT_ENDED, DeskEventKind.RATING_GIVEN),
    created_at=2.0,
)


def event(kind: DeskEventKind, chat_id: str, at: float, department: str = "sales") -> DeskEvent:
    return DeskEvent(kind=kind, chat_id=chat_id, department=department, at=at, data={"n": at})


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as s:
        await s.save_webhook(ALL)
        await s.save_webhook(SALES_ENDS)
        yield s


async def due_kinds(store: Store, now: float = 1e12) -> list[tuple[str, str, str]]:
    return [(d.webhook_id, d.chat_id, d.kind.value) for d in await store.outbox_due(now)]


class TestWebhooks:
    async def test_saved_listed_removed(self, store: Store) -> None:
        """Webhooks come back as saved, by id; a removed one is gone with its outbox rows."""
        assert [ALL, SALES_ENDS] == await store.webhooks()
        await queue(store, [event(DeskEventKind.CHAT_ENDED, "c1", 5.0)])
        await store.remove_webhook("sales-ends")
        assert [ALL] == await store.webhooks()
        assert {"pending": 1, "delivered": 0, "failed": 0} == await store.outbox_counts()
        with pytest.raises(StoreError) as info:
            await store.remove_webhook("sales-ends")
        assert "not_found" == info.value.code

    async def test_id_taken(self, store: Store) -> None:
        """A second webhook with the same id is refused with webhook_exists."""
        with pytest.raises(StoreError) as info:
            await store.save_webhook(ALL)
        assert "webhook_exists" == info.value.code


class TestEnqueue:
    async def test_one_row_per_webhook_that_wants_it(self, store: Store) -> None:
        """The department and the kinds of a webhook filter what it is queued."""
        queued = await queue(
            store,
            [
                event(DeskEventKind.CHAT_OPENED, "c1", 1.0),
                event(DeskEventKind.CHAT_ENDED, "c2", 2.0),
                event(DeskEventKind.CHAT_ENDED, "c3", 3.0, department="support"),
            ],
        )
        assert 4 == queued
        assert [
            ("all", "c1", "chat.opened"),
            ("all", "c2", "chat.ended"),
            ("sales-ends", "c2", "chat.ended"),
            ("all", "c3", "chat.ended"),
        ] == await due_kinds(store)

    async def test_body_is_the_event_with_its_delivery_id(self, store: Store) -> None:
        """The row holds the JSON posted; its id is the row's delivery id."""
        await queue(store, [event(DeskEventKind.CHAT_OPENED, "c1", 7.5)])
        (delivery,) = await store.outbox_due(10.0)
        assert {
            "id": delivery.delivery_id,
            "type": "chat.opened",
            "chat_id": "c1",
            "department": "sales",
            "at": 7.5,
            "data": {"n": 7.5},
        } == json.loads(delivery.body)
        assert (ALL.url, ALL.secret, 0) == (delivery.url, delivery.secret, delivery.attempts)

    async def test_ticket_and_rating_queue_their_events(self, store: Store) -> None:
        """Storing a ticket queues how the chat ended and the ticket; a rating queues itself."""
        ticket = await store.save_ticket(make_ticket("c1"))
        await store.rate("c1", Rating.GOOD, "thanks", at=2_000.0)
        rows = []
        while due := await store.outbox_due(1e12):
            for d in due:
                rows.append((d.webhook_id, json.loads(d.body)))
                await store.outbox_mark(
                    d.id, state=DeliveryState.DELIVERED, attempts=1, next_attempt=0.0, now=1.0
                )
        mine = [(w, doc["type"], doc["data"].get("ticket_id")) for w, doc in rows]
        assert [
            ("all", "chat.ended", ticket.id),
            ("sales-ends", "chat.ended", ticket.id),
            ("all", "ticket.created", ticket.id),
            ("sales-ends", "rating.given", ticket.id),
            ("all", "rating.given", ticket.id),
        ] == mine

    async def test_journal_batch_queues_its_events(self, store: Store) -> None:
        """The router's events go in with its batch; a failed batch queues nothing."""
        batch = JournalBatch(events=(event(DeskEventKind.CHAT_ACCEPTED, "c1", 1.0),))
        assert None is await submitted(store, batch)
        assert [("all", "c1", "chat.accepted")] == await due_kinds(store)


class TestDue:
    async def test_a_chats_next_event_waits_for_the_one_before(self, store: Store) -> None:
        """Only the oldest pending row of a chat is due; other chats are not held up."""
        await queue(
            store,
            [
                event(DeskEventKind.CHAT_OPENED, "c1", 1.0),
                event(DeskEventKind.CHAT_ACCEPTED, "c1", 2.0),
                event(DeskEventKind.CHAT_OPENED, "c2", 3.0),
            ],
        )
        first, other = await store.outbox_due(100.0)
        assert ("c1", "chat.opened", "c2") == (first.chat_id, first.kind.value, other.chat_id)
        await store.outbox_mark(
            first.id, state=DeliveryState.PENDING, attempts=1, next_attempt=50.0, now=10.0
        )
        assert [("all", "c2", "chat.opened")] == await due_kinds(store, now=20.0)
        assert ("c1", "chat.opened") == (
            (await store.outbox_due(60.0))[0].chat_id,
            (await store.outbox_due(60.0))[0].kind.value,
        )
        await store.outbox_mark(
            first.id, state=DeliveryState.DELIVERED, attempts=2, next_attempt=0.0, now=60.0
        )
        assert ("all", "c1", "chat.accepted") in await due_kinds(store, now=60.0)

    async def test_failed_is_listed_and_replayed(self, store: Store) -> None:
        """A row given up no longer holds its chat back; replay puts it back in line, first."""
        await queue(
            store,
            [
                event(DeskEventKind.CHAT_OPENED, "c1", 1.0, department="x"),
                event(DeskEventKind.CHAT_ACCEPTED, "c1", 2.0, department="x"),
            ],
        )
        (first,) = await store.outbox_due(10.0)
        await store.outbox_mark(
            first.id,
            state=DeliveryState.FAILED,
            attempts=9,
            next_attempt=0.0,
            error="HTTP 503",
            now=10.0,
        )
        (failed,) = await store.outbox_failures()
        assert (first.delivery_id, "HTTP 503", 9, 10.0) == (
            failed.delivery_id,
            failed.last_error,
            failed.attempts,
            failed.done_at,
        )
        assert [] == await store.outbox_failures(webhook_id="sales-ends")
        assert [("all", "c1", "chat.accepted")] == await due_kinds(store, now=10.0)
        assert 1 == await store.outbox_replay(now=20.0, delivery_ids=[first.delivery_id])
        assert 0 == await store.outbox_replay(now=20.0)
        (again,) = await store.outbox_due(20.0)
        assert (first.id, 0, 20.0, DeliveryState.PENDING) == (
            again.id,
            again.attempts,
            again.queued_at,
            again.state,
        )
        assert [] == await store.outbox_failures()

    async def test_purge_deletes_only_old_delivered_rows(self, store: Store) -> None:
        """Delivered rows older than the cut are deleted; newer delivered, pending and failed
        rows stay."""
        await queue(
            store,
            [event(DeskEventKind.CHAT_OPENED, f"c{n}", float(n), department="x") for n in range(4)],
        )
        rows = await store.outbox_due(10.0)
        assert 4 == len(rows)
        outcomes = [
            (DeliveryState.DELIVERED, 10.0),
            (DeliveryState.DELIVERED, 30.0),
            (DeliveryState.FAILED, 10.0),
        ]
        for row, (state, at) in zip(rows, outcomes, strict=False):
            await store.outbox_mark(row.id, state=state, attempts=1, next_attempt=at, now=at)
        assert {"pending": 1, "delivered": 2, "failed": 1} == await store.outbox_counts()
        assert 1 == await store.outbox_purge(delivered_before=20.0)
        assert {"pending": 1, "delivered": 1, "failed": 1} == await store.outbox_counts()
        assert 0 == await store.outbox_purge(delivered_before=20.0)
        assert 1 == await store.outbox_purge(delivered_before=1e12)
        assert {"pending": 1, "delivered": 0, "failed": 1} == await store.outbox_counts()
        assert [rows[2].delivery_id] == [f.delivery_id for f in await store.outbox_failures()]

    async def test_discard_deletes_only_failed_rows(self, store: Store) -> None:
        """An admin's discard deletes the failed rows named (or a webhook's, or all), nothing
        pending or delivered."""
        await queue(
            store,
            [event(DeskEventKind.CHAT_OPENED, f"c{n}", float(n), department="x") for n in range(4)],
        )
        rows = await store.outbox_due(10.0)
        for row, state in zip(
            rows, [DeliveryState.FAILED] * 3 + [DeliveryState.DELIVERED], strict=True
        ):
            await store.outbox_mark(row.id, state=state, attempts=1, next_attempt=10.0, now=10.0)
        assert 1 == await store.outbox_discard(delivery_ids=[rows[0].delivery_id])
        assert 0 == await store.outbox_discard(webhook_id="sales-ends")
        assert 0 == await store.outbox_discard(delivery_ids=[rows[3].delivery_id])
        assert 2 == await store.outbox_discard()
        assert {"pending": 0, "delivered": 1, "failed": 0} == await store.outbox_counts()


class TestCopy:
    async def test_webhooks_and_outbox_are_copied(self, store: Store, tmp_path: Path) -> None:
        """`store copy` takes the webhooks and the outbox along, ids and all."""
        await queue(store, [event(DeskEventKind.CHAT_ENDED, "c1", 1.0)])
        async with open_store(tmp_path / "copy.db") as target:
            report = await copy_store(store, target, target_is_postgres=False)
            assert report.matches
            assert (2, 2) == (report.target["webhooks"], report.target["webhook_outbox"])
            assert [d.delivery_id for d in await store.outbox_due(10.0)] == [
                d.delivery_id for d in await target.outbox_due(10.0)
            ]
