"""Store faults and crashed actors: errors reach the requester, nothing acknowledged is lost.

A fault wraps one of the store's job functions (run in the writer thread) so that it raises
sqlite3.OperationalError, the way a full disk, an I/O error or a locked file would, for as long as
it is switched on.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
from trio.testing import MockClock

import engine.store.journal
import engine.store.queries
from engine import (
    ChatAssigned,
    ChatMessage,
    Engine,
    EngineError,
    Event,
    StoreError,
    TicketKind,
    Visitor,
    VisitorChat,
    open_engine,
)

from .helpers import check_invariants, drain, of_type, offer_for, settle
from .test_recovery import CONFIG, all_tickets, crashing, integrity

T = TypeVar("T")


class Fault:
    """Makes `module.name` raise sqlite3.OperationalError while on (or on every `every`-th call)."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        module: Any,
        name: str,
        error: str = "disk I/O error",
        every: int = 0,
    ) -> None:
        self.on = False
        self.failed = 0
        original: Callable[..., Any] = getattr(module, name)
        calls = itertools.count(1)

        def job(*args: Any, **kwargs: Any) -> Any:
            n = next(calls)
            if self.on or (every and n % every == 0):
                self.failed += 1
                raise sqlite3.OperationalError(error)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, job)


class BrokenSink:
    """A frontend's sink with a bug: it raises on the chat message "boom" (`actors.outbox.Sink`
    says a sink never raises), so the session that fans that line out crashes."""

    def push(self, event: Event) -> bool:
        if isinstance(event, ChatMessage) and event.text == "boom":
            raise RuntimeError("a bug behind the session's fan-out")
        return True

    def replay(self, events: Sequence[Event]) -> None:
        pass

    def closed(self, kicked: bool) -> None:
        pass


async def active_chat(engine: Engine, handles: AsyncExitStack, agent_id: str = "ann") -> Any:
    """A visitor's chat accepted by `agent_id`; returns (agent connection, visitor chat)."""
    agent = await handles.enter_async_context(engine.connect_agent(agent_id))
    await agent.set_status("online")
    v = await handles.enter_async_context(
        engine.open_chat(department="sales", question="q", visitor=Visitor(name="V"))
    )
    await agent.accept((await offer_for(agent, v.chat_id)).offer_id)
    return agent, v


class TestStoreFaults:
    @pytest.mark.parametrize(
        "error", ["database or disk is full", "disk I/O error", "database is locked"]
    )
    async def test_lines_not_written_are_refused(
        self,
        db_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        error: str,
        autojump_clock: MockClock,
    ) -> None:
        """A message the store cannot take is answered store_unavailable and shown to nobody;
        the engine goes on, and once the store is back a resend is stored once."""
        fault = Fault(monkeypatch, engine.store.journal, "append_entries", error)
        async with crashing(db_path) as (e, handles):
            ann, v = await active_chat(e, handles)
            before = await v.send("one", client_msg_id="v-1")
            await drain(ann)
            await drain(v)
            fault.on = True
            for send in (
                lambda: v.send("two", client_msg_id="v-2"),
                lambda: ann.send(v.chat_id, "reply"),
            ):
                with pytest.raises(EngineError) as err:
                    await send()
                assert err.value.code == "store_unavailable"
            assert not of_type(await drain(ann), ChatMessage)
            assert not of_type(await drain(v), ChatMessage)
            check_invariants(await e.inspect())  # the engine is still there
            fault.on = False
            assert await v.send("two", client_msg_id="v-2") == before + 1
            assert await v.send("two", client_msg_id="v-2") == before + 1
            lines = await v.history()
        assert fault.failed == 2
        assert [x.text for x in lines if x.kind == "message"] == ["one", "two"]
        async with crashing(db_path) as (e, handles):
            again = await handles.enter_async_context(e.resume_chat(v.chat_id))
            assert await again.history() == lines

    async def test_router_change_refused_but_kept_and_written_later(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """An accept whose record cannot be written is answered store_unavailable; the decision
        stands, a repeated accept says so, and the record is written once the store is back."""
        fault = Fault(monkeypatch, engine.store.journal, "write_batch")
        async with crashing(db_path) as (e, handles):
            ann = await handles.enter_async_context(e.connect_agent("ann"))
            await ann.set_status("online")
            v = await handles.enter_async_context(
                e.open_chat(department="sales", question="q", visitor=Visitor(name="V"))
            )
            offer = await offer_for(ann, v.chat_id)
            fault.on = True
            with pytest.raises(EngineError) as err:
                await ann.accept(offer.offer_id)
            assert err.value.code == "store_unavailable"
            with pytest.raises(EngineError) as err:
                await ann.accept(offer.offer_id)  # still not durable: still refused
            assert err.value.code == "store_unavailable"
            view = await e.inspect()  # asks that change nothing are answered as usual
            assert view.chats[v.chat_id].owner == "ann"
            assert of_type(await drain(ann), ChatAssigned)
            fault.on = False
            assert await ann.accept(offer.offer_id) == v.chat_id
            await trio.sleep(2)  # the retry timer has written everything by now
            await settle()
        async with crashing(db_path) as (e, _):
            view = await e.inspect()
            assert (view.chats[v.chat_id].state, view.chats[v.chat_id].owner) == ("active", "ann")

    async def test_retry_after_store_is_back_without_new_requests(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """Records whose write failed are written again by a timer, with no request to carry
        them."""
        fault = Fault(monkeypatch, engine.store.journal, "write_batch")
        async with crashing(db_path) as (e, handles):
            ann = await handles.enter_async_context(e.connect_agent("ann"))
            await ann.set_status("online")
            v = await handles.enter_async_context(
                e.open_chat(department="sales", question="q", visitor=Visitor(name="V"))
            )
            offer = await offer_for(ann, v.chat_id)
            fault.on = True
            with pytest.raises(EngineError):
                await ann.accept(offer.offer_id)
            await trio.sleep(5)
            failures = fault.failed
            assert failures >= 3  # retried all along
            fault.on = False
            await trio.sleep(2)
            await settle()
            assert fault.failed == failures
        async with crashing(db_path) as (e, _):
            assert (await e.inspect()).chats[v.chat_id].owner == "ann"

    @pytest.mark.parametrize(("code", "retried"), [("lease_lost", False), ("store_failed", True)])
    async def test_a_write_refused_for_good_is_not_retried(
        self,
        db_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        autojump_clock: MockClock,
        code: str,
        retried: bool,
    ) -> None:
        """A refusal that no retry can change (``lease_lost``: another node holds the routing
        lease) is answered store_unavailable and not written again every second; a failure
        (``store_failed``) is retried until it succeeds."""
        written: list[object] = []
        original = engine.store.journal.write_batch

        def counting(conn: Any, batch: Any) -> None:
            written.append(batch)
            original(conn, batch)

        monkeypatch.setattr(engine.store.journal, "write_batch", counting)
        async with crashing(db_path) as (e, handles):
            ann = await handles.enter_async_context(e.connect_agent("ann"))
            await ann.set_status("online")

            def refuse(conn: object) -> None:
                raise StoreError("refused", code=code)

            with monkeypatch.context() as patch:
                patch.setattr(e.store, "before_commit", refuse)
                with pytest.raises(EngineError) as err:
                    await ann.set_status("offline")
                assert err.value.code == "store_unavailable"
                attempts = len(written)
                await trio.sleep(5)
                assert (len(written) > attempts) is retried
            await trio.sleep(2)
            await settle()
        async with crashing(db_path) as (e, _):
            assert e.agent_record("ann") is not None
            status = (await e.inspect()).agents["ann"].status
            assert status == ("offline" if retried else "online")

    async def test_chat_that_cannot_be_journaled_is_refused_and_leaves_nothing(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """open_chat fails with store_unavailable; the chat, which nobody holds, is dropped: no
        ticket is written for a request the visitor was told failed."""
        fault = Fault(monkeypatch, engine.store.journal, "write_batch")
        async with crashing(db_path) as (e, handles):
            ann = await handles.enter_async_context(e.connect_agent("ann"))
            await ann.set_status("online")
            fault.on = True
            with pytest.raises(EngineError) as err:
                async with e.open_chat(department="sales", question="q", visitor=Visitor(name="V")):
                    pass  # pragma: no cover
            assert err.value.code == "store_unavailable"
            with pytest.raises(EngineError) as err:
                await ann.set_status("offline")
            assert err.value.code == "store_unavailable"
            fault.on = False
            await trio.sleep(2)
            await settle()
            assert (await e.inspect()).chats == {}
        assert await all_tickets(db_path) == {}

    async def test_nothing_acknowledged_is_lost(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """With every third line write and every fourth router write failing, clients that
        resend until acknowledged end with every message exactly once, across a crash too."""
        lines = Fault(monkeypatch, engine.store.journal, "append_entries", every=3)
        router = Fault(monkeypatch, engine.store.journal, "write_batch", every=4)
        acked: dict[str, list[tuple[int, str]]] = {}
        async with crashing(db_path) as (e, handles):
            ann = await handles.enter_async_context(e.connect_agent("ann"))
            await until_acked(partial(ann.set_status, "online"))
            chats = []
            for n in range(3):
                opening = partial(
                    e.open_chat, department="sales", question=f"q{n}", visitor=Visitor(name="V")
                )
                v = await until_acked(partial(enter, handles, opening))
                offer = await offer_for(ann, v.chat_id)
                await until_acked(partial(ann.accept, offer.offer_id))
                chats.append(v)
                acked[v.chat_id] = []

            async def talk(v: VisitorChat, who: str) -> None:
                for i in range(15):
                    text, cid = f"{who} {i}", f"{who}-{v.chat_id}-{i}"
                    if who == "visitor":
                        send = partial(v.send, text, client_msg_id=cid)
                    else:
                        send = partial(ann.send, v.chat_id, text, client_msg_id=cid)
                    acked[v.chat_id].append((await until_acked(send), text))

            async with trio.open_nursery() as nursery:
                for v in chats:
                    nursery.start_soon(talk, v, "visitor")
                    nursery.start_soon(talk, v, "ann")
            await settle()
        assert lines.failed > 0
        assert router.failed > 0
        async with open_engine(CONFIG, db=db_path, synchronous="NORMAL"):
            pass  # restore, then end every chat
        tickets = await all_tickets(db_path)
        for chat_id, sent in acked.items():
            (ticket,) = tickets[chat_id]
            stored = [(x.seq, x.text) for x in ticket.entries if x.kind == "message"]
            assert stored == sorted(sent), "an acknowledged message is missing or repeated"
            assert [x.seq for x in ticket.entries] == list(range(1, len(ticket.entries) + 1))
        assert await integrity(db_path) == [("ok",)]


async def enter(stack: AsyncExitStack, make: Callable[[], AbstractAsyncContextManager[T]]) -> T:
    """Enter a fresh context made by `make` on `stack` (one per attempt)."""
    return await stack.enter_async_context(make())


async def until_acked(request: Callable[[], Awaitable[T]]) -> T:
    """Repeat a request the store refused until it is acknowledged (as a client would)."""
    for _ in range(20):
        try:
            return await request()
        except EngineError as exc:
            if exc.code != "store_unavailable":
                raise
    raise AssertionError("never acknowledged")


class TestCrashedActors:
    async def test_closing_chat_whose_ticket_failed_is_ticketed_at_restart(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """A chat ended while tickets cannot be written is closing in the journal; the next start
        writes its ticket, once."""
        fault = Fault(monkeypatch, engine.store.queries, "insert_ticket")
        async with crashing(db_path) as (e, handles):
            ann, v = await active_chat(e, handles)
            await v.send("please end it")
            fault.on = True
            with trio.move_on_after(1):
                await ann.end_chat(v.chat_id)  # the session is retrying the ticket
            assert fault.failed >= 1
        fault.on = False
        async with crashing(db_path) as (e, _):
            await settle()
            assert (await e.inspect()).chats == {}
        async with crashing(db_path):
            pass
        tickets = await all_tickets(db_path)
        (ticket,) = tickets[v.chat_id]
        assert (ticket.kind, ticket.end_reason.value) == (TicketKind.TRANSCRIPT, "agent_ended")
        assert [x.kind for x in ticket.entries][-2:] == ["message", "ended"]

    async def test_crashed_session_is_a_failed_ticket_and_others_go_on(
        self, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """A session that crashes leaves its chat as one FAILED ticket with what it had; the
        other chats are untouched, and the failed one does not come back at a restart.

        The bug is a frontend's: a sink (`AgentConnection.attach`) that raises, which its contract
        forbids, when the session fans the line "boom" out to it."""
        async with crashing(db_path) as (e, handles):
            ann, doomed = await active_chat(e, handles)
            broken = await handles.enter_async_context(e.connect_agent("ann"))
            broken.attach(BrokenSink())
            await settle()
            other = await handles.enter_async_context(
                e.open_chat(department="sales", question="q", visitor=Visitor(name="W"))
            )
            await ann.accept((await offer_for(ann, other.chat_id)).offer_id)
            await doomed.send("before")
            with pytest.raises(EngineError):
                await doomed.send("boom")
            await settle()
            assert await other.send("still fine") > 0
            view = await e.inspect()
            assert set(view.chats) == {other.chat_id}
            assert view.agents["ann"].chats == (other.chat_id,)
        tickets = await all_tickets(db_path)
        (failed,) = tickets[doomed.chat_id]
        assert (failed.kind, failed.end_reason.value, failed.owner) == (
            TicketKind.FAILED,
            "crashed",
            "ann",
        )
        assert "before" in [x.text for x in failed.entries]
        async with crashing(db_path) as (e, _):
            assert set((await e.inspect()).chats) == {other.chat_id}
        assert list(await all_tickets(db_path)) == [doomed.chat_id]
