"""Routing: offers, accepts, declines, queues and missed chats."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from engine import (
    ChatAssigned,
    ChatEnded,
    ChatMessage,
    EngineError,
    Offer,
    OfferWithdrawn,
    Queued,
    SystemEvent,
    TicketKind,
    Visitor,
    open_store,
)

from .desk import Desk, of_type

VISITOR = Visitor(
    name="Vera", email="vera@example.com", browser="Firefox", os="Linux", location="Oslo"
)


class TestBroadcast:
    async def test_first_accept_wins(self, desk: Desk, autojump_clock: MockClock) -> None:
        """Every eligible agent gets the offer; the first accept wins and the others are told."""
        ann, bob = await desk.sign_in("ann", "bob")
        chat = await desk.open_chat("sales", "Price?", VISITOR)
        offer_a = await desk.offer("ann", chat)
        offer_b = await desk.offer("bob", chat)
        assert offer_a.offer_id == offer_b.offer_id
        assert offer_a.ringtone is True
        assert chat == await desk.accept("bob", chat)
        with pytest.raises(EngineError) as err:
            await ann.accept(offer_a.offer_id)
        assert err.value.code == "offer_taken"
        assert [w.reason for w in of_type(await desk.events("ann"), OfferWithdrawn)] == ["taken"]
        assert of_type(await desk.events("bob"), ChatAssigned)[0].chat_id == chat
        # the answer to a send stands for the visitor's own line
        assert 2 == await desk.visitor(chat).send("hello")
        await bob.send(chat, "hi Vera")
        lines = [e for e in await desk.events(chat) if isinstance(e, ChatMessage | SystemEvent)]
        assert [(type(e).__name__, getattr(e, "text", "")) for e in lines] == [
            ("SystemEvent", ""),
            ("ChatMessage", "hi Vera"),
        ]
        assert [e.seq for e in lines] == [1, 3]
        await desk.view()
        await desk.end("bob", chat)
        ended = of_type(await desk.events(chat), ChatEnded)
        assert ended
        assert ended[0].ticket_id is not None
        ticket = await desk.engine.ticket(ended[0].ticket_id)
        assert ticket.kind is TicketKind.TRANSCRIPT
        assert [e.text for e in ticket.entries if e.kind == "message"] == ["hello", "hi Vera"]
        assert ticket.owner == "bob"
        assert ticket.visitor == VISITOR

    async def test_nobody_online_is_missed(self, desk: Desk, autojump_clock: MockClock) -> None:
        """A chat with no online agent becomes a missed-chat ticket at once."""
        chat = await desk.open_chat("sales", "Anyone?", VISITOR)
        ended = of_type(await desk.events(chat), ChatEnded)
        with pytest.raises(EngineError) as err:
            await desk.visitor(chat).send("hello?")
        assert err.value.code == "chat_ended"
        assert ended[0].reason == "no_agent_online"
        missed = await desk.engine.missed_chats()
        assert [(t.chat_id, t.question, t.visitor) for t in missed] == [(chat, "Anyone?", VISITOR)]

    async def test_offer_window_expiry(self, desk: Desk, autojump_clock: MockClock) -> None:
        """An offer nobody accepts within the window makes a missed chat and is withdrawn."""
        (ann,) = await desk.sign_in("ann")
        chat = await desk.open_chat()
        offer = await desk.offer("ann", chat)
        await trio.sleep(31)
        assert of_type(await desk.events(chat), ChatEnded)[0].reason == "offer_timeout"
        with pytest.raises(EngineError) as err:
            await ann.accept(offer.offer_id)
        assert err.value.code == "stale_offer"

    async def test_all_declined(self, desk: Desk, autojump_clock: MockClock) -> None:
        """When every agent offered a broadcast chat declines it, the chat is missed."""
        ann, _ = await desk.sign_in("ann", "bob")
        chat = await desk.open_chat()
        offer = await desk.offer("ann", chat)
        await desk.decline("ann", chat)
        assert not of_type(await desk.events(chat), ChatEnded)
        with pytest.raises(EngineError) as err:
            await ann.accept(offer.offer_id)
        assert err.value.code == "stale_offer"
        await desk.decline("bob", chat)
        assert of_type(await desk.events(chat), ChatEnded)[0].reason == "all_declined"

    async def test_foreign_offer_refused(self, desk: Desk, autojump_clock: MockClock) -> None:
        """An agent cannot accept an offer made to someone else, nor a made-up one."""
        _, cy = await desk.sign_in("ann", "cy")
        chat = await desk.open_chat()
        offer = await desk.offer("ann", chat)
        with pytest.raises(EngineError) as err:
            await cy.accept(offer.offer_id)
        assert err.value.code == "not_your_offer"
        with pytest.raises(EngineError) as err:
            await cy.accept("forged")
        assert err.value.code == "not_found"
        assert (await desk.view()).agents["cy"].load == 0


class TestAssigned:
    async def test_least_loaded_then_next_after_decline(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """Assigned routing offers one agent at a time, least loaded first, next after a decline."""
        await desk.sign_in("bob", "cy")
        chat = await desk.open_chat("support", "Q1")
        offered = (await desk.view()).chats[chat].offer_agents
        assert len(offered) == 1
        holder, other = ("bob", "cy") if offered == ("bob",) else ("cy", "bob")
        first = await desk.offer(holder, chat)
        await desk.decline(holder, chat)
        assert (await desk.view()).chats[chat].offer_agents == (other,)
        second = await desk.offer(other, chat)
        assert second.offer_id != first.offer_id
        await desk.accept(other, chat)
        assert (await desk.view()).chats[chat].owner == other

    async def test_offer_window_moves_on_then_missed(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """After each offer window the next agent is tried; when none is left the chat is missed."""
        await desk.sign_in("bob", "cy")
        chat = await desk.open_chat("support", "Q")
        owners = [(await desk.view()).chats[chat].offer_agents]
        await trio.sleep(21)
        owners.append((await desk.view()).chats[chat].offer_agents)
        assert sorted(o[0] for o in owners) == ["bob", "cy"]
        await trio.sleep(21)
        assert of_type(await desk.events(chat), ChatEnded)[0].reason == "offer_timeout"


class TestQueue:
    async def test_queue_positions_and_dequeue(self, desk: Desk, autojump_clock: MockClock) -> None:
        """With every agent full, chats wait in order, are told their place, then are offered."""
        await desk.sign_in("cy")
        first = await desk.chat("cy", "support", "1")
        second = await desk.open_chat("support", "2")
        third = await desk.open_chat("support", "3")
        assert [q.position for q in of_type(await desk.events(second), Queued)] == [1]
        assert [q.position for q in of_type(await desk.events(third), Queued)] == [2]
        await desk.end("cy", first)
        assert (await desk.offer("cy", second)).question == "2"
        assert [q.position for q in of_type(await desk.events(third), Queued)] == [1]
        await desk.view()

    async def test_queue_timeout_and_limit(self, desk: Desk, autojump_clock: MockClock) -> None:
        """A full queue turns new chats away; a chat waiting past the queue timeout is missed."""
        (ann,) = await desk.sign_in("ann")
        chats = [await desk.open_chat("sales", str(i)) for i in range(6)]
        view = await desk.view()
        assert len(view.agents["ann"].offers) == 2  # capacity 2, both reserved
        assert list(view.queues["sales"]) == chats[2:5]  # queue limit 3
        offers = of_type(await desk.events("ann"), Offer)
        assert sorted(o.chat_id for o in offers) == sorted(chats[:2])
        for offer in offers:
            await ann.accept(offer.offer_id)
        assert of_type(await desk.events(chats[5]), ChatEnded)[0].reason == "queue_full"
        await desk.visitor(chats[4]).send("still waiting")
        await trio.sleep(121)
        for chat in chats[2:5]:
            assert of_type(await desk.events(chat), ChatEnded)[0].reason == "queue_timeout"
        for chat in chats:
            await desk.close_visitor(chat)
        missed = {t.chat_id: t for t in await desk.engine.missed_chats(limit=50)}
        assert set(missed) >= set(chats[2:])
        assert [e.text for e in missed[chats[4]].entries if e.kind == "message"] == [
            "still waiting"
        ]


class TestPresence:
    async def test_offline_and_other_department_get_nothing(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """An offline agent, or one of another department, receives no offers."""
        await desk.sign_in("ann", status=None)
        await desk.sign_in("cy")
        chat = await desk.open_chat()
        assert of_type(await desk.events(chat), ChatEnded)[0].reason == "no_agent_online"
        await desk.close_visitor(chat)
        assert not of_type(await desk.events("ann"), Offer)
        assert not of_type(await desk.events("cy"), Offer)

    async def test_chat_off_refuses_online_and_misses_chats(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """While a department's chat is off its agents cannot go online and its chats are missed."""
        with pytest.raises(EngineError) as err:
            await desk.sign_in("dee")
        assert err.value.code == "chat_off"
        chat = await desk.open_chat("closed")
        assert of_type(await desk.events(chat), ChatEnded)[0].reason == "chat_off"

    async def test_status_is_stored_at_once(self, desk: Desk, autojump_clock: MockClock) -> None:
        """Status and ringtone are in the database as soon as the call returns."""
        (ann,) = await desk.sign_in("ann")
        await ann.set_ringtone(False)
        stored = {a.id: a for a in await desk.engine.store.agents()}["ann"]
        assert (stored.status.value, stored.ringtone) == ("online", False)


class TestViews:
    async def test_single_chat_and_agent_views(self, desk: Desk, autojump_clock: MockClock) -> None:
        """One chat's or one agent's view agrees with the whole picture; unknown ids give None."""
        await desk.sign_in("ann")
        chat = await desk.chat("ann")
        whole = await desk.view()
        assert await desk.engine.chat_view(chat) == whole.chats[chat]
        assert await desk.engine.agent_view("ann") == whole.agents["ann"]
        assert await desk.engine.chat_view("nope") is None
        assert await desk.engine.agent_view("nobody") is None


class TestTicketsOnDisk:
    async def test_ticket_from_reopened_file_equals_the_chat(
        self, desk: Desk, db_path: Path, autojump_clock: MockClock
    ) -> None:
        """The ticket read back from a reopened database holds every line the chat showed."""
        (ann,) = await desk.sign_in("ann")
        chat = await desk.chat("ann", "sales", "Q", VISITOR)
        await desk.visitor(chat).send("one", client_msg_id="c1")
        await ann.send(chat, "two")
        await desk.visitor(chat).send("three")
        seen = {  # each writer's own lines are answered, not echoed: the two views together
            e.seq: e
            for e in [*await desk.events(chat), *await desk.events("ann")]
            if isinstance(e, ChatMessage | SystemEvent)
        }
        shown = [seen[seq] for seq in sorted(seen)]
        ticket_id = await desk.end("ann", chat)
        async with open_store(db_path) as store:
            ticket = await store.ticket_for_chat(chat)
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
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """An agent's second connection is shown the offers already open to it, once."""
        await desk.sign_in("ann")
        chat = await desk.open_chat()
        offer = await desk.offer("ann", chat)
        async with desk.engine.connect_agent("ann") as second:
            await trio.testing.wait_all_tasks_blocked()
            shown = of_type(second.pending_events(), Offer)
            assert [o.offer_id for o in shown] == [offer.offer_id]
            assert 0 < shown[0].expires_in <= 30
            assert not of_type(await desk.events("ann"), Offer)  # no repeat in the first tab
            assert await second.accept(offer.offer_id) == chat
