"""Capacity in the database (engine.store.journal, Rule 6), run against every store.

A claim gives an agent a seat in a live chat in a transaction that counts the agent's seats in
every live chat and refuses (``over_capacity``) one that would pass its capacity in the directory,
leaving nothing behind. Writing a record mirrors its members without checking, so a restored chat
keeps its agent even above a lowered capacity, and reserves a seat for each agent its open offer is
made to, checked like a claim; storing a ticket gives the chat's seats back.
"""

from __future__ import annotations

import json

import trio

from engine import Agent, Store, StoreError, open_store
from engine.store.contract import Connection
from engine.store.journal import ChatRow, JournalBatch
from engine.store.migrate import migrations
from engine.store.url import parse_store_url

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


async def counts_match(store: Store) -> None:
    """The triggers' counts (`agent_seats`) say what counting `live_members` says."""

    def both(c: Connection) -> tuple[dict[str, int], dict[str, int]]:
        rows = c.execute("SELECT agent_id, count(*) FROM live_members GROUP BY agent_id")
        counted = {r[0]: int(r[1]) for r in rows}
        rows = c.execute("SELECT agent_id, seats FROM agent_seats WHERE seats <> 0")
        return counted, {r[0]: int(r[1]) for r in rows}

    counted, kept = await store.read(both)
    assert counted == kept


async def seat_counts(store: Store) -> list[tuple[str, int]]:
    """Each agent's count of seats as the triggers keep it (`agent_seats`), by agent."""
    return await store.read(
        lambda c: sorted(
            (r[0], int(r[1])) for r in c.execute("SELECT agent_id, seats FROM agent_seats")
        )
    )


def record(chat_id: str, members: tuple[str, ...], offered: tuple[str, ...] = ()) -> JournalBatch:
    return JournalBatch(
        chats=(ChatRow(chat_id, "{}"),),
        members=((chat_id, members),),
        reserved=((chat_id, offered),) if offered else (),
    )


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
        await counts_match(store)

    async def test_an_offer_reserves_seats_checked_against_capacity(self, store: Store) -> None:
        """The agents a record's open offer is made to get a seat each, checked like a claim:
        one that is full gets none and is reported in the write's outcome, which still
        commits; a seat held is kept however the capacity changes; a seat no longer reserved is
        given back."""
        await store.save_agent(Agent(id="ann", name="Ann", departments=(), capacity=1))
        await store.save_agent(Agent(id="bob", name="Bob", departments=(), capacity=2))
        assert await submitted(store, record("c1", ("ann",))) is None
        assert await submitted(store, record("c2", (), ("ann", "bob"))) == (("c2", "ann"),)
        assert await seats(store, "ann") == ["c1"]
        assert await seats(store, "bob") == ["c2"]
        assert await submitted(store, record("c3", (), ("nobody", "bob"))) == (("c3", "nobody"),)
        assert await seats(store, "bob") == ["c2", "c3"]
        assert await submitted(store, record("c4", (), ("bob",))) == (("c4", "bob"),)  # full
        await store.save_agent(Agent(id="bob", name="Bob", departments=(), capacity=1))
        assert await submitted(store, record("c2", ("bob",))) is None  # taken: kept, unchecked
        assert await submitted(store, record("c3", ())) is None  # no longer offered
        assert await seats(store, "bob") == ["c2"]
        assert await claimed(store, "c3", "bob") is not None  # the directory says 1
        await counts_match(store)


async def test_concurrent_claims_never_pass_capacity(store_url: str) -> None:
    """Three stores on one database (three nodes, or a holder and old ones that lost the lease)
    claiming seats for one agent at once, agent after agent: the agent's row lock serialises
    the claims, so exactly its capacity of them succeed, whatever the interleaving."""
    agents, capacity, per_store = ("ann", "bob", "cid"), 20, 60
    async with (
        open_store(store_url) as first,
        open_store(store_url) as second,
        open_store(store_url) as third,
    ):
        for agent_id in agents:
            await first.save_agent(
                Agent(id=agent_id, name=agent_id, departments=(), capacity=capacity)
            )
        for agent_id in agents:
            outcomes: list[object] = []

            async def one(
                s: Store, chat_id: str, who: str = agent_id, into: list[object] = outcomes
            ) -> None:
                into.append(await claimed(s, chat_id, who))

            async with trio.open_nursery() as nursery:
                for i in range(per_store):
                    for s, prefix in ((first, "a"), (second, "b"), (third, "c")):
                        nursery.start_soon(one, s, f"{prefix}{i}")
            assert len(outcomes) == 3 * per_store
            assert sum(o is None for o in outcomes) == capacity, agent_id
            refusals = [o for o in outcomes if o is not None]
            assert all(isinstance(o, StoreError) and o.code == "over_capacity" for o in refusals)
            assert len(await seats(first, agent_id)) == capacity
        await counts_match(first)


async def test_the_migration_fills_seats_from_the_journaled_records(store_url: str) -> None:
    """A journal written before `live_members` existed: its records' members become seats, and
    the agents' counts of seats (`agent_seats`) follow; a record that does not parse, or whose
    members are not a list, gives none."""
    backend = parse_store_url(store_url).kind
    (members,) = [m for m in migrations(backend) if "live_members" in m.name]
    async with open_store(store_url) as store:

        def as_before(c: Connection) -> None:
            c.execute("DROP TABLE agent_seats")
            c.execute("DROP TABLE live_members")
            if backend == "postgresql":
                c.execute("DROP FUNCTION helpline_count_seats()")
            for chat_id, doc in (
                ("c1", json.dumps({"members": ["ann", "bob"]})),
                ("c2", "not json"),
                ("c3", json.dumps({"members": "ann"})),
                ("c4", json.dumps({"members": ["ann"]})),
            ):
                c.execute("INSERT INTO live_chats (chat_id, record) VALUES (?, ?)", (chat_id, doc))
            c.execute("UPDATE schema_version SET version = ?", (members.version - 1,))

        await store.write(as_before)
    async with open_store(store_url) as store:
        assert store.migrated_from == members.version - 1
        rows = await store.read(
            lambda c: sorted(
                tuple(r) for r in c.execute("SELECT agent_id, chat_id FROM live_members")
            )
        )
        assert rows == [("ann", "c1"), ("ann", "c4"), ("bob", "c1")]
        assert await seat_counts(store) == [("ann", 2), ("bob", 1)]
        # and the triggers keep counting from there
        assert await submitted(store, record("c1", ("bob",))) is None
        assert await seat_counts(store) == [("ann", 1), ("bob", 1)]
