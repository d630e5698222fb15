"""Transfers, invites, endings, visitors leaving and agents disconnecting."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from engine import (
    AgentConnection,
    ChatEnded,
    ChatMessage,
    ChatRemoved,
    Engine,
    EngineConfig,
    EngineError,
    HandoffResult,
    OfferWithdrawn,
    SystemEvent,
    TicketKind,
    Typing,
    Visitor,
    VisitorChat,
    open_engine,
)

from .helpers import check_invariants, drain, of_type, offer_for, settle

VISITOR = Visitor(name="Vera", email="vera@example.com")


@asynccontextmanager
async def chat_with(
    engine: Engine, owner: AgentConnection, department: str = "sales"
) -> AsyncIterator[VisitorChat]:
    """A visitor's chat already accepted by `owner`."""
    async with engine.open_chat(department=department, question="Help", visitor=VISITOR) as v:
        await owner.accept((await offer_for(owner, v.chat_id)).offer_id)
        yield v


@asynccontextmanager
async def agents(engine: Engine, *ids: str) -> AsyncIterator[list[AgentConnection]]:
    """Connect and bring online the named agents."""
    async with contextlib.AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(engine.connect_agent(i)) for i in ids]
        for c in conns:
            await c.set_status("online")
        yield conns


class TestTransfer:
    async def test_to_agent_accepted(self, engine: Engine, autojump_clock: MockClock) -> None:
        """The owner keeps the chat until the target accepts; then it moves, with the note."""
        async with agents(engine, "ann", "bob") as (ann, bob):
            async with chat_with(engine, ann) as v:
                await drain(bob)
                await ann.transfer(v.chat_id, to_agent="bob", note="billing question")
                offer = await offer_for(bob, v.chat_id)
                assert (offer.kind, offer.note, offer.from_agent) == (
                    "transfer",
                    "billing question",
                    "ann",
                )
                view = await engine.inspect()
                assert view.chats[v.chat_id].owner == "ann"  # nothing changes before accept
                assert view.chats[v.chat_id].members == ("ann",)
                await bob.accept(offer.offer_id)
                view = await engine.inspect()
                assert (view.chats[v.chat_id].owner, view.chats[v.chat_id].members) == (
                    "bob",
                    ("bob",),
                )
                told = await drain(ann)
                assert of_type(told, HandoffResult)[-1].outcome == "accepted"
                assert of_type(told, ChatRemoved)[-1].reason == "transferred"
                with pytest.raises(EngineError) as err:
                    await ann.send(v.chat_id, "still here?")
                assert err.value.code == "not_in_chat"
                await bob.send(v.chat_id, "Bob here")
                check_invariants(view)
                await bob.end_chat(v.chat_id)
                ticket_id = of_type(await drain(v), ChatEnded)[0].ticket_id
            ticket = await engine.ticket(ticket_id)
            assert ticket.agents == ("ann", "bob")
            assert [(h.kind, h.to_agent, h.note, h.outcome) for h in ticket.handoffs] == [
                ("transfer", "bob", "billing question", "accepted")
            ]
            assert "transferred" in [e.kind for e in ticket.entries]

    @pytest.mark.parametrize("how", ["decline", "timeout", "cancel"])
    async def test_not_accepted_changes_nothing(
        self, engine: Engine, how: str, autojump_clock: MockClock
    ) -> None:
        """Decline, timeout and cancel leave ownership unchanged and tell the owner why."""
        async with agents(engine, "ann", "bob") as (ann, bob), chat_with(engine, ann) as v:
            await ann.transfer(v.chat_id, to_agent="bob")
            offer = await offer_for(bob, v.chat_id)
            if how == "decline":
                await bob.decline(offer.offer_id)
            elif how == "timeout":
                await trio.sleep(46)
            else:
                await ann.cancel_handoff(v.chat_id)
            await settle()
            expected = {"decline": "declined", "timeout": "timeout", "cancel": "cancelled"}[how]
            assert of_type(await drain(ann), HandoffResult)[-1].outcome == expected
            view = await engine.inspect()
            assert view.chats[v.chat_id].owner == "ann"
            assert view.agents["bob"].load == 0
            if how != "decline":
                assert of_type(await drain(bob), OfferWithdrawn)
            with pytest.raises(EngineError):
                await bob.accept(offer.offer_id)
            await ann.send(v.chat_id, "still mine")

    async def test_to_department_any_agent(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A transfer to a department is offered to its available agents; the first accept wins."""
        async with agents(engine, "ann", "bob", "cy") as (ann, bob, cy):
            async with chat_with(engine, ann) as v:
                await ann.transfer(v.chat_id, to_department="support", note="tech")
                offer_b = await offer_for(bob, v.chat_id)
                offer_c = await offer_for(cy, v.chat_id)
                assert offer_b.offer_id == offer_c.offer_id
                assert offer_b.department == "support"
                await cy.accept(offer_c.offer_id)
                assert (await engine.inspect()).chats[v.chat_id].owner == "cy"
                assert of_type(await drain(bob), OfferWithdrawn)[-1].reason == "taken"

    async def test_to_agent_under_department(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Naming a department and an agent in it offers only that agent; a mismatch is refused."""
        async with agents(engine, "ann", "bob", "cy") as (ann, bob, cy):
            async with chat_with(engine, ann) as v:
                with pytest.raises(EngineError) as err:
                    await ann.transfer(v.chat_id, to_department="sales", to_agent="cy")
                assert err.value.code == "invalid_field"
                await ann.transfer(v.chat_id, to_department="support", to_agent="cy")
                offer = await offer_for(cy, v.chat_id)
                assert not [
                    o for o in of_type(await drain(bob), type(offer)) if o.kind == "transfer"
                ]
                await cy.accept(offer.offer_id)
                assert (await engine.inspect()).chats[v.chat_id].owner == "cy"

    async def test_only_available_targets(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Offline agents cannot be targets; the menu lists only agents with room."""
        async with agents(engine, "ann") as (ann,), chat_with(engine, ann) as v:
            with pytest.raises(EngineError) as err:
                await ann.transfer(v.chat_id, to_agent="bob")
            assert err.value.code == "agent_unavailable"
            menu = await ann.available_agents("sales")
            assert [a.id for a in menu] == ["ann"]
            assert menu[0].load == 1

    async def test_one_handoff_at_a_time_and_only_owner(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A second handoff while one waits is refused, and so is a transfer by a non-owner."""
        async with agents(engine, "ann", "bob", "cy") as (ann, _, cy):
            async with chat_with(engine, ann) as v:
                await ann.transfer(v.chat_id, to_agent="bob")
                with pytest.raises(EngineError) as err:
                    await ann.invite(v.chat_id, to_agent="bob")
                assert err.value.code == "handoff_pending"
                with pytest.raises(EngineError) as err:
                    await cy.transfer(v.chat_id, to_agent="bob")
                assert err.value.code == "not_in_chat"


class TestInvite:
    async def test_accept_joins_and_inviter_stays(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An invitee who accepts joins the chat; the inviter keeps it; both see every line
        (the writer of a line through the answer to its send)."""
        async with agents(engine, "ann", "bob") as (ann, bob), chat_with(engine, ann) as v:
            await ann.invite(v.chat_id, to_agent="bob", note="second opinion")
            offer = await offer_for(bob, v.chat_id)
            assert offer.kind == "invite"
            await bob.accept(offer.offer_id)
            view = await engine.inspect()
            assert view.chats[v.chat_id].owner == "ann"
            assert view.chats[v.chat_id].members == ("ann", "bob")
            await v.send("thanks both")
            await bob.send(v.chat_id, "hello from Bob")
            for who, expected in ((ann, ["thanks both", "hello from Bob"]), (bob, ["thanks both"])):
                texts = [getattr(e, "text", None) for e in await drain(who)]
                assert expected == [t for t in texts if t in ("thanks both", "hello from Bob")]
            with pytest.raises(EngineError) as err:
                await bob.end_chat(v.chat_id)
            assert err.value.code == "not_owner"
            await bob.leave_chat(v.chat_id)
            assert (await engine.inspect()).chats[v.chat_id].members == ("ann",)

    @pytest.mark.parametrize("how", ["decline", "timeout", "cancel"])
    async def test_not_accepted(self, engine: Engine, how: str, autojump_clock: MockClock) -> None:
        """Decline, timeout and cancel of an invite are told back; nobody joins."""
        async with agents(engine, "ann", "bob") as (ann, bob), chat_with(engine, ann) as v:
            await ann.invite(v.chat_id, to_agent="bob")
            offer = await offer_for(bob, v.chat_id)
            if how == "decline":
                await bob.decline(offer.offer_id)
            elif how == "timeout":
                await trio.sleep(46)
            else:
                await ann.cancel_handoff(v.chat_id)
            await settle()
            expected = {"decline": "declined", "timeout": "timeout", "cancel": "cancelled"}[how]
            assert of_type(await drain(ann), HandoffResult)[-1].outcome == expected
            assert (await engine.inspect()).chats[v.chat_id].members == ("ann",)


class TestEnding:
    async def test_delayed_end(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A delayed end closes the chat at its deadline, not before."""
        async with agents(engine, "ann") as (ann,), chat_with(engine, ann) as v:
            await ann.end_chat(v.chat_id, delay=60)
            await trio.sleep(59)
            before = await drain(v)
            assert not of_type(before, ChatEnded)
            assert [e.event for e in of_type(before, SystemEvent)][-1] == "ending"
            await trio.sleep(2)
            ended = of_type(await drain(v), ChatEnded)
            assert ended[0].reason == "agent_ended"
            ticket = await engine.ticket(ended[0].ticket_id)
            assert ticket.accepted_at is not None
            assert 60 <= ticket.ended_at - ticket.accepted_at < 62

    async def test_cancelled_delayed_end(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A cancelled delayed end never fires, and the chat goes on."""
        async with agents(engine, "ann") as (ann,), chat_with(engine, ann) as v:
            await ann.end_chat(v.chat_id, delay=60)
            await trio.sleep(30)
            await ann.cancel_end(v.chat_id)
            await trio.sleep(120)
            await settle()
            events = [e.event for e in of_type(await drain(v), SystemEvent)]
            assert events[-2:] == ["ending", "ending_cancelled"]
            view = await engine.inspect()
            assert view.chats[v.chat_id].state == "active"
            with pytest.raises(EngineError) as err:
                await ann.cancel_end(v.chat_id)
            assert err.value.code == "invalid_state"

    async def test_visitor_leaves_after_grace(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """The visitor leaving ends the chat after the grace period, as a transcript."""
        async with agents(engine, "ann") as (ann,):
            async with chat_with(engine, ann) as v:
                await v.send("bye")
                await v.leave()
                await trio.sleep(14)
                await settle()
                assert (await engine.inspect()).chats[v.chat_id].state == "active"
                await trio.sleep(2)
                await settle()
                assert v.chat_id not in (await engine.inspect()).chats
            ticket = await engine.ticket_for_chat(v.chat_id)
            assert (ticket.kind, ticket.end_reason.value) == (TicketKind.TRANSCRIPT, "visitor_left")

    async def test_visitor_resumes_within_grace(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A visitor who reconnects within the grace keeps the chat and sees what it missed."""
        async with agents(engine, "ann") as (ann,):
            async with chat_with(engine, ann) as v:
                chat_id = v.chat_id
                seq = await v.send("one")
            await ann.send(chat_id, "while you were away")
            await trio.sleep(10)
            async with engine.resume_chat(chat_id, last_seq=seq) as again:
                replay = [getattr(e, "text", "") for e in await drain(again)]
                assert replay == ["while you were away"]
                await trio.sleep(30)
                await settle()
                assert chat_id in (await engine.inspect()).chats


class TestDisconnect:
    async def test_grace_then_requeue_and_reoffer(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent gone past its grace loses its chats to the queue head; they are re-offered."""
        async with engine.connect_agent("ann") as ann:
            bob_connection = engine.connect_agent("bob")
            bob = await bob_connection.__aenter__()
            await bob.set_status("online")
            async with chat_with(engine, bob) as v:
                await bob_connection.__aexit__(None, None, None)
                await trio.sleep(24)
                await settle()
                assert (await engine.inspect()).chats[v.chat_id].owner == "bob"
                await ann.set_status("online")
                await trio.sleep(2)
                offer = await offer_for(ann, v.chat_id)
                await ann.accept(offer.offer_id)
                events = [e.event for e in of_type(await drain(v), SystemEvent)]
                assert "requeued" in events
                assert events[-1] == "joined"
                view = await engine.inspect()
                assert view.chats[v.chat_id].owner == "ann"
                assert view.agents["bob"].load == 0
                check_invariants(view)

    async def test_reconnect_within_grace_keeps_chats(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent that reconnects within its grace keeps its chats and can go on writing."""
        first = engine.connect_agent("bob")
        bob = await first.__aenter__()
        await bob.set_status("online")
        async with chat_with(engine, bob) as v:
            await first.__aexit__(None, None, None)
            await trio.sleep(20)
            async with engine.connect_agent("bob") as again:
                await trio.sleep(30)
                await settle()
                assert (await engine.inspect()).chats[v.chat_id].owner == "bob"
                await again.send(v.chat_id, "back")
                events = [e.event for e in of_type(await drain(v), SystemEvent)]
                assert "requeued" not in events


class TestLongTranscripts:
    async def test_replay_longer_than_the_queue(
        self, config: EngineConfig, tmp_path: Path, autojump_clock: MockClock
    ) -> None:
        """A resume or a newcomer gets a transcript longer than its queue, in order, unkicked."""
        small = dataclasses.replace(config, outbound_size=8)
        async with open_engine(small, db=tmp_path / "h.db") as engine:
            async with agents(engine, "ann", "bob") as (ann, bob):
                async with chat_with(engine, ann) as v:
                    chat_id = v.chat_id
                    for i in range(20):
                        await ann.send(chat_id, f"line {i}")
                        await drain(ann)
                        await drain(v)
                await ann.invite(chat_id, to_agent="bob")
                await bob.accept((await offer_for(bob, chat_id)).offer_id)
                seen = [e for e in await drain(bob) if isinstance(e, ChatMessage)]
                assert [e.text for e in seen] == [f"line {i}" for i in range(20)]
                async with engine.resume_chat(chat_id, last_seq=0) as again:
                    lines = [e for e in await drain(again) if isinstance(e, ChatMessage)]
                    assert [e.text for e in lines] == [f"line {i}" for i in range(20)]
                    await again.send("still here")


class TestCancelByKind:
    async def test_cancel_names_the_kind(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Cancelling an invite leaves a pending transfer alone, and the other way round."""
        async with agents(engine, "ann", "bob") as (ann, _):
            async with chat_with(engine, ann) as v:
                await ann.transfer(v.chat_id, to_agent="bob")
                with pytest.raises(EngineError) as err:
                    await ann.cancel_handoff(v.chat_id, kind="invite")
                assert err.value.code == "no_handoff"
                assert (await engine.chat_view(v.chat_id)).handoff  # type: ignore[union-attr]
                await ann.cancel_handoff(v.chat_id, kind="transfer")
                assert of_type(await drain(ann), HandoffResult)[-1].outcome == "cancelled"


class TestTyping:
    async def test_only_members_type(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A member's typing notice reaches the others; an outsider's is refused."""
        async with agents(engine, "ann", "bob") as (ann, bob):
            async with chat_with(engine, ann) as v:
                await drain(v)
                await ann.typing(v.chat_id, True)
                assert [(t.author, t.on) for t in of_type(await drain(v), Typing)] == [
                    ("ann", True)
                ]
                with pytest.raises(EngineError) as err:
                    await bob.typing(v.chat_id, True)
                assert err.value.code == "not_in_chat"
                assert not of_type(await drain(v), Typing)
