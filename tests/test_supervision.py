"""Supervisors in the engine: the live desk, monitoring, whispers, barging in, reassigning, and the
audit entries each act leaves."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from engine import (
    ChatMessage,
    DeskChanged,
    Engine,
    EngineError,
    HandoffResult,
    SystemEvent,
    WhisperMessage,
)

from .helpers import drain, of_type, offer_for, settle
from .test_handshakes import VISITOR, agents, chat_with


class TestDesk:
    async def test_snapshot_then_coalesced_changes(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """The desk starts with every live chat of the supervisor's departments, then sends only
        what changed, a few events a second however busy the desk is."""
        async with (
            agents(engine, "ann") as [ann],
            chat_with(engine, ann) as first,
            engine.connect_supervisor("supervisor:sue", name="Sue", departments=["sales"]) as sue,
        ):
            snapshot = await sue.desk()
            [row] = snapshot.chats
            assert (row.chat_id, row.state, row.owner, row.agents) == (
                first.chat_id,
                "active",
                "ann",
                ("ann",),
            )
            assert [q.department for q in snapshot.queues] == ["sales"]
            for n in range(20):
                await first.send(f"line {n}")
            await trio.sleep(1.0)
            changes = of_type(sue.pending_events(), DeskChanged)
            assert 1 <= len(changes) <= 5
            last = changes[-1].chats[-1]
            assert last.chat_id == first.chat_id
            assert last.last_message_at is not None
            async with engine.open_chat(
                department="support", question="elsewhere", visitor=VISITOR
            ):
                await trio.sleep(1.0)
                assert of_type(sue.pending_events(), DeskChanged) == []
            await ann.end_chat(first.chat_id)
            await trio.sleep(1.0)
            [ended] = of_type(sue.pending_events(), DeskChanged)
            assert ended.removed == (first.chat_id,)

    async def test_no_desk_no_work(self, engine: Engine, autojump_clock: MockClock) -> None:
        """While no supervisor's desk is open, chat lines cost the router nothing (its loop does
        not turn for them); once a desk opens they do, and the desk still knows when the chat's
        last line was written before it opened."""
        async with agents(engine, "ann") as [ann], chat_with(engine, ann) as chat:
            await settle()
            turns = engine.stats.loop_turns
            for n in range(20):
                await chat.send(f"line {n}")
                await ann.send(chat.chat_id, f"answer {n}")
            await settle()
            assert engine.stats.loop_turns == turns
            async with engine.connect_supervisor("admin:root") as root:
                [row] = (await root.desk()).chats
                assert row.last_message_at is not None
                turns = engine.stats.loop_turns
                for n in range(5):
                    await chat.send(f"watched {n}")
                await settle()
                assert engine.stats.loop_turns > turns
                await root.stop_desk()
                await settle()
                turns = engine.stats.loop_turns
                for n in range(5):
                    await chat.send(f"unwatched {n}")
                await settle()
                assert engine.stats.loop_turns == turns

    async def test_queue_is_shown(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A chat waiting for a full department appears in its queue."""
        async with (
            agents(engine, "cy") as [cy],
            chat_with(engine, cy, "support"),
            engine.connect_supervisor("admin:root") as root,
        ):
            await root.desk()
            async with engine.open_chat(department="support", question="q", visitor=VISITOR) as w:
                await trio.sleep(1.0)
                changes = of_type(root.pending_events(), DeskChanged)
                queues = {q.department: q.chats for c in changes for q in c.queues}
                assert queues["support"] == (w.chat_id,)


class TestMonitorAndWhisper:
    async def test_the_visitor_sees_no_whisper(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A monitor gets the transcript and every new line; a whisper reaches the agents and the
        monitor, and never the visitor: not live, not in a resume, not in its ticket."""
        async with (
            agents(engine, "ann") as [ann],
            chat_with(engine, ann) as vera,
            engine.connect_supervisor("supervisor:sue", name="Sue", departments=["sales"]) as sue,
        ):
            await vera.send("hello")
            seq = await sue.monitor(vera.chat_id)
            replayed = await drain_supervisor(sue)
            assert [e.seq for e in replayed if isinstance(e, ChatMessage | SystemEvent)][-1] == seq
            whisper_seq = await sue.whisper(vera.chat_id, "offer the discount")
            await ann.send(vera.chat_id, "we can do 10% off")
            [whisper] = of_type(await drain(ann), WhisperMessage)
            assert (whisper.seq, whisper.author, whisper.author_name, whisper.text) == (
                whisper_seq,
                "supervisor:sue",
                "Sue",
                "offer the discount",
            )
            seen = await drain_supervisor(sue)
            assert [type(e).__name__ for e in seen] == ["WhisperMessage", "ChatMessage"]
            visitor_events = await drain(vera)
            assert of_type(visitor_events, WhisperMessage) == []
            assert all(getattr(e, "seq", 0) != whisper_seq for e in visitor_events)
            assert all(e.kind != "whisper" for e in await vera.history())
            chat_id = vera.chat_id
        async with engine.resume_chat(chat_id) as again:
            replay = await drain(again)
            assert replay
            assert of_type(replay, WhisperMessage) == []
            await ann.end_chat(chat_id)
        ticket = await engine.ticket_for_chat(chat_id)
        assert [e.text for e in ticket.entries if e.kind == "whisper"] == ["offer the discount"]
        shown = await engine.rate_chat(chat_id, "good")
        assert all(e.kind != "whisper" for e in shown.entries)
        audit = await engine.store.audit(actor="supervisor:sue")
        assert [a.action for a in audit] == ["whisper", "monitor"]

    async def test_other_departments_are_not_found(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A chat outside the supervisor's departments is answered as one that does not exist."""
        async with (
            agents(engine, "cy") as [cy],
            chat_with(engine, cy, "support") as vera,
            engine.connect_supervisor("supervisor:sue", departments=["sales"]) as sue,
        ):
            for act in (
                sue.monitor(vera.chat_id),
                sue.whisper(vera.chat_id, "psst"),
                sue.barge(vera.chat_id),
                sue.reassign(vera.chat_id, to_agent="bob"),
            ):
                with pytest.raises(EngineError) as info:
                    await act
                assert info.value.code == "not_found"
            assert await engine.store.audit() == []


class TestBargeAndReassign:
    async def test_barge_in(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A supervisor that barges in is seen by the visitor, writes in the chat, and leaves."""
        async with (
            agents(engine, "ann") as [ann],
            chat_with(engine, ann) as vera,
            engine.connect_supervisor("supervisor:sue", name="Sue", departments=["sales"]) as sue,
        ):
            await sue.barge(vera.chat_id)
            await sue.send(vera.chat_id, "I am the supervisor")
            events = await drain(vera)
            kinds = [e.event for e in of_type(events, SystemEvent)]
            assert "barged" in kinds
            assert [m.author_name for m in of_type(events, ChatMessage)] == ["Sue"]
            await sue.leave(vera.chat_id)
            await settle()
            assert "left" in [e.event for e in of_type(await drain(vera), SystemEvent)]
            view = await engine.chat_view(vera.chat_id)
            assert view is not None
            assert view.members == ("ann",)
        [entry] = await engine.store.audit(action="barge")
        assert entry.before == {"owner": "ann"}

    async def test_reassign(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A reassign is the owner's transfer: the target accepts, the owner hears it."""
        async with (
            agents(engine, "ann", "bob") as [ann, bob],
            chat_with(engine, ann) as vera,
            engine.connect_supervisor("supervisor:sue", departments=["sales"]) as sue,
        ):
            offer_id = await sue.reassign(vera.chat_id, to_agent="bob", note="VIP")
            offer = await offer_for(bob, vera.chat_id)
            assert (offer.offer_id, offer.from_agent, offer.note) == (offer_id, "ann", "VIP")
            await bob.accept(offer_id)
            [result] = of_type(await drain(ann), HandoffResult)
            assert (result.outcome, result.target) == ("accepted", "bob")
            view = await engine.chat_view(vera.chat_id)
            assert view is not None
            assert view.owner == "bob"
        [entry] = await engine.store.audit(action="reassign")
        assert entry.before == {"owner": "ann", "department": "sales"}


async def drain_supervisor(sup: object) -> list[object]:
    await settle()
    return list(sup.pending_events())  # type: ignore[attr-defined]
