"""Routing that thinks ahead: the flight recorder, queue ETA, overflow, reassign on silence,
business hours, skills and tags."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from engine import (
    Agent,
    ChatEnded,
    Department,
    EndReason,
    Engine,
    EngineConfig,
    Hours,
    Offer,
    Queued,
    RoutingMode,
    SystemEvent,
    TicketKind,
    Visitor,
    open_engine,
)

from .helpers import drain, of_type, offer_for, settle

VISITOR = Visitor(name="Vera", email="vera@example.com")

DEPARTMENTS = (
    Department(
        id="help",
        name="Help",
        routing=RoutingMode.ASSIGNED,
        offer_window=20,
        queue_timeout=600,
        skills_wait=60,
        silence_timeout=30,
        overflow_queue=1,
        overflow_to=("spill",),
    ),
    Department(id="spill", name="Spill", offer_window=20),
    Department(id="lone", name="Lone", overflow_wait=100),
)
AGENTS = (
    Agent(id="ann", name="Ann", departments=("help",), capacity=1, skills=("billing",)),
    Agent(id="bob", name="Bob", departments=("help",), capacity=1),
    Agent(id="cy", name="Cy", departments=("spill",), capacity=1),
    Agent(id="dee", name="Dee", departments=("lone",), capacity=1),
)


@pytest.fixture
def config() -> EngineConfig:
    return EngineConfig(departments=DEPARTMENTS, agents=AGENTS, visitor_grace=15, agent_grace=25)


async def _ended(engine: Engine, chat_id: str) -> None:
    """Wait until the chat's session has closed (its ticket is stored)."""
    for _ in range(100):
        if await engine.chat_view(chat_id) is None:
            break
        await trio.sleep(1)
    await settle()


class TestFlightRecorder:
    async def test_offer_explains_every_candidate(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An assigned offer names the agent chosen (least loaded, with the figures) and why
        every other agent of the department was not."""
        async with engine.connect_agent("ann") as ann, engine.connect_agent("bob") as bob:
            await ann.set_status("online")
            await bob.set_status("online")
            await trio.sleep(5)
            await bob.set_status("offline")
            async with engine.open_chat(department="help", question="?", visitor=VISITOR) as v:
                await offer_for(ann, v.chat_id)
                trace = await engine.routing_trace(v.chat_id)
                assert trace is not None
                assert trace.live
                assert [s.kind for s in trace.steps] == ["requested", "offered"]
                offered = trace.steps[1]
                verdicts = {c.agent: (c.verdict, c.reason) for c in offered.candidates}
                assert verdicts == {
                    "ann": ("chosen", "least_loaded"),
                    "bob": ("skipped", "offline"),
                }
                ann_figures = next(c for c in offered.candidates if c.agent == "ann")
                assert (ann_figures.load, ann_figures.capacity) == (0, 1)
                assert ann_figures.idle >= 5

    async def test_missed_chat_is_explained_after_a_restart(
        self, config: EngineConfig, tmp_path: Path, autojump_clock: MockClock
    ) -> None:
        """The trace of a missed chat is stored with it and read back after a restart; rows
        older than the retention are pruned at start."""
        db = tmp_path / "helpline.db"
        async with open_engine(config, db=db) as engine:
            async with engine.open_chat(department="help", question="?", visitor=VISITOR) as v:
                chat_id = v.chat_id
                await drain(v)
            await _ended(engine, chat_id)
        async with open_engine(config, db=db) as engine:
            trace = await engine.routing_trace(chat_id)
            assert trace is not None
            assert not trace.live
            assert [(s.kind, s.detail) for s in trace.steps][-1] == ("missed", "no_agent_online")
        await trio.sleep(3600)
        async with open_engine(dataclasses.replace(config, trace_days=0.01), db=db) as engine:
            assert await engine.routing_trace(chat_id) is None

    async def test_no_trace_is_stored_when_none_is_kept(
        self, config: EngineConfig, tmp_path: Path, autojump_clock: MockClock
    ) -> None:
        """trace_days=0: a live chat's steps are read as ever, a finished chat's are not stored."""
        db = tmp_path / "helpline.db"
        async with open_engine(dataclasses.replace(config, trace_days=0), db=db) as engine:
            async with engine.open_chat(department="help", question="?", visitor=VISITOR) as v:
                chat_id = v.chat_id
                live = await engine.routing_trace(chat_id)
                assert live is not None
                assert live.live
                await drain(v)
            await _ended(engine, chat_id)
        async with open_engine(config, db=db) as engine:
            assert await engine.routing_trace(chat_id) is None

    async def test_queue_and_timeout_are_recorded(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A chat that waits, is offered, and lets its offer lapse leaves each step behind."""
        async with engine.connect_agent("bob") as bob:
            await bob.set_status("online")
            async with engine.open_chat(department="help", question="?", visitor=VISITOR) as v:
                await offer_for(bob, v.chat_id)
                await trio.sleep(21)  # the offer window passes; bob is tried, nobody is left
                await settle()
                trace = await engine.routing_trace(v.chat_id)
        assert trace is not None
        assert [s.kind for s in trace.steps] == ["requested", "offered", "timeout", "missed"]
        assert trace.steps[-1].detail == "offer_timeout"


class TestQueueEta:
    async def test_queued_event_carries_position_and_eta(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """With no history the estimate uses the prior handle time: position x 180 s over the
        department's capacity; it is told again as the queue moves, from the handle times seen."""
        async with engine.connect_agent("cy") as cy:
            await cy.set_status("online")
            async with (
                engine.open_chat(department="spill", question="1", visitor=VISITOR) as v1,
                engine.open_chat(department="spill", question="2", visitor=VISITOR) as v2,
                engine.open_chat(department="spill", question="3", visitor=VISITOR) as v3,
            ):
                await cy.accept((await offer_for(cy, v1.chat_id)).offer_id)
                queued = of_type(await drain(v2), Queued)
                assert [(q.position, q.eta) for q in queued] == [(1, 180.0)]
                queued = of_type(await drain(v3), Queued)
                assert [(q.position, q.eta) for q in queued] == [(2, 360.0)]
                await cy.end_chat(v1.chat_id)
                await offer_for(cy, v2.chat_id)
                queued = of_type(await drain(v3), Queued)
                assert [q.position for q in queued] == [1]
                assert queued[0].eta is not None
                assert queued[0].eta < 180


class TestOverflow:
    async def test_long_queue_overflows_to_the_fallback(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Past the queue length the chat goes to the fallback department, and the recorder
        says why; with no fallback left it is missed with reason overflow."""
        async with (
            engine.connect_agent("bob") as bob,
            engine.connect_agent("cy") as cy,
        ):
            await bob.set_status("online")
            await cy.set_status("online")
            async with (
                engine.open_chat(department="help", question="1", visitor=VISITOR) as v1,
                engine.open_chat(department="help", question="2", visitor=VISITOR) as v2,
                engine.open_chat(department="help", question="3", visitor=VISITOR) as v3,
            ):
                await bob.accept((await offer_for(bob, v1.chat_id)).offer_id)
                assert of_type(await drain(v2), Queued)
                offer = await offer_for(cy, v3.chat_id)
                assert offer.department == "spill"
                trace = await engine.routing_trace(v3.chat_id)
                assert trace is not None
                overflow = next(s for s in trace.steps if s.kind == "overflow")
                assert overflow.detail.endswith("to spill")
                await cy.accept(offer.offer_id)
                await cy.set_status("offline")  # nobody is left in the fallback
                async with engine.open_chat(department="help", question="4", visitor=VISITOR) as v4:
                    ended = of_type(await drain(v4), ChatEnded)
                    assert [e.reason for e in ended] == ["overflow"]
                await cy.end_chat(v3.chat_id)
        ticket = await engine.ticket_for_chat(v3.chat_id)
        assert ticket.department == "spill"

    async def test_long_wait_overflows(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An estimated wait over the limit, with no fallback, makes a missed chat at once."""
        async with engine.connect_agent("dee") as dee:
            await dee.set_status("online")
            async with (
                engine.open_chat(department="lone", question="1", visitor=VISITOR) as v1,
                engine.open_chat(department="lone", question="2", visitor=VISITOR) as v2,
            ):
                await dee.accept((await offer_for(dee, v1.chat_id)).offer_id)
                ended = of_type(await drain(v2), ChatEnded)
                assert [e.reason for e in ended] == ["overflow"]
        ticket = await engine.ticket_for_chat(v2.chat_id)
        assert (ticket.kind, ticket.end_reason) == (TicketKind.MISSED, EndReason.OVERFLOW)


class TestSilence:
    async def test_silent_owner_is_reassigned(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """The visitor's unanswered message re-offers the chat; the owner keeps it until another
        agent accepts, and both sides see a reassigning line."""
        async with engine.connect_agent("ann") as ann, engine.connect_agent("bob") as bob:
            await ann.set_status("online")
            async with engine.open_chat(department="help", question="?", visitor=VISITOR) as v:
                await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
                await bob.set_status("online")
                await v.send("hello?")
                await trio.sleep(10)
                await ann.send(v.chat_id, "hi")  # answered: the timer is off
                await v.send("and?")
                await trio.sleep(31)
                offer = await offer_for(bob, v.chat_id)
                assert offer.kind == "transfer"
                assert (await engine.chat_view(v.chat_id)).owner == "ann"  # type: ignore[union-attr]
                await bob.accept(offer.offer_id)
                assert (await engine.chat_view(v.chat_id)).owner == "bob"  # type: ignore[union-attr]
                kinds = [e.event for e in of_type(await drain(v), SystemEvent)]
                assert kinds == ["joined", "reassigning", "transferred"]
                trace = await engine.routing_trace(v.chat_id)
                assert trace is not None
                assert [s.kind for s in trace.steps][-2:] == ["reassign", "reassigned"]


class TestBusinessHours:
    async def test_closed_department_tells_when_it_opens(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Outside the hours a new chat is missed with closed_hours and the visitor learns when
        the department opens next."""
        today = dt.datetime.fromtimestamp(engine.now(), dt.UTC).date()
        hours = Hours(
            timezone="UTC",
            weekly=("mon-sun 00:00-24:00",),
            holidays=(today.isoformat(), (today + dt.timedelta(days=1)).isoformat()),
        )
        await engine.add_department(Department(id="shop", name="Shop", hours=hours))
        async with engine.open_chat(department="shop", question="?", visitor=VISITOR) as v:
            ended = of_type(await drain(v), ChatEnded)
        opens = dt.datetime.combine(today + dt.timedelta(days=2), dt.time(), dt.UTC)
        assert [(e.reason, e.opens_at) for e in ended] == [("closed_hours", opens.timestamp())]
        ticket = await engine.ticket_for_chat(v.chat_id)
        assert (ticket.kind, ticket.end_reason) == (TicketKind.MISSED, EndReason.CLOSED_HOURS)
        stored = {d.id: d for d in await engine.departments()}["shop"]
        assert stored.hours == hours


class TestSkills:
    async def test_skilled_agent_first_then_anyone(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A chat that needs a skill waits for an agent who has it, then after the department's
        skills wait goes to anyone, and the recorder says so."""
        async with engine.connect_agent("bob") as bob:
            await bob.set_status("online")
            async with engine.open_chat(
                department="help", question="?", visitor=VISITOR, skills=("billing",)
            ) as v:
                await settle()
                assert not of_type(await drain(bob), Offer)
                trace = await engine.routing_trace(v.chat_id)
                assert trace is not None
                queued = trace.steps[-1]
                assert queued.kind == "queued"
                assert [(c.agent, c.reason, c.detail) for c in queued.candidates] == [
                    ("ann", "offline", ""),
                    ("bob", "missing_skill", "billing"),
                ]
                await trio.sleep(60)
                await offer_for(bob, v.chat_id)
                trace = await engine.routing_trace(v.chat_id)
                assert trace is not None
                assert [s.kind for s in trace.steps][-2:] == ["skills_relaxed", "offered"]

    async def test_skilled_agent_is_chosen(self, engine: Engine, autojump_clock: MockClock) -> None:
        """With both online, the agent with the skill gets the chat, whoever ranks first."""
        async with engine.connect_agent("ann") as ann, engine.connect_agent("bob") as bob:
            await ann.set_status("online")
            await bob.set_status("online")
            async with engine.open_chat(
                department="help", question="?", visitor=VISITOR, skills=("billing",)
            ) as v:
                await offer_for(ann, v.chat_id)
                assert not of_type(await drain(bob), Offer)


class TestTags:
    async def test_tags_reach_the_ticket(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An agent in the chat tags it; the ticket keeps the tags and `tickets` finds them."""
        async with engine.connect_agent("bob") as bob:
            await bob.set_status("online")
            async with engine.open_chat(department="help", question="?", visitor=VISITOR) as v:
                await bob.accept((await offer_for(bob, v.chat_id)).offer_id)
                assert await bob.tag(v.chat_id, ["refund", "vip"]) == ("refund", "vip")
                assert await bob.tag(v.chat_id, ["vip"]) == ("refund", "vip")
                await bob.end_chat(v.chat_id)
        ticket = await engine.ticket_for_chat(v.chat_id)
        assert ticket.tags == ("refund", "vip")
        assert [t.chat_id for t in await engine.tickets(tag="vip")] == [v.chat_id]
        assert await engine.tickets(tag="other") == []
