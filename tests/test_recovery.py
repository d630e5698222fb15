"""Restarts: every live chat comes back as it was, passed deadlines fire once, nothing twice.

Each test builds chats in an engine, leaves it the way a crash would (`end_chats_on_exit=False`:
no chat is ended, the actors are cancelled), and opens a new engine on the same store. Every test
runs on SQLite and on PostgreSQL (skipped without HELPLINE_TEST_POSTGRES). Handles of the
crashed engine are closed only after it is gone, so nothing they say reaches it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
from trio.testing import MockClock

from engine import (
    Agent,
    AgentConnection,
    ChatAssigned,
    ChatMessage,
    Department,
    DeskChanged,
    Engine,
    EngineConfig,
    EngineError,
    Offer,
    RouterView,
    RoutingMode,
    SystemEvent,
    Ticket,
    TicketKind,
    Visitor,
    VisitorChat,
    open_engine,
    open_store,
    parse_store_url,
)

from .helpers import check_invariants, drain, of_type, offer_for, settle

CONFIG = EngineConfig(
    departments=(
        Department(id="sales", name="Sales", offer_window=30, queue_timeout=120, queue_limit=5),
        Department(
            id="support",
            name="Support",
            routing=RoutingMode.ASSIGNED,
            offer_window=20,
            queue_timeout=120,
        ),
    ),
    agents=(
        Agent(id="ann", name="Ann", departments=("sales",), capacity=3),
        Agent(id="bob", name="Bob", departments=("sales", "support"), capacity=3),
        Agent(id="cy", name="Cy", departments=("support",), capacity=1),
        Agent(id="dee", name="Dee", departments=("support",), capacity=1),
    ),
    handoff_timeout=45,
    visitor_grace=15,
    agent_grace=25,
)


@asynccontextmanager
async def crashing(
    db: str, config: EngineConfig = CONFIG
) -> AsyncIterator[tuple[Engine, AsyncExitStack]]:
    """An engine that is left as a crash leaves it; handles on the stack close after it."""
    async with AsyncExitStack() as handles:
        async with open_engine(
            config, db=db, synchronous="NORMAL", end_chats_on_exit=False
        ) as engine:
            yield engine, handles


async def all_tickets(db: str) -> dict[str, list[Ticket]]:
    async with open_store(db) as store:
        tickets = await store.tickets(limit=1000)
    by_chat: dict[str, list[Ticket]] = {}
    for t in tickets:
        by_chat.setdefault(t.chat_id, []).append(t)
    return by_chat


@pytest.fixture
def db_path(store_url: str) -> str:
    """The store under test: a SQLite file, or a fresh PostgreSQL schema."""
    return store_url


async def integrity(db: str) -> list[tuple[str]]:
    if parse_store_url(db).kind != "sqlite":
        return [("ok",)]  # the server keeps its own pages; there is no file here to check
    async with open_store(db) as store:
        rows: list[tuple[str]] = await store.read(
            lambda c: c.execute("PRAGMA integrity_check").fetchall()
        )
    return rows


@dataclass
class World:
    """The chats of `every_state`, by letter, and who holds what."""

    chats: dict[str, str] = field(default_factory=dict)  # letter -> chat id
    visitors: dict[str, VisitorChat] = field(default_factory=dict)
    agents: dict[str, AgentConnection] = field(default_factory=dict)
    in_grace: str = ""  # the agent whose disconnect grace runs


async def every_state(engine: Engine, handles: AsyncExitStack) -> World:
    """One chat in every state a live chat can be in, and both kinds of grace running.

    A: active, with a transcript and an invitee      B: ending (delayed end in 60 s)
    H: active, its visitor gone (grace 15 s)         I: active, its agent gone (grace 25 s)
    C: offered, broadcast to ann and bob (30 s)      F: offered, assigned to dee (20 s)
    D, E: queued in sales, in that order (120 s)     G: queued in support (120 s)
    """
    w = World()
    for agent_id in ("ann", "bob", "dee"):
        conn = await handles.enter_async_context(engine.connect_agent(agent_id))
        await conn.set_status("online")
        w.agents[agent_id] = conn
    ann, bob = w.agents["ann"], w.agents["bob"]
    cy_connection = engine.connect_agent("cy")
    cy = await cy_connection.__aenter__()
    await cy.set_status("online")

    async def open_(letter: str, department: str) -> VisitorChat:
        visitor = Visitor(name=f"Visitor {letter}", email=f"{letter}@example.com")
        v = await handles.enter_async_context(
            engine.open_chat(department=department, question=f"about {letter}", visitor=visitor)
        )
        w.chats[letter], w.visitors[letter] = v.chat_id, v
        return v

    a = await open_("A", "sales")
    await ann.accept((await offer_for(ann, a.chat_id)).offer_id)
    await a.send("hello", client_msg_id="a-1")
    await ann.send(a.chat_id, "hi, how can I help?")
    await ann.invite(a.chat_id, to_agent="bob", note="second opinion")
    await bob.accept((await offer_for(bob, a.chat_id)).offer_id)
    await bob.send(a.chat_id, "Bob here")

    b = await open_("B", "sales")
    await bob.accept((await offer_for(bob, b.chat_id)).offer_id)
    await bob.end_chat(b.chat_id, delay=60)

    h = await open_("H", "sales")
    await ann.accept((await offer_for(ann, h.chat_id)).offer_id)
    await h.send("back in a minute")
    await h.leave()

    i = await open_("I", "support")  # assigned: cy and dee are least loaded, cy sorts first
    await cy.accept((await offer_for(cy, i.chat_id)).offer_id)
    await cy.send(i.chat_id, "let me check")
    await cy_connection.__aexit__(None, None, None)
    w.in_grace = "cy"

    await open_("C", "sales")  # ann and bob have room for one more each
    await open_("D", "sales")
    await open_("E", "sales")
    await open_("F", "support")  # dee is the only one left with room
    await open_("G", "support")
    await settle()
    return w


async def resume_all(
    engine: Engine, handles: AsyncExitStack, chats: dict[str, str], view: RouterView
) -> dict[str, VisitorChat]:
    """The visitors of every chat still live come back (and stay until the engine is gone)."""
    return {
        letter: await handles.enter_async_context(engine.resume_chat(chat_id))
        for letter, chat_id in chats.items()
        if chat_id in view.chats
    }


def same_ownership(before: RouterView, after: RouterView) -> None:
    assert after.chats == before.chats
    assert after.queues == before.queues
    for agent_id, agent in after.agents.items():
        was = before.agents[agent_id]
        assert (agent.status, agent.chats, agent.offers) == (was.status, was.chats, was.offers)


class TestRestart:
    async def test_every_state_comes_back(self, db_path: str, autojump_clock: MockClock) -> None:
        """Owner, members, offers, queue order and transcript of every chat are as they were."""
        async with crashing(db_path) as (engine, handles):
            w = await every_state(engine, handles)
            before = await engine.inspect()
            lines = {k: await v.history() for k, v in w.visitors.items()}
        c = w.chats
        assert before.queues["sales"] == (c["D"], c["E"])
        assert before.chats[c["C"]].offer_agents == ("ann", "bob")
        assert before.chats[c["F"]].offer_agents == ("dee",)
        assert (before.chats[c["A"]].owner, before.chats[c["A"]].members) == ("ann", ("ann", "bob"))
        assert before.chats[c["B"]].state == "ending"

        async with crashing(db_path) as (engine, handles):
            after = await engine.inspect()
            same_ownership(before, after)
            check_invariants(after)
            assert all(not a.connected and a.recovering for a in after.agents.values())
            for letter, chat_id in c.items():
                again = await handles.enter_async_context(engine.resume_chat(chat_id))
                assert await again.history() == lines[letter], letter
        assert await all_tickets(db_path) == {}, "a crash ends no chat"
        assert await integrity(db_path) == [("ok",)]

    async def test_passed_deadlines_fire_once_at_start(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """Deadlines that passed while the engine was down fire at start, once; others keep."""
        async with crashing(db_path) as (engine, handles):
            w = await every_state(engine, handles)
        c = w.chats
        await trio.sleep(100)  # the engine is down for 100 s
        async with crashing(db_path) as (engine, handles):
            await settle()
            view = await engine.inspect()
            # D and E have 20 s of their 120 s queue wait left; I and F went back to the queue
            assert view.queues == {"sales": (c["D"], c["E"]), "support": (c["I"], c["F"], c["G"])}
            assert view.chats[c["A"]].members == ("ann", "bob")
            back = await resume_all(engine, handles, c, view)
            assert [e.kind for e in await back["I"].history()].count("requeued") == 1
        tickets = await all_tickets(db_path)
        ended = {
            letter: (t[0].kind, t[0].end_reason.value)
            for letter, chat_id in c.items()
            if (t := tickets.get(chat_id))
        }
        assert ended == {
            "B": (TicketKind.TRANSCRIPT, "agent_ended"),
            "H": (TicketKind.TRANSCRIPT, "visitor_left"),
            "C": (TicketKind.MISSED, "offer_timeout"),
        }
        b = tickets[c["B"]][0]
        assert [e.kind for e in b.entries][-2:] == ["ending", "ended"]

        async with crashing(db_path) as (engine, handles):  # again, with no time passing
            await settle()
            view = await engine.inspect()
            assert view.queues["support"] == (c["I"], c["F"], c["G"])
            back = await resume_all(engine, handles, c, view)
            assert [e.kind for e in await back["I"].history()].count("requeued") == 1
            await trio.sleep(19)
            assert (await engine.inspect()).queues["sales"] == (c["D"], c["E"])
            await trio.sleep(2)
            await settle()
            assert (await engine.inspect()).queues["sales"] == ()
        tickets = await all_tickets(db_path)
        assert all(len(ts) == 1 for ts in tickets.values()), "a ticket was written twice"
        assert {tickets[c[x]][0].end_reason.value for x in "DE"} == {"queue_timeout"}
        assert await integrity(db_path) == [("ok",)]

    async def test_shutdown_after_restart_tickets_every_chat_once(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """A restored engine that shuts down normally writes one ticket per chat, lines intact."""
        async with crashing(db_path) as (engine, handles):
            w = await every_state(engine, handles)
            lines = {k: await v.history() for k, v in w.visitors.items()}
        async with open_engine(CONFIG, db=db_path, synchronous="NORMAL"):
            pass
        tickets = await all_tickets(db_path)
        assert sorted(tickets) == sorted(w.chats.values())
        for letter, chat_id in w.chats.items():
            (ticket,) = tickets[chat_id]
            assert ticket.entries[: len(lines[letter])] == lines[letter]
            assert [e.seq for e in ticket.entries] == list(range(1, len(ticket.entries) + 1))
        a = tickets[w.chats["A"]][0]
        assert (a.kind, a.owner, a.agents) == (TicketKind.TRANSCRIPT, "ann", ("ann", "bob"))
        assert [(h.kind, h.to_agent, h.outcome) for h in a.handoffs] == [
            ("invite", "bob", "accepted")
        ]
        async with open_store(db_path) as store:
            live = await store.live_state()
        assert (live.chats, live.graces) == ((), {})


class TestReconnect:
    async def test_visitor_resumes_from_last_seq_and_resends_once(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """resume_chat works for a restored chat; a message resent with its id is not repeated."""
        async with crashing(db_path) as (engine, handles):
            ann = await handles.enter_async_context(engine.connect_agent("ann"))
            await ann.set_status("online")
            v = await handles.enter_async_context(
                engine.open_chat(department="sales", question="q", visitor=Visitor(name="Vi"))
            )
            await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
            seen = await v.send("first", client_msg_id="m-1")
            await ann.send(v.chat_id, "answer one", client_msg_id="a-1")
            await ann.send(v.chat_id, "answer two")
            chat_id = v.chat_id
        async with crashing(db_path) as (engine, _):
            async with engine.resume_chat(chat_id, last_seq=seen) as again:
                replay = [e.text for e in of_type(await drain(again), ChatMessage)]
                assert replay == ["answer one", "answer two"]
                assert await again.send("first", client_msg_id="m-1") == seen
                new = await again.send("second", client_msg_id="m-2")
                assert new == seen + 3
            async with engine.connect_agent("ann") as ann:
                assert await ann.send(chat_id, "answer one", client_msg_id="a-1") == seen + 1
                texts = [e.text for e in await ann.history(chat_id) if e.kind == "message"]
        assert texts == ["first", "answer one", "answer two", "second"]

    async def test_live_chats_keep_their_resume_key(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """What a frontend gave open_chat comes back with the chat, for a restarted gateway."""
        visitor = Visitor(name="Vi", email="vi@example.com")
        async with crashing(db_path) as (engine, handles):
            ann = await handles.enter_async_context(engine.connect_agent("ann"))
            await ann.set_status("online")
            v = await handles.enter_async_context(
                engine.open_chat(
                    department="sales", question="q", visitor=visitor, resume_key="hash-1"
                )
            )
            (before,) = await engine.live_chats()
        assert (before.chat_id, before.resume_key, before.visitor) == (v.chat_id, "hash-1", visitor)
        async with crashing(db_path) as (engine, _):
            assert await engine.live_chats() == (before,)

    async def test_agent_reconnects_within_grace(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """An agent back within its grace is told its chats and keeps them; its offer is shown
        again with what is left of its window, and can be accepted."""
        async with crashing(db_path) as (engine, handles):
            ann = await handles.enter_async_context(engine.connect_agent("ann"))
            await ann.set_status("online")
            first = await handles.enter_async_context(
                engine.open_chat(department="sales", question="one", visitor=Visitor(name="V1"))
            )
            await ann.accept((await offer_for(ann, first.chat_id)).offer_id)
            second = await handles.enter_async_context(
                engine.open_chat(department="sales", question="two", visitor=Visitor(name="V2"))
            )
            offer = await offer_for(ann, second.chat_id)
        await trio.sleep(10)
        async with crashing(db_path) as (engine, handles):
            for v in (first, second):
                await handles.enter_async_context(engine.resume_chat(v.chat_id))
            await trio.sleep(5)
            async with engine.connect_agent("ann") as ann:
                events = await drain(ann)
                assert of_type(events, ChatAssigned) == [
                    ChatAssigned(chat_id=first.chat_id, role="owner")
                ]
                (again,) = of_type(events, Offer)
                assert again.offer_id == offer.offer_id
                assert again.expires_in == pytest.approx(15)
                await trio.sleep(40)  # past the grace of a restart: nothing is taken away
                view = await engine.inspect()
                assert view.agents["ann"].chats == (first.chat_id,)
                assert second.chat_id not in view.chats  # its offer ran out: a missed chat
                await ann.send(first.chat_id, "still here")

    async def test_barged_supervisor_is_still_in_the_chat(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """A supervisor who barged in is still a participant after a crash: barging again from a
        new connection attaches it (the transcript replayed, no second `barged` line), and it
        writes to the visitor and the agent and reads the visitor's lines."""
        async with crashing(db_path) as (engine, handles):
            ann = await handles.enter_async_context(engine.connect_agent("ann"))
            await ann.set_status("online")
            v = await handles.enter_async_context(
                engine.open_chat(department="sales", question="q", visitor=Visitor(name="Vi"))
            )
            await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
            sue = await handles.enter_async_context(
                engine.connect_supervisor("supervisor:sue", name="Sue", departments=["sales"])
            )
            await sue.barge(v.chat_id)
            seen = await sue.send(v.chat_id, "Sue here")
            chat_id = v.chat_id
            await settle()
        async with crashing(db_path) as (engine, handles):
            v = await handles.enter_async_context(engine.resume_chat(chat_id, last_seq=seen))
            ann = await handles.enter_async_context(engine.connect_agent("ann"))
            await drain(ann)
            async with engine.connect_supervisor(
                "supervisor:sue", name="Sue", departments=["sales"]
            ) as sue:
                [row] = (await sue.desk()).chats  # the last line is known before anyone writes
                assert row.last_message_at is not None
                await sue.barge(chat_id)
                replay = [e for e in await drain(sue) if not isinstance(e, DeskChanged)]
                assert [e.text for e in of_type(replay, ChatMessage)] == ["Sue here"]
                barged = [e for e in of_type(replay, SystemEvent) if e.event == "barged"]
                assert len(barged) == 1  # the one of before the crash
                for handle in (v, ann):
                    assert [e for e in of_type(await drain(handle), SystemEvent)] == []
                await sue.send(chat_id, "still with you")
                for handle in (v, ann):
                    lines = of_type(await drain(handle), ChatMessage)
                    assert [(e.author, e.text) for e in lines] == [
                        ("supervisor:sue", "still with you")
                    ]
                await v.send("thanks")
                lines = of_type(await drain(sue), ChatMessage)
                assert [(e.author, e.text) for e in lines] == [("visitor", "thanks")]

    async def test_restored_offer_accepted(self, db_path: str, autojump_clock: MockClock) -> None:
        """An offer restored at start is the same offer: accepting it takes the chat."""
        async with crashing(db_path) as (engine, handles):
            ann = await handles.enter_async_context(engine.connect_agent("ann"))
            await ann.set_status("online")
            v = await handles.enter_async_context(
                engine.open_chat(department="sales", question="q", visitor=Visitor(name="V"))
            )
            offer = await offer_for(ann, v.chat_id)
        async with crashing(db_path) as (engine, _), engine.connect_agent("ann") as ann:
            assert await ann.accept(offer.offer_id) == v.chat_id
            view = await engine.inspect()
            assert (view.chats[v.chat_id].state, view.chats[v.chat_id].owner) == ("active", "ann")
            check_invariants(view)

    async def test_agent_not_back_loses_chats_after_grace(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """An agent that does not come back within its grace has its chats requeued."""
        async with crashing(db_path) as (engine, handles):
            ann = await handles.enter_async_context(engine.connect_agent("ann"))
            await ann.set_status("online")
            v = await handles.enter_async_context(
                engine.open_chat(department="sales", question="q", visitor=Visitor(name="V"))
            )
            await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
        async with crashing(db_path) as (engine, _):
            async with engine.resume_chat(v.chat_id):
                await trio.sleep(24)
                assert (await engine.inspect()).chats[v.chat_id].owner == "ann"
                await trio.sleep(2)
                await settle()
                view = await engine.inspect()
                assert (view.chats[v.chat_id].state, view.agents["ann"].load) == ("queued", 0)

    async def test_new_chats_queue_while_agents_come_back(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """Right after a restart nobody is connected: a new chat waits instead of being missed,
        and is offered once an agent connects."""
        async with crashing(db_path) as (engine, handles):
            ann = await handles.enter_async_context(engine.connect_agent("ann"))
            await ann.set_status("online")
        async with crashing(db_path) as (engine, _):
            async with engine.open_chat(
                department="sales", question="q", visitor=Visitor(name="V")
            ) as v:
                await settle()
                assert (await engine.inspect()).chats[v.chat_id].state == "queued"
                async with engine.connect_agent("ann") as ann:
                    offer = await offer_for(ann, v.chat_id)
                    await ann.accept(offer.offer_id)
                    events = [e.event for e in of_type(await drain(v), SystemEvent)]
                    assert events == ["joined"]


class TestUnrestorable:
    async def test_broken_chats_become_failed_tickets(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """A record that does not parse, one naming a department that is gone, and lines with no
        record each become a FAILED ticket with every line left; the other chats come back."""
        async with crashing(db_path) as (engine, handles):
            w = await every_state(engine, handles)
        c = w.chats

        def damage(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE live_chats SET record = '{not json' WHERE chat_id = ?", (c["A"],))
            conn.execute(
                "UPDATE live_chats SET record = replace(record, '\"support\"', '\"gone\"')"
                " WHERE chat_id = ?",
                (c["G"],),
            )
            conn.execute(
                "INSERT INTO live_entries VALUES ('ghost', 1, 1.0, 'message', 'visitor', 'hi', '')"
            )

        async with open_store(db_path) as store:
            lines_a = (await store.live_state()).chats
            await store.write(damage)
        a_lines = next(x.entries for x in lines_a if x.chat_id == c["A"])
        async with crashing(db_path) as (engine, _):
            view = await engine.inspect()
            assert set(view.chats) == set(c.values()) - {c["A"], c["G"]}
            check_invariants(view)
            assert view.agents["ann"].chats == (c["H"],)  # A is gone from its agents too
            with pytest.raises(EngineError):
                async with engine.resume_chat(c["A"]):
                    pass  # pragma: no cover
        tickets = await all_tickets(db_path)
        assert sorted(tickets) == sorted([c["A"], c["G"], "ghost"])
        assert {t[0].kind for t in tickets.values()} == {TicketKind.FAILED}
        assert tickets[c["A"]][0].entries == a_lines
        assert tickets[c["G"]][0].visitor.email == "G@example.com"
        assert tickets["ghost"][0].entries[0].text == "hi"
        async with open_store(db_path) as store:
            live = await store.live_state()
        assert {x.chat_id for x in live.chats} == set(c.values()) - {c["A"], c["G"]}


class TestJournalOff:
    async def test_nothing_journaled_and_nothing_restored(
        self, db_path: str, autojump_clock: MockClock
    ) -> None:
        """With the journal off, chats work as before, the journal stays empty, and a crash
        loses the live chats (the trade the flag is for)."""
        off = EngineConfig(
            departments=CONFIG.departments, agents=CONFIG.agents, journal=False, agent_grace=25
        )
        async with crashing(db_path, off) as (engine, handles):
            ann = await handles.enter_async_context(engine.connect_agent("ann"))
            await ann.set_status("online")
            v = await handles.enter_async_context(
                engine.open_chat(department="sales", question="q", visitor=Visitor(name="V"))
            )
            await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
            assert await v.send("hello") == 2
            async with open_store(db_path) as store:
                live = await store.live_state()
            assert (live.chats, live.graces) == ((), {})
        async with crashing(db_path, off) as (engine, _):
            assert (await engine.inspect()).chats == {}
            assert [a.status for a in await engine.agents() if a.id == "ann"] == ["online"]
