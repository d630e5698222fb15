"""Capacity in the database (engine.store.journal, Rule 6), run against every store.

A claim gives an agent a seat in a live chat in a transaction that counts the agent's seats in
every live chat and refuses (``over_capacity``) one that would pass its capacity in the directory,
leaving nothing behind. Writing a record mirrors its members without checking, so a restored chat
keeps its agent even above a lowered capacity; storing a ticket gives the chat's seats back.
"""

from __future__ import annotations

import trio

from engine import Agent, Store, StoreError, open_store
from engine.store.journal import JournalBatch

from .test_store_contract import make_ticket, store, submitted

__all__ = ["store"]  # the fixture, parametrised over every store


async def claimed(store: Store, chat_id: str, agent_id: str) -> object:
    """Claim a seat and wait for the callback's outcome (None, or the error)."""
    done = trio.Event()
    box: list[object] = []

    def on_done(outcome: object) -> None:
        box.append(outcome)
        done.set()

    store.submit_claim(chat_id, agent_id, on_done)
    await done.wait()
    return box[0]


async def seats(store: Store, agent_id: str) -> list[str]:
    rows = await store.read(
        lambda c: list(
            c.execute(
                "SELECT chat_id FROM live_members WHERE agent_id = ? ORDER BY chat_id", (agent_id,)
            )
        )
    )
    return [r[0] for r in rows]


def record(chat_id: str, members: tuple[str, ...]) -> JournalBatch:
    return JournalBatch(chats=((chat_id, "{}"),), members=((chat_id, members),))


class TestClaims:
    async def test_a_claim_over_capacity_is_refused_and_leaves_nothing(self, store: Store) -> None:
        await store.save_agent(Agent(id="ann", name="Ann", departments=(), capacity=2))
        assert await claimed(store, "c1", "ann") is None
        assert await claimed(store, "c2", "ann") is None
        refused = await claimed(store, "c3", "ann")
        assert isinstance(refused, StoreError)
        assert refused.code == "over_capacity"
        assert await seats(store, "ann") == ["c1", "c2"]
        assert await claimed(store, "c2", "ann") is None  # a seat held is not counted twice
        await store.save_agent(Agent(id="ann", name="Ann", departments=(), capacity=3))
        assert await claimed(store, "c3", "ann") is None  # the directory's capacity, read now
        assert await seats(store, "ann") == ["c1", "c2", "c3"]

    async def test_an_unknown_agent_gets_no_seat(self, store: Store) -> None:
        refused = await claimed(store, "c1", "nobody")
        assert isinstance(refused, StoreError)
        assert refused.code == "not_found"
        assert await seats(store, "nobody") == []

    async def test_records_mirror_members_unchecked_and_tickets_free_seats(
        self, store: Store
    ) -> None:
        """A restored chat keeps its agent above a lowered capacity; only a new claim is
        refused; the chat's next record drops a seat it no longer has, its ticket all of them."""
        await store.save_agent(Agent(id="ann", name="Ann", departments=(), capacity=1))
        await store.save_agent(Agent(id="bob", name="Bob", departments=(), capacity=5))
        assert await submitted(store, record("c1", ("ann",))) is None
        assert await submitted(store, record("c2", ("ann", "bob"))) is None
        assert await seats(store, "ann") == ["c1", "c2"]  # over capacity, written all the same
        refused = await claimed(store, "c3", "ann")
        assert isinstance(refused, StoreError)
        assert refused.code == "over_capacity"
        assert await submitted(store, record("c2", ("bob",))) is None
        assert await seats(store, "ann") == ["c1"]
        await store.save_ticket(make_ticket("c1", agents=("ann",)))
        assert await seats(store, "ann") == []
        assert await claimed(store, "c3", "ann") is None
        await store.save_ticket(make_ticket("c2", agents=("bob",)))
        assert await seats(store, "bob") == []
        # a late record of a chat that has its ticket gives nobody a seat
        assert await submitted(store, record("c2", ("bob",))) is None
        assert await seats(store, "bob") == []


async def test_concurrent_claims_never_pass_capacity(store_url: str) -> None:
    """Two stores on one database (two nodes, or a node and an old lease holder) claiming for
    one agent at once: the agent's row lock serialises them, so exactly its capacity succeed."""
    capacity, per_store = 4, 6
    async with open_store(store_url) as first, open_store(store_url) as second:
        await first.save_agent(Agent(id="ann", name="Ann", departments=(), capacity=capacity))
        outcomes: list[object] = []

        async def claim_all(s: Store, prefix: str) -> None:
            async with trio.open_nursery() as nursery:
                for i in range(per_store):

                    async def one(chat_id: str = f"{prefix}{i}") -> None:
                        outcomes.append(await claimed(s, chat_id, "ann"))

                    nursery.start_soon(one)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(claim_all, first, "a")
            nursery.start_soon(claim_all, second, "b")
        assert len(outcomes) == 2 * per_store
        assert sum(o is None for o in outcomes) == capacity
        refusals = [o for o in outcomes if o is not None]
        assert all(isinstance(o, StoreError) and o.code == "over_capacity" for o in refusals)
        assert len(await seats(first, "ann")) == capacity
