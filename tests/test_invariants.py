"""Random operation sequences against a real engine; DESIGN.md's invariants after each step.

Hypothesis generates a list of operations (chat requests, status changes, connects and
disconnects, accepts, declines, transfers, invites, messages, endings, visitors leaving, clock
jumps, and crashes: the engine is left without shutdown, maybe stays down a while, and a new one is
opened on the same file). Each list runs in a fresh engine over a fresh SQLite file under trio's
autojump clock; the store runs without threads (``threads=False``), so that the thousands of writes
of a run do not each wait for a thread while the clock is held (the threaded writer has tests of
its own). After every step the router's picture must satisfy invariants 1 and 3; a crash with
no downtime must bring back exactly the picture and the transcripts it interrupted. At the end (a
last engine restores what is live and shuts down) every chat requested must have exactly one
ticket (invariant 2), with its lines numbered 1..n in one order that every participant saw
(invariant 5), and the journal must be empty.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from engine import (
    AgentConnection,
    ChatMessage,
    Engine,
    EngineConfig,
    EngineError,
    Offer,
    SystemEvent,
    Visitor,
    VisitorChat,
    hold_clock_for_store,
    open_engine,
    open_store,
)

from .conftest import AGENTS, DEPARTMENTS
from .helpers import check_invariants

AGENT_IDS = [a.id for a in AGENTS]
DEPT_IDS = [d.id for d in DEPARTMENTS]

opens = st.tuples(st.just("open"), st.sampled_from(DEPT_IDS))
accepts = st.tuples(st.just("accept"), st.sampled_from(AGENT_IDS), st.integers(0, 5))
ops = st.one_of(
    opens,
    opens,
    accepts,
    accepts,
    st.tuples(st.just("status"), st.sampled_from(AGENT_IDS), st.booleans()),
    st.tuples(st.just("connect"), st.sampled_from(AGENT_IDS), st.booleans()),
    st.tuples(st.just("accept"), st.sampled_from(AGENT_IDS), st.integers(0, 5)),
    st.tuples(st.just("decline"), st.sampled_from(AGENT_IDS), st.integers(0, 5)),
    st.tuples(st.just("say"), st.sampled_from([*AGENT_IDS, "visitor"]), st.integers(0, 5)),
    st.tuples(
        st.just("transfer"),
        st.sampled_from(AGENT_IDS),
        st.integers(0, 5),
        st.sampled_from(AGENT_IDS + DEPT_IDS),
    ),
    st.tuples(
        st.just("invite"), st.sampled_from(AGENT_IDS), st.integers(0, 5), st.sampled_from(AGENT_IDS)
    ),
    st.tuples(st.just("cancel_handoff"), st.sampled_from(AGENT_IDS), st.integers(0, 5)),
    st.tuples(
        st.just("end"), st.sampled_from(AGENT_IDS), st.integers(0, 5), st.sampled_from([0, 0, 30])
    ),
    st.tuples(st.just("cancel_end"), st.sampled_from(AGENT_IDS), st.integers(0, 5)),
    st.tuples(st.just("leave"), st.integers(0, 5)),
    st.tuples(st.just("sleep"), st.sampled_from([1, 10, 20, 31, 60, 200])),
    st.tuples(st.just("crash"), st.sampled_from([0, 0, 10, 40])),  # seconds down
)
CONFIG = EngineConfig(
    departments=DEPARTMENTS, agents=AGENTS, handoff_timeout=45, visitor_grace=15, agent_grace=25
)


class World:
    """The test's side: connections, visitor handles, and everything each of them received."""

    def __init__(self) -> None:
        self.stack = contextlib.AsyncExitStack()
        self.agents: dict[str, AgentConnection] = {}
        self.chats: dict[str, VisitorChat] = {}
        self.requested: list[str] = []
        self.offers: dict[str, list[str]] = {a: [] for a in AGENT_IDS}
        self.seen: dict[tuple[str, str], list[int]] = {}  # (reader, chat) -> seqs in arrival order
        self.done: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.left: set[str] = set()  # chats whose visitor said goodbye

    def collect(self) -> None:
        readers: list[tuple[str, Any]] = [(a, c) for a, c in self.agents.items()]
        readers += [(f"visitor:{cid}", v) for cid, v in self.chats.items()]
        for name, handle in readers:
            for event in handle.pending_events():
                if isinstance(event, Offer) and name in self.offers:
                    self.offers[name].append(event.offer_id)
                if isinstance(event, ChatMessage | SystemEvent):
                    self.seen.setdefault((name, event.chat_id), []).append(event.seq)


def pick(items: list[str], i: int) -> str:
    return items[i % len(items)] if items else "none"


async def step(engine: Any, world: World, op: tuple[Any, ...]) -> None:
    kind = op[0]
    view = await engine.inspect()
    live = sorted(view.chats)
    if kind not in ("open", "leave", "sleep") and op[1] in view.agents:
        # an agent mostly acts on its own chats; now and then on any chat (to be refused)
        mine = sorted(view.agents[op[1]].chats)
        live = mine if mine and len(op) > 2 and op[2] < 4 else live
    if kind == "open":
        cm = engine.open_chat(department=op[1], question="q", visitor=Visitor(name="V"))
        chat = await world.stack.enter_async_context(cm)
        world.chats[chat.chat_id] = chat
        world.requested.append(chat.chat_id)
    elif kind == "status":
        if op[1] in world.agents:
            await world.agents[op[1]].set_status("online" if op[2] else "offline")
    elif kind == "connect":
        if op[2] and op[1] not in world.agents:
            world.agents[op[1]] = await world.stack.enter_async_context(engine.connect_agent(op[1]))
        elif not op[2] and op[1] in world.agents:
            await world.agents.pop(op[1]).__aexit__(None, None, None)
    elif kind in ("accept", "decline"):
        conn = world.agents.get(op[1])
        if conn is not None:
            offer_id = pick(world.offers[op[1]][-3:], op[2])
            await (conn.accept(offer_id) if kind == "accept" else conn.decline(offer_id))
    elif kind == "say":
        chat_id = pick(live, op[2])
        if op[1] == "visitor" and chat_id in world.chats:
            await world.chats[chat_id].send("hello")
        elif op[1] in world.agents:
            await world.agents[op[1]].send(chat_id, "hi")
    elif kind in ("transfer", "invite") and op[1] in world.agents:
        conn = world.agents[op[1]]
        target = op[3]
        if kind == "invite":
            await conn.invite(pick(live, op[2]), to_agent=target)
        elif target in DEPT_IDS:
            await conn.transfer(pick(live, op[2]), to_department=target)
        else:
            await conn.transfer(pick(live, op[2]), to_agent=target)
    elif kind == "cancel_handoff" and op[1] in world.agents:
        await world.agents[op[1]].cancel_handoff(pick(live, op[2]))
    elif kind == "end" and op[1] in world.agents:
        await world.agents[op[1]].end_chat(pick(live, op[2]), delay=op[3])
    elif kind == "cancel_end" and op[1] in world.agents:
        await world.agents[op[1]].cancel_end(pick(live, op[2]))
    elif kind == "leave":
        chat_id = pick(sorted(world.chats), op[1])
        if chat_id in world.chats:
            await world.chats[chat_id].leave()
            world.left.add(chat_id)
    elif kind == "sleep":
        await trio.sleep(op[1])


class Run:
    """The engine of the moment (each crash replaces it) and the test's side of things."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.world = World()
        self.engines = contextlib.AsyncExitStack()
        self.engine: Engine | None = None

    async def open(self) -> Engine:
        self.engines = contextlib.AsyncExitStack()
        self.engine = await self.engines.enter_async_context(
            open_engine(
                CONFIG, db=self.db, synchronous="OFF", end_chats_on_exit=False, threads=False
            )
        )
        return self.engine


async def crash_and_recover(run: Run, downtime: int) -> None:
    """Leave the engine as a crash would, stay down `downtime` s, open a new one, reconnect."""
    engine, world = run.engine, run.world
    assert engine is not None
    world.collect()
    before = await engine.inspect()
    lines = {chat_id: await engine.transcript(chat_id) for chat_id in before.chats}
    connected = sorted(world.agents)
    await run.engines.aclose()
    await world.stack.aclose()  # what these handles say reaches nobody: their engine is gone
    world.stack = contextlib.AsyncExitStack()
    world.agents, world.chats = {}, {}
    await trio.sleep(downtime)
    engine = await run.open()
    await trio.testing.wait_all_tasks_blocked()  # deadlines that passed meanwhile have fired
    after = await engine.inspect()
    check_invariants(after)
    if not downtime:
        assert after.chats == before.chats
        assert after.queues == before.queues
        for agent_id, agent in after.agents.items():
            was = before.agents[agent_id]
            assert (agent.status, agent.chats, agent.offers) == (was.status, was.chats, was.offers)
        for chat_id, was_lines in lines.items():
            assert await engine.transcript(chat_id) == was_lines
    for agent_id in connected:
        world.agents[agent_id] = await world.stack.enter_async_context(
            engine.connect_agent(agent_id)
        )
    for chat_id in sorted(after.chats):
        seen = world.seen.get((f"visitor:{chat_id}", chat_id), [0])
        if chat_id not in world.left:
            with contextlib.suppress(EngineError):  # unless it ended meanwhile
                world.chats[chat_id] = await world.stack.enter_async_context(
                    engine.resume_chat(chat_id, last_seq=max(seen))
                )


async def scenario(db: Path, online: set[str], operations: list[tuple[Any, ...]]) -> None:
    run = Run(db)
    try:
        await run_operations(run, online, operations)
    except BaseException:
        with trio.CancelScope(shield=True):  # no engine may outlive a failed example
            await run.world.stack.aclose()
            await run.engines.aclose()
        raise
    await check_outcome(run)


async def run_operations(run: Run, online: set[str], operations: list[tuple[Any, ...]]) -> None:
    world = run.world
    engine = await run.open()
    for agent_id in sorted(online):
        await step(engine, world, ("connect", agent_id, True))
        with contextlib.suppress(EngineError):  # dee's department has chat off
            await step(engine, world, ("status", agent_id, True))
    for op in operations:
        try:
            if op[0] == "crash":
                await crash_and_recover(run, op[1])
                engine = run.engine
                assert engine is not None
            else:
                await step(engine, world, op)
            world.done[op[0]] = world.done.get(op[0], 0) + 1
        except EngineError as exc:
            world.refused[exc.code] = world.refused.get(exc.code, 0) + 1
        await trio.testing.wait_all_tasks_blocked()
        world.collect()
        check_invariants(await engine.inspect())
    # every connection closes; then the engine goes, and a last one restores what is still live
    # and ends it at shutdown (leaving its block)
    await world.stack.aclose()
    await trio.testing.wait_all_tasks_blocked()
    world.collect()
    await run.engines.aclose()


async def check_outcome(run: Run) -> None:
    db, world = run.db, run.world
    async with open_engine(CONFIG, db=db, synchronous="OFF", threads=False):
        pass
    async with open_store(db) as again:
        tickets = await again.tickets(limit=1000)
        integrity = await again.read(lambda c: c.execute("PRAGMA integrity_check").fetchall())
        live = await again.live_state()
    assert integrity == [("ok",)]
    assert (live.chats, live.graces) == ((), {}), "the journal outlived its chats"
    by_chat: dict[str, int] = {}
    for t in tickets:
        by_chat[t.chat_id] = by_chat.get(t.chat_id, 0) + 1
        assert [e.seq for e in t.entries] == list(range(1, len(t.entries) + 1))
    assert sorted(by_chat) == sorted(world.requested), "a requested chat has no ticket"
    assert set(by_chat.values()) <= {1}, "a chat was written twice"
    for name in world.done:
        note_event(f"ran {name}")
    for code in world.refused:
        note_event(f"refused {code}")
    for kind in {t.end_reason.value for t in tickets}:
        note_event(f"ticket {kind}")
    for (reader, chat_id), seqs in world.seen.items():
        # a newcomer is sent the lines so far; every line must first arrive in sequence order
        firsts = list(dict.fromkeys(seqs))
        assert firsts == sorted(firsts), f"{reader} saw {chat_id} out of order: {seqs}"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    online=st.sets(st.sampled_from(AGENT_IDS)),
    operations=st.lists(ops, min_size=10, max_size=40),
)
def test_invariants_hold_under_random_operations(
    online: set[str], operations: list[tuple[Any, ...]]
) -> None:
    """Any sequence of operations keeps ownership, capacity, offers, tickets and order sound."""
    with tempfile.TemporaryDirectory() as tmp, hold_clock_for_store():
        trio.run(
            scenario,
            Path(tmp) / "h.db",
            online,
            operations,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
