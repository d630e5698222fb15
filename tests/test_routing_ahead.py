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
    open_engine,
)

from .desk import VISITOR, Desk, of_type
from .helpers import drain, offer_for, settle

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
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """An assigned offer names the agent chosen (least loaded, with the figures) and why
        every other agent of the department was not."""
        await desk.sign_in("ann", "bob")
        await trio.sleep(5)
        await desk.agent("bob").set_status("offline")
        chat = await desk.open_chat("help", "?")
        await desk.offer("ann", chat)
        trace = await desk.engine.routing_trace(chat)
        assert trace is not None
        assert trace.live
        assert [s.kind for s in trace.steps] == ["requested", "offered"]
        offered = trace.steps[1]
        verdicts = {c.agent: (c.verdict, c.reason) for c in offered.candidates}
        assert verdicts == {"ann": ("chosen", "least_loaded"), "bob": ("skipped", "offline")}
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

    async def test_a_live_chat_keeps_its_last_steps_only(
        self, config: EngineConfig, tmp_path: Path, autojump_clock: MockClock
    ) -> None:
        """trace_steps bounds a live chat's trace: the oldest steps go, counted as dropped, and
        the candidates of the steps kept read back whole."""
        config = dataclasses.replace(config, trace_steps=2)
        async with open_engine(config, db=tmp_path / "helpline.db") as engine:
            async with engine.connect_agent("cy") as cy:
                await cy.set_status("online")
                async with engine.open_chat(department="spill", question="?", visitor=VISITOR) as v:
                    await cy.accept((await offer_for(cy, v.chat_id)).offer_id)
                    trace = await engine.routing_trace(v.chat_id)
        assert trace is not None
        assert [s.kind for s in trace.steps] == ["offered", "accepted"]
        assert trace.dropped == 1  # "requested"
        (chosen,) = trace.steps[0].candidates
        assert (chosen.agent, chosen.verdict, chosen.load, chosen.capacity) == (
            "cy",
            "chosen",
            0,
            1,
        )

    async def test_queue_and_timeout_are_recorded(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """A chat that waits, is offered, and lets its offer lapse leaves each step behind."""
        await desk.sign_in("bob")
        chat = await desk.open_chat("help", "?")
        await desk.offer("bob", chat)
        await trio.sleep(21)  # the offer window passes; bob is tried, nobody is left
        await settle()
        trace = await desk.engine.routing_trace(chat)
        assert trace is not None
        assert [s.kind for s in trace.steps] == ["requested", "offered", "timeout", "missed"]
        assert trace.steps[-1].detail == "offer_timeout"


class TestQueueEta:
    async def test_queued_event_carries_position_and_eta(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """With no history the estimate uses the prior handle time: position x 180 s over the
        department's capacity; it is told again as the queue moves, from the handle times seen."""
        await desk.sign_in("cy")
        first, second, third = [await desk.open_chat("spill", q) for q in "123"]
        await desk.accept("cy", first)
        queued = of_type(await desk.events(second), Queued)
        assert [(q.position, q.eta) for q in queued] == [(1, 180.0)]
        queued = of_type(await desk.events(third), Queued)
        assert [(q.position, q.eta) for q in queued] == [(2, 360.0)]
        await desk.end("cy", first)
        await desk.offer("cy", second)
        queued = of_type(await desk.events(third), Queued)
        assert [q.position for q in queued] == [1]
        assert queued[0].eta is not None
        assert queued[0].eta < 180


class TestOverflow:
    async def test_long_queue_overflows_to_the_fallback(
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """Past the queue length the chat goes to the fallback department, and the recorder
        says why; with no fallback left it is missed with reason overflow."""
        await desk.sign_in("bob", "cy")
        first, second, third = [await desk.open_chat("help", q) for q in "123"]
        await desk.accept("bob", first)
        assert of_type(await desk.events(second), Queued)
        offer = await desk.offer("cy", third)
        assert offer.department == "spill"
        trace = await desk.engine.routing_trace(third)
        assert trace is not None
        overflow = next(s for s in trace.steps if s.kind == "overflow")
        assert overflow.detail.endswith("to spill")
        await desk.accept("cy", third)
        await desk.agent("cy").set_status("offline")  # nobody is left in the fallback
        fourth = await desk.open_chat("help", "4")
        assert [e.reason for e in of_type(await desk.events(fourth), ChatEnded)] == ["overflow"]
        await desk.end("cy", third)
        ticket = await desk.engine.ticket_for_chat(third)
        assert ticket.department == "spill"

    async def test_long_wait_overflows(self, desk: Desk, autojump_clock: MockClock) -> None:
        """An estimated wait over the limit, with no fallback, makes a missed chat at once."""
        await desk.sign_in("dee")
        first, second = [await desk.open_chat("lone", q) for q in "12"]
        await desk.accept("dee", first)
        assert [e.reason for e in of_type(await desk.events(second), ChatEnded)] == ["overflow"]
        ticket = await desk.engine.ticket_for_chat(second)
        assert (ticket.kind, ticket.end_reason) == (TicketKind.MISSED, EndReason.OVERFLOW)


class TestSilence:
    async def test_silent_owner_is_reassigned(self, desk: Desk, autojump_clock: MockClock) -> None:
        """The visitor's unanswered message re-offers the chat; the owner keeps it until another
        agent accepts, and both sides see a reassigning line."""
        await desk.sign_in("ann")
        await desk.sign_in("bob", status=None)
        chat = await desk.chat("ann", "help", "?")
        await desk.agent("bob").set_status("online")
        await desk.visitor(chat).send("hello?")
        await trio.sleep(10)
        await desk.agent("ann").send(chat, "hi")  # answered: the timer is off
        await desk.visitor(chat).send("and?")
        await trio.sleep(31)
        assert (await desk.offer("bob", chat)).kind == "transfer"
        assert (await desk.chat_view(chat)).owner == "ann"  # type: ignore[union-attr]
        await desk.accept("bob", chat)
        assert (await desk.chat_view(chat)).owner == "bob"  # type: ignore[union-attr]
        kinds = [e.event for e in of_type(await desk.events(chat), SystemEvent)]
        assert kinds == ["joined", "reassigning", "transferred"]
        trace = await desk.engine.routing_trace(chat)
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
        self, desk: Desk, autojump_clock: MockClock
    ) -> None:
        """A chat that needs a skill waits for an agent who has it, then after the department's
        skills wait goes to anyone, and the recorder says so."""
        await desk.sign_in("bob")
        chat = await desk.open_chat("help", "?", skills=("billing",))
        assert not of_type(await desk.events("bob"), Offer)
        trace = await desk.engine.routing_trace(chat)
        assert trace is not None
        queued = trace.steps[-1]
        assert queued.kind == "queued"
        assert [(c.agent, c.reason, c.detail) for c in queued.candidates] == [
            ("ann", "offline", ""),
            ("bob", "missing_skill", "billing"),
        ]
        await trio.sleep(60)
        await desk.offer("bob", chat)
        trace = await desk.engine.routing_trace(chat)
        assert trace is not None
        assert [s.kind for s in trace.steps][-2:] == ["skills_relaxed", "offered"]

    async def test_skilled_agent_is_chosen(self, desk: Desk, autojump_clock: MockClock) -> None:
        """With both online, the agent with the skill gets the chat, whoever ranks first."""
        await desk.sign_in("ann", "bob")
        chat = await desk.open_chat("help", "?", skills=("billing",))
        await desk.offer("ann", chat)
        assert not of_type(await desk.events("bob"), Offer)


class TestTags:
    async def test_tags_reach_the_ticket(self, desk: Desk, autojump_clock: MockClock) -> None:
        """An agent in the chat tags it; the ticket keeps the tags and `tickets` finds them."""
        (bob,) = await desk.sign_in("bob")
        chat = await desk.chat("bob", "help", "?")
        assert await bob.tag(chat, ["refund", "vip"]) == ("refund", "vip")
        assert await bob.tag(chat, ["vip"]) == ("refund", "vip")
        await desk.end("bob", chat)
        ticket = await desk.engine.ticket_for_chat(chat)
        assert ticket.tags == ("refund", "vip")
        assert [t.chat_id for t in await desk.engine.tickets(tag="vip")] == [chat]
        assert await desk.engine.tickets(tag="other") == []
