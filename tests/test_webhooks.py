"""Webhooks end to end: the engine's events, the durable outbox, and a real local receiver.

The receiver is an HTTP/1.1 server on 127.0.0.1 in the test's own trio run, so the autojump clock
drives the backoff, the retry time and the receiver's outage alike.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from trio.testing import MockClock

from engine import Engine, EngineConfig, EngineError, Visitor, open_engine
from engine.model.desk_events import DeskEventKind, Webhook
from engine.store import journal as store_journal
from protocol.server.webhooks import Deliverer, DeliveryPolicy, backoff, sign, verify

from .helpers import offer_for
from .test_faults import Fault
from .webhook_receiver import Received, receiver

SECRET = "a-shared-secret-of-some-length"
VISITOR = Visitor(name="Vera", email="vera@example.com")
POLICY = DeliveryPolicy(timeout=5.0, base_delay=1.0, max_delay=30.0, max_age=600.0)

TAKEN = ["chat.opened", "chat.accepted", "chat.transferred", "chat.ended", "ticket.created"]
MISSED = ["chat.opened", "chat.missed", "ticket.created"]


@asynccontextmanager
async def delivering(engine: Engine, policy: DeliveryPolicy = POLICY) -> AsyncIterator[Deliverer]:
    """The daemon's deliverer over the engine's store, for the duration of the block."""
    async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:
        deliverer = Deliverer(engine.store, client, now=engine.now, policy=policy)
        await nursery.start(deliverer.run)
        yield deliverer
        nursery.cancel_scope.cancel()


async def add_hook(engine: Engine, url: str, **kw: object) -> None:
    hook = Webhook(id="crm", url=url, secret=SECRET, created_at=engine.now(), **kw)  # type: ignore[arg-type]
    await engine.store.save_webhook(hook)


async def taken_chat(engine: Engine) -> str:
    """A chat that ann accepts, transfers to bob, who ends it."""
    async with engine.connect_agent("ann") as ann, engine.connect_agent("bob") as bob:
        await ann.set_status("online")
        await bob.set_status("online")
        async with engine.open_chat(department="sales", question="Hi", visitor=VISITOR) as v:
            await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
            await ann.transfer(v.chat_id, to_agent="bob", note="billing")
            await bob.accept((await offer_for(bob, v.chat_id)).offer_id)
            await bob.end_chat(v.chat_id)
            await trio.testing.wait_all_tasks_blocked()
            return v.chat_id


async def missed_chat(engine: Engine) -> str:
    """A chat in a department whose chat is off: missed at once."""
    async with engine.open_chat(department="closed", question="Hello?", visitor=VISITOR) as v:
        return v.chat_id


async def all_settled(engine: Engine) -> None:
    """Wait (in virtual time) until nothing is pending in the outbox."""
    while (await engine.store.outbox_counts())["pending"]:  # noqa: ASYNC110 - a store, no event
        await trio.sleep(1.0)


def per_chat(received: list[Received]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in received:
        out.setdefault(r.event["chat_id"], []).append(r.event["type"])
    return out


def failing_for(seconds: float, status: int = 503) -> object:
    """An answer: `status` until `seconds` of trio time from now have passed, then 200."""
    until = trio.current_time() + seconds
    return lambda r: status if trio.current_time() < until else 200


class TestDelivery:
    async def test_outage_then_recovery(
        self, config: EngineConfig, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """Through a 503 outage every event arrives once, in order per chat, signed."""
        async with receiver() as rec, open_engine(config, db=db_path) as engine:
            await add_hook(engine, rec.url)
            rec.answer = failing_for(60.0)  # type: ignore[assignment]
            async with delivering(engine):
                taken = await taken_chat(engine)
                missed = await missed_chat(engine)
                await all_settled(engine)
            assert any(r.status == 503 for r in rec.received)
            assert {taken: TAKEN, missed: MISSED} == per_chat(rec.accepted())
            assert rec.valid(SECRET, engine.now())
            first = rec.accepted()[0]
            assert first.headers["x-helpline-event"] == first.event["type"]
            assert first.headers["x-helpline-delivery"] == first.event["id"]
            assert "application/json" == first.headers["content-type"]

    async def test_lost_response_is_sent_again_with_the_same_id(
        self, config: EngineConfig, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """A post whose answer is lost is retried; the delivery id lets the receiver dedupe."""
        async with receiver() as rec, open_engine(config, db=db_path) as engine:
            await add_hook(engine, rec.url)
            dropped: list[str] = []

            def answer(r: Received) -> int | None:
                if not dropped:
                    dropped.append(r.headers["x-helpline-delivery"])
                    return None
                return 200

            rec.answer = answer
            async with delivering(engine):
                missed = await missed_chat(engine)
                await all_settled(engine)
            ids = [r.headers["x-helpline-delivery"] for r in rec.received]
            assert ids.count(dropped[0]) == 2
            assert {missed: MISSED} == per_chat(rec.accepted())

    async def test_restart_loses_nothing(
        self, config: EngineConfig, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """Events queued before a stop are delivered by the next process, once, in order."""
        async with receiver() as rec:
            rec.answer = lambda r: 503
            async with open_engine(config, db=db_path) as engine:
                await add_hook(engine, rec.url)
                async with delivering(engine):
                    taken = await taken_chat(engine)
                    await trio.sleep(20.0)
            assert rec.received
            assert not rec.accepted()
            rec.answer = lambda r: 200
            async with open_engine(config, db=db_path) as engine, delivering(engine):
                missed = await missed_chat(engine)
                await all_settled(engine)
            assert {taken: TAKEN, missed: MISSED} == per_chat(rec.accepted())

    async def test_filters(
        self, config: EngineConfig, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """A webhook hears only its department and the kinds it asked for."""
        async with receiver() as rec, open_engine(config, db=db_path) as engine:
            await add_hook(
                engine, rec.url, department="sales", events=(DeskEventKind.TICKET_CREATED,)
            )
            async with delivering(engine):
                taken = await taken_chat(engine)
                await missed_chat(engine)
                await all_settled(engine)
            assert {taken: ["ticket.created"]} == per_chat(rec.accepted())

    async def test_rating(
        self, config: EngineConfig, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """A visitor's rating is an event, after the ticket's."""
        async with receiver() as rec, open_engine(config, db=db_path) as engine:
            await add_hook(engine, rec.url)
            async with delivering(engine):
                taken = await taken_chat(engine)
                await engine.rate_chat(taken, "good", "quick")
                await all_settled(engine)
            (events,) = per_chat(rec.accepted()).values()
            assert [*TAKEN, "rating.given"] == events
            assert {"rating": "good", "comment": "quick"}.items() <= (
                rec.accepted()[-1].event["data"].items()
            )


class TestGivingUp:
    async def test_failed_after_max_age_then_replayed(
        self, config: EngineConfig, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """After max_age a delivery is failed, with its error; a replay delivers it."""
        policy = DeliveryPolicy(base_delay=1.0, max_delay=20.0, max_age=120.0)
        async with receiver() as rec, open_engine(config, db=db_path) as engine:
            await add_hook(engine, rec.url)
            rec.answer = lambda r: 500
            async with delivering(engine, policy):
                missed = await missed_chat(engine)
                await trio.sleep(200.0)
                failures = await engine.store.outbox_failures()
                assert [MISSED[0]] == [f.kind.value for f in failures][:1]
                assert {"HTTP 500"} == {f.last_error for f in failures}
                attempts = [r.event["type"] for r in rec.received]
                # backed off (1, 2, 4 ... 20 s, jittered), not hammered at every poll
                assert 8 <= attempts.count("chat.opened") <= 18
                rec.answer = lambda r: 200
                assert len(failures) == await engine.store.outbox_replay(now=engine.now())
                await all_settled(engine)
            assert {missed: MISSED} == per_chat(rec.accepted())
            assert [] == await engine.store.outbox_failures()

    async def test_delivered_rows_purged_after_retention(
        self, config: EngineConfig, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """The deliverer deletes delivered rows once they are older than its retention, and
        keeps a failed one until it is replayed."""
        policy = DeliveryPolicy(base_delay=1.0, max_delay=5.0, max_age=30.0, retention=600.0)
        async with receiver() as rec, open_engine(config, db=db_path) as engine:
            await add_hook(engine, rec.url)
            async with delivering(engine, policy):
                await missed_chat(engine)
                await all_settled(engine)
                assert 3 == (await engine.store.outbox_counts())["delivered"]
                rec.answer = lambda r: 500
                await missed_chat(engine)
                await trio.sleep(200.0)
                counts = await engine.store.outbox_counts()
                assert (3, 3, 0) == (counts["delivered"], counts["failed"], counts["pending"])
                await trio.sleep(600.0)
                counts = await engine.store.outbox_counts()
                assert (0, 3, 0) == (counts["delivered"], counts["failed"], counts["pending"])
                await trio.sleep(3600.0)
                assert 3 == (await engine.store.outbox_counts())["failed"]


class TestSignature:
    def test_verify(self) -> None:
        """A receiver accepts its own secret's signature, recent, over the exact body."""
        body = b'{"id":"x"}'
        header = sign(SECRET, 1_700_000_000, body)
        assert verify(SECRET, header, body, now=1_700_000_010)
        assert not verify("another secret", header, body, now=1_700_000_010)
        assert not verify(SECRET, header, body + b" ", now=1_700_000_010)
        assert not verify(SECRET, header, body, now=1_700_001_000)  # too old: a replay
        assert not verify(SECRET, "garbage", body, now=1_700_000_010)


class TestBackoff:
    @pytest.mark.parametrize("attempts", [1, 2, 5, 20])
    def test_between_half_and_all_of_the_capped_doubling(self, attempts: int) -> None:
        """The n-th retry waits between half and all of min(max_delay, base * 2**(n-1))."""
        ceiling = min(POLICY.max_delay, POLICY.base_delay * 2 ** (attempts - 1))
        waits = [backoff(attempts, POLICY, random.Random(seed)) for seed in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jitter


async def queued(engine: Engine) -> list[tuple[str, str]]:
    """(chat id, kind) of every outbox row, in the outbox's order."""
    return await engine.store.read(
        lambda conn: [tuple(r) for r in conn.execute("SELECT chat_id, kind FROM webhook_outbox")]
    )


class TestJournalFaults:
    async def test_a_failed_write_keeps_its_events_for_the_retry(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """An accept whose write fails is queued once, after the opening, when the store is back."""
        await add_hook(engine, "http://127.0.0.1:9/hook")
        fault = Fault(monkeypatch, store_journal, "write_batch")
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with engine.open_chat(department="sales", question="q", visitor=VISITOR) as v:
                offer = await offer_for(ann, v.chat_id)
                fault.on = True
                with pytest.raises(EngineError):
                    await ann.accept(offer.offer_id)
                await trio.sleep(3)  # the retry timer fails too
                assert [(v.chat_id, "chat.opened")] == await queued(engine)
                fault.on = False
                await trio.sleep(2)
                assert [(v.chat_id, "chat.opened"), (v.chat_id, "chat.accepted")] == await queued(
                    engine
                )

    async def test_a_refused_chat_has_no_events(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """A chat whose opening could not be saved was never opened, for webhooks too."""
        await add_hook(engine, "http://127.0.0.1:9/hook")
        fault = Fault(monkeypatch, store_journal, "write_batch")
        fault.on = True
        with pytest.raises(EngineError):
            async with engine.open_chat(department="sales", question="q", visitor=VISITOR):
                pass
        fault.on = False
        await trio.sleep(3)
        assert [] == await queued(engine)

    async def test_journal_off_still_queues_events(
        self, config: EngineConfig, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """Without the journal the router's events go to the outbox on their own."""
        config = dataclasses.replace(config, journal=False)
        async with open_engine(config, db=db_path) as engine:
            await add_hook(engine, "http://127.0.0.1:9/hook")
            chat_id = await missed_chat(engine)
            await trio.sleep(1)
            assert [(chat_id, kind) for kind in MISSED] == await queued(engine)
