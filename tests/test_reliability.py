"""Reliability under faults and overload: what was acknowledged happens, what was refused leaves
nothing, and every participant learns how its chat ended.

Faults that cannot be produced for real (a full disk, a slow disk) wrap the store's write path;
everything else is real: a real engine over a real SQLite file, a real lock held by another
connection.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

import engine.store.journal
import engine.store.queries
from engine import (
    ChatEnded,
    ChatMessage,
    Engine,
    EngineError,
    Entry,
    Offer,
    OfferWithdrawn,
    SqliteStore,
    StoreError,
    SystemEvent,
    TicketKind,
    Visitor,
    open_engine,
    open_store,
)

from .helpers import drain, of_type, offer_for, settle
from .test_faults import Fault, active_chat
from .test_recovery import CONFIG, all_tickets, crashing


def _line(seq: int, text: str) -> Entry:
    return Entry(seq=seq, at=float(seq), kind="message", author="visitor", text=text)


class TestStoreAfterALongLock:
    async def test_lines_are_written_again_once_the_lock_is_gone(self, db_path: Path) -> None:
        """Another connection holds the write lock longer than the busy wait: the line written
        meanwhile fails, and once the lock is released the next line is stored."""
        async with open_store(db_path, busy_timeout=0.05) as store:
            other = sqlite3.connect(db_path, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")  # the write lock, as another process holds it
                with pytest.raises(StoreError, match="locked"):
                    await store.append_entries("c-1", [_line(1, "while locked")])
                other.execute("ROLLBACK")
            finally:
                other.close()
            await store.append_entries("c-1", [_line(1, "after the lock")])
            state = await store.live_state()
        assert [(c.chat_id, [e.text for e in c.entries]) for c in state.chats] == [
            ("c-1", ["after the lock"])
        ]

    async def test_lines_of_several_chats_recover(self, db_path: Path) -> None:
        """Lines of several chats that failed together under the lock are all stored afterwards."""
        async with open_store(db_path, busy_timeout=0.05) as store:
            other = sqlite3.connect(db_path, isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                async with trio.open_nursery() as nursery:
                    for n in range(3):  # several sessions' lines share one failing job
                        nursery.start_soon(_refused_line, store, f"c-{n}")
                other.execute("ROLLBACK")
            finally:
                other.close()
            for n in range(3):
                await store.append_entries(f"c-{n}", [_line(1, "again")])
            state = await store.live_state()
        assert sorted(c.chat_id for c in state.chats) == ["c-0", "c-1", "c-2"]

    async def test_a_chat_goes_on_after_the_lock(
        self, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """Through the engine: a message sent while another connection holds the lock is refused
        store_unavailable; once the lock is gone the chat takes messages again."""
        async with (
            open_engine(CONFIG, db=db_path, synchronous="NORMAL", busy_timeout=0.05) as e,
            e.connect_agent("ann") as ann,
        ):
            await ann.set_status("online")
            async with e.open_chat(
                department="sales", question="q", visitor=Visitor(name="V")
            ) as v:
                await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
                other = sqlite3.connect(db_path, isolation_level=None)
                try:
                    other.execute("BEGIN IMMEDIATE")
                    with pytest.raises(EngineError) as err:
                        await v.send("while locked", client_msg_id="m-1")
                    assert err.value.code == "store_unavailable"
                    other.execute("ROLLBACK")
                finally:
                    other.close()
                seq = await v.send("while locked", client_msg_id="m-1")  # the client resends
                assert await ann.send(v.chat_id, "and back") == seq + 1
                texts = [x.text for x in await v.history() if x.kind == "message"]
        assert texts == ["while locked", "and back"]


async def _refused_line(store: SqliteStore, chat_id: str) -> None:
    with pytest.raises(StoreError):
        await store.append_entries(chat_id, [_line(1, "refused")])


class TestReplay:
    async def test_a_waiting_reader_gets_the_earlier_lines_before_joined(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent whose console is already waiting for events when it accepts receives the
        chat's earlier lines first, then its own `joined` line (SPEC section 7)."""
        seqs: list[tuple[int, str]] = []
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with engine.open_chat(
                department="sales", question="q", visitor=Visitor(name="V")
            ) as v:
                await v.send("one")
                await v.send("two")
                offer = await offer_for(ann, v.chat_id)

                async def read() -> None:
                    async for event in ann.events():
                        if isinstance(event, ChatMessage | SystemEvent):
                            kind = event.text if isinstance(event, ChatMessage) else event.event
                            seqs.append((event.seq, kind))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read)
                    await settle()  # the reader is waiting for its next event
                    await ann.accept(offer.offer_id)
                    await settle()
                    nursery.cancel_scope.cancel()
        assert seqs == [(1, "one"), (2, "two"), (3, "joined")]


class TestChatsWhoseTicketFails:
    async def test_participants_are_told_the_chat_crashed(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """With the disk full the ended chat's ticket cannot be written: the agent's end_chat
        fails, and still the visitor and the agent get `ended` with reason `crashed`, the agent no
        longer holds the chat, and the failed ticket is stored once the disk has room."""
        fault = Fault(
            monkeypatch, engine.store.queries, "insert_ticket", "database or disk is full"
        )
        async with crashing(db_path) as (e, handles):
            ann, v = await active_chat(e, handles)
            await v.send("hello")
            await drain(ann)
            await drain(v)
            fault.on = True
            with pytest.raises(EngineError) as err:
                await ann.end_chat(v.chat_id)
            assert err.value.code == "internal"
            for handle in (v, ann):
                ended = of_type(await drain(handle), ChatEnded)
                assert [(x.chat_id, x.reason) for x in ended] == [(v.chat_id, "crashed")]
            assert (await e.agent_view("ann")).chats == ()  # type: ignore[union-attr]
            fault.on = False
            await trio.sleep(2)  # the router writes the failed ticket again
            await settle()
        (ticket,) = (await all_tickets(db_path))[v.chat_id]
        assert (ticket.kind, ticket.end_reason.value) == (TicketKind.FAILED, "crashed")
        assert "hello" in [x.text for x in ticket.entries]


class SlowDisk:
    """Holds the store's chat-line writes while stalled (a disk that stops answering for a while),
    so that a session waits on its write and its mailbox fills up."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.going = trio.Event()
        self.going.set()
        original = SqliteStore.append_entries

        async def append_entries(
            store: SqliteStore, chat_id: str, entries: Sequence[Entry]
        ) -> None:
            await self.going.wait()
            await original(store, chat_id, entries)

        monkeypatch.setattr(SqliteStore, "append_entries", append_entries)

    def stall(self) -> None:
        self.going = trio.Event()

    def resume(self) -> None:
        self.going.set()


class TestFullSessionMailbox:
    async def test_an_acknowledged_join_reaches_the_session(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """An agent accepts while the chat's session is busy and its mailbox full: the accept is
        acknowledged only with the join delivered, so the agent can write into the chat and the
        visitor sees it join."""
        disk = SlowDisk(monkeypatch)
        config = dataclasses.replace(CONFIG, mailbox_size=4)
        async with (
            open_engine(config, db=db_path, synchronous="NORMAL") as e,
            e.connect_agent("ann") as ann,
        ):
            await ann.set_status("online")
            async with e.open_chat(
                department="sales", question="q", visitor=Visitor(name="V")
            ) as v:
                offer = await offer_for(ann, v.chat_id)
                disk.stall()
                accepted: list[str] = []
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(v.send, "hello")  # the session waits for this line's write
                    await settle()
                    for _ in range(config.mailbox_size):  # and its mailbox fills meanwhile
                        await v.typing(True)

                    async def accept() -> None:
                        accepted.append(await ann.accept(offer.offer_id))

                    nursery.start_soon(accept)
                    await trio.sleep(1)  # a while, with the mailbox still full
                    disk.resume()
                assert accepted == [v.chat_id]
                assert await ann.send(v.chat_id, "hi, I am here") > 0
                kinds = [x.kind for x in await v.history()]
        assert kinds == ["message", "joined", "message"]


class TestRefusedOpenChat:
    async def test_a_refused_chat_leaves_nothing_and_a_retry_makes_one(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """With the disk full open_chat is refused store_unavailable, also when nobody is online
        (the chat would end at once as missed): no ticket and no live chat is left of it, and the
        visitor's retry once the disk has room makes exactly one missed-chat ticket."""
        fault = Fault(monkeypatch, engine.store.journal, "write_batch", "database or disk is full")
        async with crashing(db_path) as (e, _):
            fault.on = True
            with pytest.raises(EngineError) as err:
                async with e.open_chat(department="sales", question="q", visitor=Visitor(name="V")):
                    pass  # pragma: no cover
            assert err.value.code == "store_unavailable"
            fault.on = False
            await trio.sleep(5)  # every retry and ticket write is done by now
            await settle()
            assert await all_tickets(db_path) == {}
            assert (await e.inspect()).chats == {}
            async with e.open_chat(
                department="sales", question="q", visitor=Visitor(name="V")
            ) as v:
                assert of_type(await drain(v), ChatEnded)
            await settle()
        tickets = await all_tickets(db_path)
        assert [(t.chat_id, t.kind, t.end_reason.value) for (t,) in tickets.values()] == [
            (v.chat_id, TicketKind.MISSED, "no_agent_online")
        ]

    async def test_an_offer_for_a_refused_chat_is_withdrawn(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """The agent offered a chat whose opening was refused sees the offer withdrawn; nothing is
        stored for it, and after a restart nothing of it comes back."""
        fault = Fault(monkeypatch, engine.store.journal, "write_batch", "database or disk is full")
        async with crashing(db_path) as (e, handles):
            ann = await handles.enter_async_context(e.connect_agent("ann"))
            await ann.set_status("online")
            await drain(ann)
            fault.on = True
            with pytest.raises(EngineError) as err:
                async with e.open_chat(department="sales", question="q", visitor=Visitor(name="V")):
                    pass  # pragma: no cover
            assert err.value.code == "store_unavailable"
            fault.on = False
            await trio.sleep(5)
            await settle()
            (withdrawn,) = of_type(await drain(ann), OfferWithdrawn)
            assert withdrawn.reason == "chat_ended"
            view = await e.inspect()
            assert (view.chats, view.agents["ann"].offers) == ({}, ())
        async with crashing(db_path) as (e, _):
            assert (await e.inspect()).chats == {}
        assert await all_tickets(db_path) == {}


class TestCapacityLoweredAcrossARestart:
    async def test_an_agent_over_its_new_capacity_gets_no_offer_until_under_it(
        self, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """Ann held three chats; the engine restarts with her capacity lowered to one. She keeps
        the three, and is offered no chat and no transfer until she holds none."""
        async with crashing(db_path) as (e, handles):
            ann = await handles.enter_async_context(e.connect_agent("ann"))
            await ann.set_status("online")
            held = []
            for n in range(3):
                v = await handles.enter_async_context(
                    e.open_chat(department="sales", question=f"q{n}", visitor=Visitor(name="V"))
                )
                await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
                held.append(v.chat_id)
        lowered = dataclasses.replace(
            CONFIG,
            agents=tuple(
                dataclasses.replace(a, capacity=1) if a.id == "ann" else a for a in CONFIG.agents
            ),
        )
        async with crashing(db_path, lowered) as (e, handles):
            ann = await handles.enter_async_context(e.connect_agent("ann"))
            view = await e.agent_view("ann")
            assert view is not None
            assert (view.capacity, sorted(view.chats)) == (1, sorted(held))
            new = await handles.enter_async_context(
                e.open_chat(department="sales", question="new", visitor=Visitor(name="W"))
            )
            for chat_id in held[:2]:  # down to one chat: at her capacity, not under it
                await ann.end_chat(chat_id)
            assert not of_type(await drain(ann), Offer)
            assert (await e.chat_view(new.chat_id)).state == "queued"  # type: ignore[union-attr]
            bob = await handles.enter_async_context(e.connect_agent("bob"))
            await bob.set_status("online")
            await bob.accept((await offer_for(bob, new.chat_id)).offer_id)
            with pytest.raises(EngineError) as err:
                await bob.transfer(new.chat_id, to_agent="ann")
            assert err.value.code == "agent_unavailable"
            await ann.end_chat(held[2])
            await bob.transfer(new.chat_id, to_agent="ann")
            offers = of_type(await drain(ann), Offer)
            assert [(o.chat_id, o.kind) for o in offers] == [(new.chat_id, "transfer")]
