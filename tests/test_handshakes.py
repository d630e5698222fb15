"""Transfers, invites, endings, visitors leaving and agents disconnecting."""

from __future__ import annotations

import dataclasses

import pytest
import trio
from trio.testing import MockClock

from engine import (
    ChatEnded,
    ChatMessage,
    ChatRemoved,
    EngineConfig,
    EngineError,
    HandoffResult,
    OfferWithdrawn,
    SystemEvent,
    TicketKind,
    Typing,
)

from .desk import Desk, of_type, open_desk

OUTCOMES = {"decline": "declined", "timeout": "timeout", "cancel": "cancelled"}


async def not_accepted(desk: Desk, how: str, chat: str) -> None:
    """bob lets the handoff of ``chat`` that ann asked for go: declines it, lets it time out, or
    ann cancels it."""
    if how == "decline":
        await desk.decline("bob", chat)
    elif how == "timeout":
        await trio.sleep(46)
    else:
        await desk.agent("ann").cancel_handoff(chat)


class TestTransfer:
    async def test_to_agent_accepted(self, desk: Desk, autojump_clock: MockClock) -> None:
        """The owner keeps the chat until the target accepts; then it moves, with the note."""
        await desk.sign_in("ann", "bob")
        chat = await desk.chat("ann")
        await desk.transfer("ann", chat, to_agent="bob", note="billing question")
        offer = await desk.offer("bob", chat)
        assert (offer.kind, offer.note, offer.from_agent) == ("transfer", "billing question", "ann")
        view = await desk.view()
        assert view.chats[chat].owner == "ann"  # nothing changes before accept
        assert view.chats[chat].members == ("ann",)
        await desk.accept("bob", chat)
        view = await desk.view()
        assert (view.chats[chat].owner, view.chats[chat].members) == ("bob", ("bob",))
        told = await desk.events("ann")
        assert of_type(told, HandoffResult)[-1].outcome == "accepted"
        assert of_type(told, ChatRemoved)[-1].reason == "transferred"
        with pytest.raises(EngineError) as err:
            await desk.agent("ann").send(chat, "still here?")
        assert err.value.code == "not_in_chat"
        await desk.agent("bob").send(chat, "Bob here")
        await desk.end("bob", chat)
        ticket_id = of_type(await desk.events(chat), ChatEnded)[0].ticket_id
        assert ticket_id is not None
        ticket = await desk.engine.ticket(ticket_id)
        assert ticket.agents == ("ann", "bob")
        assert [(h.kind, h.to_agent, h.note, h.outcome) for h in ticket.handoffs] == [
            ("transfer", "bob", "billing question", "accepted")
        ]
        assert "transferred" in [e.kind for e in ticket.entries]

    @pytest.mark.parametrize("how", ["decline", "timeout", "cancel"])
    async def test_not_accepted_changes_nothing(
        self, desk: Desk, how: str, autojump_clock: MockClock
    ) -> None:
        """Decline, timeout and cancel leave ownership unchanged and tell the owner why."""
        await desk.sign_in("ann", "bob")
        chat = await desk.chat("ann")
        await desk.transfer("ann", chat, to_agent="bob")
        offer = await desk.offer("bob", chat)
        await not_accepted(desk, how, chat)
        assert of_type(await desk.events("ann"), HandoffResult)[-1].outcome == OUTCOMES[how]
        view = await desk.view()
        assert view.chats[chat].owner == "ann"
        assert view.agents["bob"].load == 0
        if how != "decline":
            assert of_type(await desk.events("bob"), OfferWithdrawn)
        with pytest.raises(EngineError):
            await desk.agent("bob").accept(offer.offer_id)
        await desk.agent("ann").send(chat, "still mine")

    async def test_to_department_any_agent(self, desk: Desk, autojump_clock: MockClock) -> None:
        """A transfer to a department is offered to its available agents; the first accept wins."""
        await desk.sign_in("ann", "bob", "cy")
        chat = await desk.chat("ann")
        await desk.transfer("ann", chat, to_department="support", note="tech")
        offer_b = await desk.offer("bob", chat)
        offer_c = await desk.offer("cy", chat)
        assert offer_b.offer_id == offer_c.offer_id
        assert offer_b.department == "support"
        await desk.accept("cy", chat)
        assert (await desk.view()).chats[chat].owner == "cy"
        assert of_type(await desk.events("bob"), OfferWithdrawn)[-1].reason == "taken"

    async def test_to_agent_under_department(self, desk: Desk, autojump_clock: MockClock) -> None:
        """Naming a department and an agent in it offers only that agent; a mismatch is refused."""
        await desk.sign_in("ann", "bob", "cy")
        chat = await desk.chat("ann")
        with pytest.raises(EngineError) as err:
            await desk.transfer("ann", chat, to_department="sales", to_agent="cy")
        assert err.value.code == "invalid_field"
        await desk.transfer("ann", chat, to_department="support", to_agent="cy")
        offer = await desk.offer("cy", chat)
        assert not [
            o for o in of_type(await desk.events("bob"), type(offer)) if o.kind == "transfer"
        ]
        await desk.accept("cy", chat)
        assert (await desk.view()).chats[chat].owner == "cy"

    async def test_only_available_targets(self, desk: Desk, autojump_clock: MockClock) -> None:
        """Offline agents cannot be targets; the menu lists only agents with room."""
        await desk.sign_in("ann")
        chat = await desk.chat("ann")
        with pytest.raises(EngineError) as err:
            await desk.transfer("ann", chat, to_agent="bob")
        assert err.value.code == "agent_unavailable"
        menu = await desk.agent("ann").available_agents("sales")
        assert [a.id for a in menu] == ["ann"]
        assert menu[0].load == 1

    async def test_one_handoff_at_a_time_and_only_owner(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """A second handoff while one waits is refused, and so is a transfer by a non-owner."""
        await desk.sign_in("ann", "bob", "cy")
        chat = await desk.chat("ann")
        await desk.transfer("ann", chat, to_agent="bob")
        with pytest.raises(EngineError) as err:
            await desk.invite("ann", chat, to_agent="bob")
        assert err.value.code == "handoff_pending"
        with pytest.raises(EngineError) as err:
            await desk.transfer("cy", chat, to_agent="bob")
        assert err.value.code == "not_in_chat"


class TestInvite:
    async def test_accept_joins_and_inviter_stays(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """An invitee who accepts joins the chat; the inviter keeps it; both see every line
        (the writer of a line through the answer to its send)."""
        await desk.sign_in("ann", "bob")
        chat = await desk.chat("ann")
        await desk.invite("ann", chat, to_agent="bob", note="second opinion")
        assert (await desk.offer("bob", chat)).kind == "invite"
        await desk.accept("bob", chat)
        view = await desk.view()
        assert view.chats[chat].owner == "ann"
        assert view.chats[chat].members == ("ann", "bob")
        await desk.visitor(chat).send("thanks both")
        await desk.agent("bob").send(chat, "hello from Bob")
        for who, expected in (("ann", ["thanks both", "hello from Bob"]), ("bob", ["thanks both"])):
            texts = [getattr(e, "text", None) for e in await desk.events(who)]
            assert expected == [t for t in texts if t in ("thanks both", "hello from Bob")]
        with pytest.raises(EngineError) as err:
            await desk.end("bob", chat)
        assert err.value.code == "not_owner"
        await desk.agent("bob").leave_chat(chat)
        assert (await desk.view()).chats[chat].members == ("ann",)

    @pytest.mark.parametrize("how", ["decline", "timeout", "cancel"])
    async def test_not_accepted(self, desk: Desk, how: str, autojump_clock: MockClock) -> None:
        """Decline, timeout and cancel of an invite are told back; nobody joins."""
        await desk.sign_in("ann", "bob")
        chat = await desk.chat("ann")
        await desk.invite("ann", chat, to_agent="bob")
        await desk.offer("bob", chat)
        await not_accepted(desk, how, chat)
        assert of_type(await desk.events("ann"), HandoffResult)[-1].outcome == OUTCOMES[how]
        assert (await desk.view()).chats[chat].members == ("ann",)


class TestEnding:
    async def test_delayed_end(self, desk: Desk, autojump_clock: MockClock) -> None:
        """A delayed end closes the chat at its deadline, not before."""
        await desk.sign_in("ann")
        chat = await desk.chat("ann")
        await desk.end("ann", chat, delay=60)
        await trio.sleep(59)
        before = await desk.events(chat)
        assert not of_type(before, ChatEnded)
        assert [e.event for e in of_type(before, SystemEvent)][-1] == "ending"
        await trio.sleep(2)
        ended = of_type(await desk.events(chat), ChatEnded)
        assert ended[0].reason == "agent_ended"
        assert ended[0].ticket_id is not None
        ticket = await desk.engine.ticket(ended[0].ticket_id)
        assert ticket.accepted_at is not None
        assert 60 <= ticket.ended_at - ticket.accepted_at < 62

    async def test_cancelled_delayed_end(self, desk: Desk, autojump_clock: MockClock) -> None:
        """A cancelled delayed end never fires, and the chat goes on."""
        await desk.sign_in("ann")
        chat = await desk.chat("ann")
        await desk.end("ann", chat, delay=60)
        await trio.sleep(30)
        await desk.agent("ann").cancel_end(chat)
        await trio.sleep(120)
        events = [e.event for e in of_type(await desk.events(chat), SystemEvent)]
        assert events[-2:] == ["ending", "ending_cancelled"]
        assert (await desk.view()).chats[chat].state == "active"
        with pytest.raises(EngineError) as err:
            await desk.agent("ann").cancel_end(chat)
        assert err.value.code == "invalid_state"

    async def test_visitor_leaves_after_grace(self, desk: Desk, autojump_clock: MockClock) -> None:
        """The visitor leaving ends the chat after the grace period, as a transcript."""
        await desk.sign_in("ann")
        chat = await desk.chat("ann")
        await desk.visitor(chat).send("bye")
        await desk.visitor(chat).leave()
        await trio.sleep(14)
        assert (await desk.view()).chats[chat].state == "active"
        await trio.sleep(2)
        assert chat not in (await desk.view()).chats
        ticket = await desk.engine.ticket_for_chat(chat)
        assert (ticket.kind, ticket.end_reason.value) == (TicketKind.TRANSCRIPT, "visitor_left")

    async def test_visitor_resumes_within_grace(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """A visitor who reconnects within the grace keeps the chat and sees what it missed."""
        await desk.sign_in("ann")
        chat = await desk.chat("ann")
        seq = await desk.visitor(chat).send("one")
        await desk.close_visitor(chat)
        await desk.agent("ann").send(chat, "while you were away")
        await trio.sleep(10)
        await desk.resume(chat, last_seq=seq)
        assert [getattr(e, "text", "") for e in await desk.events(chat)] == ["while you were away"]
        await trio.sleep(30)
        assert chat in (await desk.view()).chats


class TestDisconnect:
    async def test_grace_then_requeue_and_reoffer(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """An agent gone past its grace loses its chats to the queue head; they are re-offered."""
        await desk.sign_in("ann", status=None)
        await desk.sign_in("bob")
        chat = await desk.chat("bob")
        await desk.sign_out("bob")
        await trio.sleep(24)
        assert (await desk.view()).chats[chat].owner == "bob"
        await desk.agent("ann").set_status("online")
        await trio.sleep(2)
        await desk.accept("ann", chat)
        events = [e.event for e in of_type(await desk.events(chat), SystemEvent)]
        assert "requeued" in events
        assert events[-1] == "joined"
        view = await desk.view()
        assert view.chats[chat].owner == "ann"
        assert view.agents["bob"].load == 0

    async def test_reconnect_within_grace_keeps_chats(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """An agent that reconnects within its grace keeps its chats and can go on writing."""
        await desk.sign_in("bob")
        chat = await desk.chat("bob")
        await desk.sign_out("bob")
        await trio.sleep(20)
        await desk.sign_in("bob", status=None)
        await trio.sleep(30)
        assert (await desk.view()).chats[chat].owner == "bob"
        await desk.agent("bob").send(chat, "back")
        events = [e.event for e in of_type(await desk.events(chat), SystemEvent)]
        assert "requeued" not in events


class TestLongTranscripts:
    async def test_replay_longer_than_the_queue(
        self, config: EngineConfig, autojump_clock: MockClock
    ) -> None:
        """A resume or a newcomer gets a transcript longer than its queue, in order, unkicked."""
        async with open_desk(dataclasses.replace(config, outbound_size=8)) as desk:
            await desk.sign_in("ann", "bob")
            chat = await desk.chat("ann")
            for i in range(20):
                await desk.agent("ann").send(chat, f"line {i}")
                await desk.events("ann")
                await desk.events(chat)
            await desk.close_visitor(chat)
            await desk.invite("ann", chat, to_agent="bob")
            await desk.accept("bob", chat)
            seen = of_type(await desk.events("bob"), ChatMessage)
            assert [e.text for e in seen] == [f"line {i}" for i in range(20)]
            again = await desk.resume(chat, last_seq=0)
            lines = of_type(await desk.events(chat), ChatMessage)
            assert [e.text for e in lines] == [f"line {i}" for i in range(20)]
            await again.send("still here")


class TestCancelByKind:
    async def test_cancel_names_the_kind(self, desk: Desk, autojump_clock: MockClock) -> None:
        """Cancelling an invite leaves a pending transfer alone, and the other way round."""
        await desk.sign_in("ann", "bob")
        chat = await desk.chat("ann")
        await desk.transfer("ann", chat, to_agent="bob")
        with pytest.raises(EngineError) as err:
            await desk.agent("ann").cancel_handoff(chat, kind="invite")
        assert err.value.code == "no_handoff"
        assert (await desk.chat_view(chat)).handoff  # type: ignore[union-attr]
        await desk.agent("ann").cancel_handoff(chat, kind="transfer")
        assert of_type(await desk.events("ann"), HandoffResult)[-1].outcome == "cancelled"


class TestTyping:
    async def test_only_members_type(self, desk: Desk, autojump_clock: MockClock) -> None:
        """A member's typing notice reaches the others; an outsider's is refused."""
        await desk.sign_in("ann", "bob")
        chat = await desk.chat("ann")
        await desk.events(chat)
        await desk.agent("ann").typing(chat, True)
        assert [(t.author, t.on) for t in of_type(await desk.events(chat), Typing)] == [
            ("ann", True)
        ]
        with pytest.raises(EngineError) as err:
            await desk.agent("bob").typing(chat, True)
        assert err.value.code == "not_in_chat"
        assert not of_type(await desk.events(chat), Typing)
