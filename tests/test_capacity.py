"""Capacity refused by the database (the router's Rule 1, engine.store.journal Rule 6).

The directory's capacity is lowered behind the engine's back, the way the command line does
(`helpline agent update` stores the agent, and a running daemon follows a while later): an accept
the engine's memory allows is refused by the store, the agent is told `capacity_full`, and the chat
goes on to another agent or waits in the queue. Every test runs on a SQLite file and on PostgreSQL
(skipped without HELPLINE_TEST_POSTGRES).
"""

from __future__ import annotations

import dataclasses

import pytest
from trio.testing import MockClock

import engine.store.seats
from engine import (
    Agent,
    ChatAssigned,
    Department,
    EngineConfig,
    EngineError,
    HandoffResult,
    OfferWithdrawn,
    RoutingMode,
    Store,
    TicketKind,
    Visitor,
    open_engine,
    open_store,
)

from .helpers import chat_with, check_invariants, drain, of_type, offer_for, settle
from .test_faults import Fault
from .test_recovery import all_tickets, crashing
from .test_store_capacity import claimed

CONFIG = EngineConfig(
    departments=(
        Department(id="sales", name="Sales", offer_window=30, queue_timeout=600),
        Department(id="support", name="Support", routing=RoutingMode.ASSIGNED, offer_window=30),
    ),
    agents=(
        Agent(id="ann", name="Ann", departments=("sales", "support"), capacity=2),
        Agent(id="bob", name="Bob", departments=("sales",), capacity=2),
    ),
)


async def lower_capacity(db: str, agent_id: str, capacity: int) -> None:
    """What `helpline agent update --capacity` writes, with no running engine told of it."""
    async with open_store(db) as store:
        await store_capacity(store, agent_id, capacity)


async def store_capacity(store: Store, agent_id: str, capacity: int) -> None:
    """The same through the engine's own store (quicker: no store to open while the virtual
    clock runs an offer's window), which tells its router nothing either."""
    (agent,) = [a for a in await store.agents() if a.id == agent_id]
    await store.save_agent(dataclasses.replace(agent, capacity=capacity))


@pytest.fixture
def db(store_url: str) -> str:
    return store_url


async def test_accept_refused_by_the_store_goes_to_another_agent(
    db: str, autojump_clock: MockClock
) -> None:
    async with open_engine(CONFIG, db=db) as e:
        async with e.connect_agent("ann") as ann, e.connect_agent("bob") as bob:
            await ann.set_status("online")
            async with chat_with(e, ann, "support") as v1:
                await lower_capacity(db, "ann", 1)
                await bob.set_status("online")
                async with e.open_chat(
                    department="sales", question="second", visitor=Visitor(name="V")
                ) as v2:
                    offer = await offer_for(ann, v2.chat_id)
                    assert (await e.inspect()).agents["ann"].capacity == 2  # memory allows it
                    with pytest.raises(EngineError) as err:
                        await ann.accept(offer.offer_id)
                    assert err.value.code == "capacity_full"
                    events = await drain(ann)
                    assert [w.reason for w in of_type(events, OfferWithdrawn)] == ["capacity"]
                    assert not of_type(events, ChatAssigned)
                    view = await e.inspect()
                    check_invariants(view)
                    assert view.chats[v2.chat_id].owner == ""
                    assert view.agents["ann"].capacity == 1  # learnt from the refusal
                    # the broadcast offer is still open to bob, who takes it
                    assert await bob.accept((await offer_for(bob, v2.chat_id)).offer_id)
                    view = await e.inspect()
                    check_invariants(view)
                    assert view.chats[v2.chat_id].owner == "bob"
                    assert view.chats[v1.chat_id].owner == "ann"


async def test_refused_chat_waits_in_the_queue_until_the_agent_frees(
    db: str, autojump_clock: MockClock
) -> None:
    """With nobody else to take it, a chat refused for capacity is queued (not missed) and
    offered to the agent again once one of its chats ends."""
    async with open_engine(CONFIG, db=db) as e:
        async with e.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with chat_with(e, ann, "support") as v1:
                await lower_capacity(db, "ann", 1)
                async with e.open_chat(
                    department="support", question="second", visitor=Visitor(name="V")
                ) as v2:
                    offer = await offer_for(ann, v2.chat_id)
                    with pytest.raises(EngineError) as err:
                        await ann.accept(offer.offer_id)
                    assert err.value.code == "capacity_full"
                    view = await e.inspect()
                    check_invariants(view)
                    assert view.chats[v2.chat_id].state == "queued"
                    with pytest.raises(EngineError) as err:
                        await ann.accept(offer.offer_id)  # that offer is gone for good
                    assert err.value.code == "stale_offer"
                    await ann.end_chat(v1.chat_id)
                    again = await offer_for(ann, v2.chat_id)
                    assert again.offer_id != offer.offer_id
                    assert await ann.accept(again.offer_id) == v2.chat_id
                    view = await e.inspect()
                    check_invariants(view)
                    assert view.chats[v2.chat_id].owner == "ann"
                    await ann.end_chat(v2.chat_id)
    tickets = await all_tickets(db)
    assert sorted(len(t) for t in tickets.values()) == [1, 1]  # each chat one ticket
    assert {t[0].kind for t in tickets.values()} == {TicketKind.TRANSCRIPT}


async def test_transfer_and_invite_refused_leave_the_chat_with_its_owner(
    db: str, autojump_clock: MockClock
) -> None:
    """A transfer or invite whose target the database finds full is declined: the owner keeps
    the chat and hears so; the target holds nothing new."""
    async with open_engine(CONFIG, db=db) as e:
        async with e.connect_agent("ann") as ann, e.connect_agent("bob") as bob:
            await ann.set_status("online")
            await bob.set_status("online")
            async with chat_with(e, ann) as va, chat_with(e, bob) as vb:
                await lower_capacity(db, "bob", 1)
                for kind in ("transfer", "invite"):
                    if kind == "transfer":
                        await ann.transfer(va.chat_id, to_agent="bob")
                    else:
                        await ann.invite(va.chat_id, to_agent="bob")
                    offer = await offer_for(bob, va.chat_id)
                    with pytest.raises(EngineError) as err:
                        await bob.accept(offer.offer_id)
                    assert err.value.code == "capacity_full"
                    results = of_type(await drain(ann), HandoffResult)
                    assert [(r.kind, r.outcome) for r in results] == [(kind, "declined")]
                    view = await e.inspect()
                    check_invariants(view)
                    assert view.chats[va.chat_id].members == ("ann",)
                    assert view.agents["bob"].chats == (vb.chat_id,)
                    # the next round: the engine is told 2 again (it learnt 1), the database 1
                    await e.add_agent(
                        Agent(id="bob", name="Bob", departments=("sales",), capacity=2)
                    )
                    await lower_capacity(db, "bob", 1)


async def test_a_failing_store_decides_no_accept(
    db: str, autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim the store cannot make (an I/O error, not a refusal) is answered
    store_unavailable and decides nothing: the offer stays open, and taking it again works once
    the store is back. (An accept claims its seat only when the offer's write could not reserve
    it: here the agent was full then, and its capacity is raised again before it accepts.)"""
    fault = Fault(monkeypatch, engine.store.seats, "claim")
    async with open_engine(CONFIG, db=db) as e:
        async with e.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with chat_with(e, ann, "support"):
                await lower_capacity(db, "ann", 1)
                async with e.open_chat(
                    department="sales", question="q", visitor=Visitor(name="V")
                ) as v:
                    offer = await offer_for(ann, v.chat_id)
                    await store_capacity(e.store, "ann", 2)
                    fault.on = True
                    with pytest.raises(EngineError) as err:
                        await ann.accept(offer.offer_id)
                    assert err.value.code == "store_unavailable"
                    view = await e.inspect()
                    assert (view.chats[v.chat_id].state, view.chats[v.chat_id].owner) == (
                        "offered",
                        "",
                    )
                    fault.on = False
                    assert await ann.accept(offer.offer_id) == v.chat_id
                    check_invariants(await e.inspect())


async def test_an_offer_reserves_the_seat_its_accept_takes(
    db: str, autojump_clock: MockClock
) -> None:
    """The write that makes an offer reserves a seat for each agent it is made to, so a
    capacity lowered after the offer does not take the chat from the agent who accepts it; a
    seat the offer no longer needs is given back with the chat's next record."""
    async with open_engine(CONFIG, db=db) as e:
        async with e.connect_agent("ann") as ann, e.connect_agent("bob") as bob:
            await ann.set_status("online")
            async with chat_with(e, ann, "support") as v1:
                await bob.set_status("online")
                async with e.open_chat(
                    department="sales", question="2", visitor=Visitor(name="B")
                ) as v2:
                    offer = await offer_for(ann, v2.chat_id)
                    await offer_for(bob, v2.chat_id)
                    await settle()
                    assert await seats_of(e.store, "ann") == sorted([v1.chat_id, v2.chat_id])
                    assert await seats_of(e.store, "bob") == [v2.chat_id]
                    await store_capacity(e.store, "ann", 1)  # a claim now would be refused
                    assert await ann.accept(offer.offer_id) == v2.chat_id
                    await settle()
                    assert await seats_of(e.store, "ann") == sorted([v1.chat_id, v2.chat_id])
                    assert await seats_of(e.store, "bob") == []  # the offer withdrawn from him
                    view = await e.inspect()
                    check_invariants(view)
                    assert view.chats[v2.chat_id].owner == "ann"


async def seats_of(store: Store, agent_id: str) -> list[str]:
    rows = await store.read(
        lambda c: list(
            c.execute("SELECT chat_id FROM live_members WHERE agent_id = ?", (agent_id,))
        )
    )
    return sorted(r[0] for r in rows)


async def test_a_seat_claimed_just_before_a_crash_is_given_back_at_restart(
    db: str, autojump_clock: MockClock
) -> None:
    """A claim committed for an accept that a crash cut short (never recorded) does not count
    against the agent after a restart: the restored records say who holds what, their open
    offers' seats included."""
    async with crashing(db, CONFIG) as (e, handles):
        ann = await handles.enter_async_context(e.connect_agent("ann"))
        await ann.set_status("online")
        v1 = await handles.enter_async_context(
            e.open_chat(department="support", question="1", visitor=Visitor(name="A"))
        )
        await ann.accept((await offer_for(ann, v1.chat_id)).offer_id)
        v2 = await handles.enter_async_context(
            e.open_chat(department="support", question="2", visitor=Visitor(name="B"))
        )
        await offer_for(ann, v2.chat_id)
        await settle()
    async with open_store(db) as store:
        assert await claimed(store, v1.chat_id, "bob") is None  # bob was never offered v1
        assert await seats_of(store, "bob") == [v1.chat_id]
        assert await seats_of(store, "ann") == sorted([v1.chat_id, v2.chat_id])  # v2 reserved
    async with crashing(db, CONFIG) as (e, _):
        await settle()
        assert await seats_of(e.store, "bob") == []
        assert await seats_of(e.store, "ann") == sorted([v1.chat_id, v2.chat_id])
        view = await e.inspect()
        check_invariants(view)
        assert view.chats[v1.chat_id].owner == "ann"
        assert view.chats[v2.chat_id].owner == ""
