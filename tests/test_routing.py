"""Routing: offers, accepts, declines, queues and missed chats."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from engine import (
    ChatAssigned,
    ChatEnded,
    ChatMessage,
    Engine,
    EngineError,
    Offer,
    OfferWithdrawn,
    Queued,
    SystemEvent,
    TicketKind,
    Visitor,
    open_store,
)

from .helpers import check_invariants, drain, of_type, offer_for, settle

VISITOR = Visitor(
    name="Vera", email="vera@example.com", browser="Firefox", os="Linux", location="Oslo"
)


class TestBroadcast:
    async def test_first_accept_wins(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Every eligible agent gets the offer; the first accept wins and the others are told."""
        async with engine.connect_agent("ann") as ann, engine.connect_agent("bob") as bob:
            await ann.set_status("online")
            await bob.set_status("online")
            async with engine.open_chat(
                department="sales", question="Price?", visitor=VISITOR
            ) as v:
                offer_a = await offer_for(ann, v.chat_id)
                offer_b = await offer_for(bob, v.chat_id)
                assert offer_a.offer_id == offer_b.offer_id
                assert offer_a.ringtone is True
                assert v.chat_id == await bob.accept(offer_b.offer_id)
                with pytest.raises(EngineError) as err:
                    await ann.accept(offer_a.offer_id)
                assert err.value.code == "offer_taken"
                withdrawn = of_type(await drain(ann), OfferWithdrawn)
                assert [w.reason for w in withdrawn] == ["taken"]
                assert of_type(await drain(bob), ChatAssigned)[0].chat_id == v.chat_id
                assert 2 == await v.send("hello")  # the answer stands for the visitor's own line
                await bob.send(v.chat_id, "hi Vera")
                lines = [e for e in await drain(v) if isinstance(e, ChatMessage | SystemEvent)]
                assert [(type(e).__name__, getattr(e, "text", "")) for e in lines] == [
                    ("SystemEvent", ""),
                    ("ChatMessage", "hi Vera"),
                ]
                assert [e.seq for e in lines] == [1, 3]
                check_invariants(await engine.inspect())
                await bob.end_chat(v.chat_id)
                ended = of_type(await drain(v), ChatEnded)
                assert ended
                assert ended[0].ticket_id is not None
            ticket = await engine.ticket(ended[0].ticket_id)
            assert ticket.kind is TicketKind.TRANSCRIPT
            assert [e.text for e in ticket.entries if e.kind == "message"] == ["hello", "hi Vera"]
            assert ticket.owner == "bob"
            assert ticket.visitor == VISITOR

    async def test_nobody_online_is_missed(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A chat with no online agent becomes a missed-chat ticket at once."""
        async with engine.open_chat(department="sales", question="Anyone?", visitor=VISITOR) as v:
            ended = of_type(await drain(v), ChatEnded)
            with pytest.raises(EngineError) as err:
                await v.send("hello?")
            assert err.value.code == "chat_ended"
        assert ended[0].reason == "no_agent_online"
        missed = await engine.missed_chats()
        assert [(t.chat_id, t.question, t.visitor) for t in missed] == [
            (v.chat_id, "Anyone?", VISITOR)
        ]

    async def test_offer_window_expiry(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An offer nobody accepts within the window makes a missed chat and is withdrawn."""
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with engine.open_chat(department="sales", question="Q", visitor=VISITOR) as v:
                offer = await offer_for(ann)
                await trio.sleep(31)
                await settle()
                assert of_type(await drain(v), ChatEnded)[0].reason == "offer_timeout"
                with pytest.raises(EngineError) as err:
                    await ann.accept(offer.offer_id)
                assert err.value.code == "stale_offer"

    async def test_all_declined(self, engine: Engine, autojump_clock: MockClock) -> None:
        """When every agent offered a broadcast chat declines it, the chat is missed."""
        async with engine.connect_agent("ann") as ann, engine.connect_agent("bob") as bob:
            await ann.set_status("online")
            await bob.set_status("online")
            async with engine.open_chat(department="sales", question="Q", visitor=VISITOR) as v:
                offer = await offer_for(ann)
                await ann.decline(offer.offer_id)
                await settle()
                assert not of_type(await drain(v), ChatEnded)
                with pytest.raises(EngineError) as err:
                    await ann.accept(offer.offer_id)
                assert err.value.code == "stale_offer"
                await bob.decline(offer.offer_id)
                assert of_type(await drain(v), ChatEnded)[0].reason == "all_declined"

    async def test_foreign_offer_refused(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An agent cannot accept an offer made to someone else, nor a made-up one."""
        async with engine.connect_agent("ann") as ann, engine.connect_agent("cy") as cy:
            await ann.set_status("online")
            await cy.set_status("online")
            async with engine.open_chat(department="sales", question="Q", visitor=VISITOR):
                offer = await offer_for(ann)
                with pytest.raises(EngineError) as err:
                    await cy.accept(offer.offer_id)
                assert err.value.code == "not_your_offer"
                with pytest.raises(EngineError) as err:
                    await cy.accept("forged")
                assert err.value.code == "not_found"
                view = await engine.inspect()
                assert view.agents["cy"].load == 0


class TestAssigned:
    async def test_least_loaded_then_next_after_decline(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Assigned routing offers one agent at a time, least loaded first, next after a decline."""
        async with engine.connect_agent("bob") as bob, engine.connect_agent("cy") as cy:
            await bob.set_status("online")
            await cy.set_status("online")
            async with engine.open_chat(department="support", question="Q1", visitor=VISITOR) as v1:
                view = await engine.inspect()
                offered = view.chats[v1.chat_id].offer_agents
                assert len(offered) == 1
                holder, other = (bob, cy) if offered == ("bob",) else (cy, bob)
                offer = await offer_for(holder, v1.chat_id)
                await holder.decline(offer.offer_id)
                await settle()
                assert (await engine.inspect()).chats[v1.chat_id].offer_agents == (other.agent_id,)
                second = await offer_for(other, v1.chat_id)
                assert second.offer_id != offer.offer_id
                await other.accept(second.offer_id)
                assert (await engine.inspect()).chats[v1.chat_id].owner == other.agent_id

    async def test_offer_window_moves_on_then_missed(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """After each offer window the next agent is tried; when none is left the chat is missed."""
        async with engine.connect_agent("bob") as bob, engine.connect_agent("cy") as cy:
            await bob.set_status("online")
            await cy.set_status("online")
            async with engine.open_chat(department="support", question="Q", visitor=VISITOR) as v:
                await settle()
                owners = [(await engine.inspect()).chats[v.chat_id].offer_agents]
                await trio.sleep(21)
                await settle()
                owners.append((await engine.inspect()).chats[v.chat_id].offer_agents)
                assert sorted(o[0] for o in owners) == ["bob", "cy"]
                await trio.sleep(21)
                assert of_type(await drain(v), ChatEnded)[0].reason == "offer_timeout"


class TestQueue:
    async def test_queue_positions_and_dequeue(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """With every agent full, chats wait in order, are told their place, then are offered."""
        async with engine.connect_agent("cy") as cy:
            await cy.set_status("online")
            async with engine.open_chat(department="support", question="1", visitor=VISITOR) as v1:
                await cy.accept((await offer_for(cy)).offer_id)
                async with (
                    engine.open_chat(department="support", question="2", visitor=VISITOR) as v2,
                    engine.open_chat(department="support", question="3", visitor=VISITOR) as v3,
                ):
                    assert [q.position for q in of_type(await drain(v2), Queued)] == [1]
                    assert [q.position for q in of_type(await drain(v3), Queued)] == [2]
                    await cy.end_chat(v1.chat_id)
                    offer = await offer_for(cy, v2.chat_id)
                    assert offer.question == "2"
                    assert [q.position for q in of_type(await drain(v3), Queued)] == [1]
                    check_invariants(await engine.inspect())

    async def test_queue_timeout_and_limit(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A full queue turns new chats away; a chat waiting past the queue timeout is missed."""
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            stack = contextlib.AsyncExitStack()
            handles = [
                await stack.enter_async_context(
                    engine.open_chat(department="sales", question=str(i), visitor=VISITOR)
                )
                for i in range(6)
            ]
            chats = [h.chat_id for h in handles]
            await settle()
            view = await engine.inspect()
            assert len(view.agents["ann"].offers) == 2  # capacity 2, both reserved
            assert list(view.queues["sales"]) == chats[2:5]  # queue limit 3
            offers = of_type(await drain(ann), Offer)
            assert sorted(o.chat_id for o in offers) == sorted(chats[:2])
            for offer in offers:
                await ann.accept(offer.offer_id)
            assert of_type(await drain(handles[5]), ChatEnded)[0].reason == "queue_full"
            await handles[4].send("still waiting")
            await trio.sleep(121)
            await settle()
            for h in handles[2:5]:
                assert of_type(await drain(h), ChatEnded)[0].reason == "queue_timeout"
            await stack.aclose()
        missed = {t.chat_id: t for t in await engine.missed_chats(limit=50)}
        assert set(missed) >= set(chats[2:])
        assert [e.text for e in missed[chats[4]].entries if e.kind == "message"] == [
            "still waiting"
        ]


class TestPresence:
    async def test_offline_and_other_department_get_nothing(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An offline agent, or one of another department, receives no offers."""
        async with engine.connect_agent("ann") as ann, engine.connect_agent("cy") as cy:
            await cy.set_status("online")
            async with engine.open_chat(department="sales", question="Q", visitor=VISITOR) as v:
                assert of_type(await drain(v), ChatEnded)[0].reason == "no_agent_online"
            assert not [e for e in await drain(ann) if type(e).__name__ == "Offer"]
            assert not [e for e in await drain(cy) if type(e).__name__ == "Offer"]

    async def test_chat_off_refuses_online_and_misses_chats(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """While a department's chat is off its agents cannot go online and its chats are missed."""
        async with engine.connect_agent("dee") as dee:
            with pytest.raises(EngineError) as err:
                await dee.set_status("online")
            assert err.value.code == "chat_off"
            async with engine.open_chat(department="closed", question="Q", visitor=VISITOR) as v:
                assert of_type(await drain(v), ChatEnded)[0].reason == "chat_off"

    async def test_status_is_stored_at_once(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Status and ringtone are in the database as soon as the call returns."""
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            await ann.set_ringtone(False)
            stored = {a.id: a for a in await engine.store.agents()}["ann"]
            assert (stored.status.value, stored.ringtone) == ("online", False)


class TestViews:
    async def test_single_chat_and_agent_views(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """One chat's or one agent's view agrees with the whole picture; unknown ids give None."""
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with engine.open_chat(department="sales", question="Q", visitor=VISITOR) as v:
                await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
                whole = await engine.inspect()
                assert await engine.chat_view(v.chat_id) == whole.chats[v.chat_id]
                assert await engine.agent_view("ann") == whole.agents["ann"]
                assert await engine.chat_view("nope") is None
                assert await engine.agent_view("nobody") is None


class TestTicketsOnDisk:
    async def test_ticket_from_reopened_file_equals_the_chat(
        self, engine: Engine, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """The ticket read back from a reopened database holds every line the chat showed."""
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with engine.open_chat(department="sales", question="Q", visitor=VISITOR) as v:
                await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
                await v.send("one", client_msg_id="c1")
                await ann.send(v.chat_id, "two")
                await v.send("three")
                seen = {  # each writer's own lines are answered, not echoed: the two views together
                    e.seq: e
                    for e in [*await drain(v), *await drain(ann)]
                    if isinstance(e, ChatMessage | SystemEvent)
                }
                shown = [seen[seq] for seq in sorted(seen)]
                ticket_id = await ann.end_chat(v.chat_id)
        async with open_store(db_path) as store:
            ticket = await store.ticket_for_chat(v.chat_id)
        assert ticket.id == ticket_id
        assert (ticket.question, ticket.visitor, ticket.owner) == ("Q", VISITOR, "ann")
        lines = [(e.seq, e.kind, e.author, e.text) for e in ticket.entries]
        assert lines[: len(shown)] == [
            (e.seq, "message", e.author, e.text)
            if isinstance(e, ChatMessage)
            else (e.seq, e.event, e.agent or "system", e.detail)
            for e in shown
        ]
        assert lines[-1][1] == "ended"
        assert ticket.entries[1].client_msg_id == "c1"


class TestSecondConnection:
    async def test_a_new_tab_sees_the_open_offers(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent's second connection is shown the offers already open to it, once."""
        async with engine.connect_agent("ann") as first:
            await first.set_status("online")
            async with engine.open_chat(department="sales", question="Q", visitor=VISITOR) as v:
                offer = await offer_for(first, v.chat_id)
                async with engine.connect_agent("ann") as second:
                    shown = [o for o in of_type(await drain(second), Offer)]
                    assert [o.offer_id for o in shown] == [offer.offer_id]
                    assert 0 < shown[0].expires_in <= 30
                    assert not of_type(await drain(first), Offer)  # no repeat in the first tab
                    assert await second.accept(offer.offer_id) == v.chat_id
