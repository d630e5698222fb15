"""In-process scenarios: message throughput and chat setup, each against bare trio channels.

Both open a real engine (`open_engine`) over a real SQLite file in a temporary directory, with the
synchronous mode of `bench._common.SYNCHRONOUS`, and drive it through the embedding API the way an
embedding application would. The baseline runs in the same trio run, interleaved round by round.

Message throughput
    100 chats, each accepted by one of 10 agents. Every visitor sends its share of the messages
    as fast as the engine answers (`VisitorChat.send` waits for the sequence number); the figure is
    visitor messages that reached the agents' event streams per second. Readers drain their
    queue in batches (`next_event` then `pending_events`), as a WebSocket gateway does. The
    baseline pushes the same number of messages through a bare chain of three trio tasks joined
    by memory channels of the engine's mailbox (1024) and outbound queue (256) sizes. In the
    same run, `throughput-pipelined` has each visitor keep 4 lines in flight with
    `VisitorChat.post` instead (as the daemon's connections do for their clients), so a chat's
    lines share commits; the chain's producer does not wait for an answer either.

Chat setup
    One chat at a time: the visitor opens it, the offer reaches the agents, one agent accepts, and
    the accept returns (the chat is active). Broadcast offers go to every online agent of the
    department (4) and one of them accepts, in turn; assigned offers go to one agent. Chats stay
    open until the round ends so that no ticket write overlaps a measurement. The baseline is two
    trio tasks ping-ponging over memory channels of size 1 (an ask's reply channel); its figure is
    round trips per second.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import trio

from engine import (
    Agent,
    AgentConnection,
    ChatMessage,
    Department,
    Engine,
    EngineConfig,
    EngineError,
    Offer,
    RoutingMode,
    SystemEvent,
    Visitor,
    VisitorChat,
    open_engine,
)

from ._common import SYNCHRONOUS, Result, RunConfig, Target, ainterleave, progress, temp_db

WINDOW = 4  # lines in flight per visitor in the pipelined throughput, as the daemon's fleet keeps
Side = Callable[[], Awaitable[float]]

VISITOR = Visitor(name="Vera", email="vera@example.com", browser="Firefox", os="Linux")
TEXT = "Hello, I have a question about my order."


# --- baselines ------------------------------------------------------------------------------------


async def chain_rate(n: int, first: int = 1024, second: int = 256) -> float:
    """Messages per second through three trio tasks joined by two memory channels."""
    send1, recv1 = trio.open_memory_channel[int](first)
    send2, recv2 = trio.open_memory_channel[int](second)
    done = trio.Event()

    async def produce() -> None:
        async with send1:
            for i in range(n):
                await send1.send(i)

    async def forward() -> None:
        async with recv1, send2:
            async for item in recv1:
                await send2.send(item)

    async def consume() -> None:
        count = 0
        async with recv2:
            async for _ in recv2:
                count += 1
        assert count == n
        done.set()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        nursery.start_soon(forward)
        nursery.start_soon(produce)
        await done.wait()
    return n / (time.perf_counter() - start)


async def ping_pong_rate(n: int) -> float:
    """Round trips per second between two trio tasks over memory channels of size 1."""
    ping_send, ping_recv = trio.open_memory_channel[int](1)
    pong_send, pong_recv = trio.open_memory_channel[int](1)

    async def echo() -> None:
        async with ping_recv, pong_send:
            async for item in ping_recv:
                await pong_send.send(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        start = time.perf_counter()
        async with ping_send:
            for i in range(n):
                await ping_send.send(i)
                await pong_recv.receive()
        elapsed = time.perf_counter() - start
    return n / elapsed


# --- helpers --------------------------------------------------------------------------------------


def agents_for(
    prefix: str, departments: tuple[str, ...], count: int, capacity: int
) -> tuple[Agent, ...]:
    return tuple(
        Agent(id=f"{prefix}{i}", name=f"Agent {i}", departments=departments, capacity=capacity)
        for i in range(count)
    )


async def accept_all(conn: AgentConnection) -> None:
    """Accept every chat offer this agent gets (for setting chats up before a measurement)."""
    while True:
        events = [await conn.next_event(), *conn.pending_events()]
        for event in events:
            if isinstance(event, Offer):
                try:
                    await conn.accept(event.offer_id)
                except EngineError as exc:
                    if exc.code not in ("offer_taken", "stale_offer"):
                        raise


async def wait_joined(chat: VisitorChat) -> None:
    """Wait until an agent joined the visitor's chat; discard the events before it."""
    while True:
        event = await chat.next_event()
        if isinstance(event, SystemEvent) and event.event == "joined":
            return


async def open_active_chats(
    engine: Engine,
    stack: AsyncExitStack,
    department: str,
    n: int,
    concurrency: int = 32,
    on_progress: Callable[[int], None] | None = None,
) -> list[VisitorChat]:
    """Open `n` chats and wait until each is active; agents must be accepting meanwhile."""
    chats: list[VisitorChat] = []
    limiter = trio.CapacityLimiter(concurrency)

    async def one(i: int) -> None:
        async with limiter:
            chat = await stack.enter_async_context(
                engine.open_chat(department=department, question=f"q{i}", visitor=VISITOR)
            )
            await wait_joined(chat)
            chats.append(chat)
            if on_progress is not None and len(chats) % 1000 == 0:
                on_progress(len(chats))

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return chats


# --- message throughput ---------------------------------------------------------------------------


async def _throughput(
    db: Path,
    n_chats: int,
    n_agents: int,
    n_messages: int,
    rounds: int,
    *,
    journal: bool = True,
    window: int = 0,
) -> dict[str, list[float]]:
    """Samples of the baseline and of helpline (each visitor waits for every line's `seq`), and
    with `window`, of "pipelined" (each visitor keeps `window` lines in flight with `post`)."""
    per_chat = max(1, n_messages // n_chats)
    total = per_chat * n_chats
    capacity = math.ceil(n_chats / n_agents)
    config = EngineConfig(
        departments=(Department(id="d", name="D", routing=RoutingMode.ASSIGNED, offer_window=600),),
        agents=agents_for("a", ("d",), n_agents, capacity),
        journal=journal,
    )
    async with open_engine(config, db=db, synchronous=SYNCHRONOUS) as engine:
        async with AsyncExitStack() as stack, trio.open_nursery() as nursery:
            conns = [
                await stack.enter_async_context(engine.connect_agent(a.id)) for a in config.agents
            ]
            for conn in conns:
                await conn.set_status("online")
            async with trio.open_nursery() as accepting:
                for conn in conns:
                    accepting.start_soon(accept_all, conn)
                chats = await open_active_chats(engine, stack, "d", n_chats)
                accepting.cancel_scope.cancel()
            for conn in conns:
                conn.pending_events()

            delivered = 0
            goal = 0
            finished = trio.Event()

            async def agent_reader(conn: AgentConnection) -> None:
                nonlocal delivered
                while True:
                    for event in [await conn.next_event(), *conn.pending_events()]:
                        if isinstance(event, ChatMessage) and event.author == "visitor":
                            delivered += 1
                    if delivered >= goal:
                        finished.set()

            async def visitor_reader(chat: VisitorChat) -> None:
                while True:  # the visitor sees its own lines too; a real widget reads them
                    await chat.next_event()
                    chat.pending_events()

            async def visitor(chat: VisitorChat) -> None:
                for _ in range(per_chat):
                    await chat.send(TEXT)

            for conn in conns:
                nursery.start_soon(agent_reader, conn)
            for chat in chats:
                nursery.start_soon(visitor_reader, chat)

            async def pipelined_visitor(chat: VisitorChat) -> None:
                in_flight = 0
                room = trio.Event()
                refused: list[EngineError] = []

                def answered(value: int | EngineError) -> None:  # called by the session
                    nonlocal in_flight
                    in_flight -= 1
                    if isinstance(value, EngineError):
                        refused.append(value)
                    room.set()

                for _ in range(per_chat):
                    while in_flight >= window:
                        room = trio.Event()
                        await room.wait()
                    if refused:
                        raise refused[0]
                    in_flight += 1
                    await chat.post(TEXT, then=answered)

            def rate_of(sender: Callable[[VisitorChat], Awaitable[None]]) -> Side:
                async def run() -> float:
                    nonlocal goal, finished
                    goal = delivered + total
                    finished = trio.Event()
                    start = time.perf_counter()
                    async with trio.open_nursery() as senders:
                        for chat in chats:
                            senders.start_soon(sender, chat)
                    await finished.wait()
                    return total / (time.perf_counter() - start)

                return run

            async def baseline() -> float:
                return await chain_rate(total)

            sides: dict[str, Side] = {"baseline": baseline, "helpline": rate_of(visitor)}
            if window:
                sides["pipelined"] = rate_of(pipelined_visitor)
            samples = await ainterleave(rounds, sides, "throughput")
            nursery.cancel_scope.cancel()
    return samples


def message_throughput(config: RunConfig) -> list[Result]:
    """Visitor messages delivered to agents per second, against a bare three-task chain."""
    n_chats = config.pick(4, 100, 100)
    n_agents = config.pick(2, 10, 10)
    n_messages = config.pick(200, 20_000, 100_000)
    rounds = config.n_rounds()
    with temp_db() as db:
        samples = trio.run(
            partial(_throughput, window=WINDOW), db, n_chats, n_agents, n_messages, rounds
        )
    progress.done()
    details = {
        "chats": n_chats,
        "agents": n_agents,
        "messages": (n_messages // n_chats) * n_chats,
        "baseline": "three trio tasks, memory channels of 1024 and 256",
    }
    return [
        Result(
            name="throughput",
            unit="msg/s",
            samples=samples["helpline"],
            baseline_samples=samples["baseline"],
            target=Target(on="ratio", op=">=", value=0.5),
            details={**details, "sender": "send, waiting for each line's seq"},
        ),
        Result(
            name="throughput-pipelined",
            unit="msg/s",
            samples=samples["pipelined"],
            baseline_samples=samples["baseline"],
            target=Target(on="ratio", op=">=", value=0.5),
            details={**details, "sender": f"post, {WINDOW} lines in flight per visitor"},
        ),
    ]


# --- chat setup -----------------------------------------------------------------------------------


async def _setup(db: Path, n_setups: int, n_pings: int, rounds: int) -> dict[str, list[float]]:
    per_dept_agents = 4
    capacity = n_setups * rounds  # chats stay open until the end: no ticket write overlaps
    departments = (
        Department(id="broadcast", name="Broadcast", offer_window=600, queue_limit=10),
        Department(
            id="assigned",
            name="Assigned",
            routing=RoutingMode.ASSIGNED,
            offer_window=600,
            queue_limit=10,
        ),
    )
    agents = agents_for("b", ("broadcast",), per_dept_agents, capacity) + agents_for(
        "s", ("assigned",), per_dept_agents, capacity
    )
    config = EngineConfig(departments=departments, agents=agents)
    active: defaultdict[str, trio.Event] = defaultdict(trio.Event)

    async def acceptor(conn: AgentConnection, index: int) -> None:
        while True:
            for event in [await conn.next_event(), *conn.pending_events()]:
                if not isinstance(event, Offer):
                    continue
                # every online agent of a broadcast department sees the offer; one takes it
                if event.department == "broadcast" and int(event.question[1:]) % 4 != index:
                    continue
                chat_id = await conn.accept(event.offer_id)
                active[chat_id].set()

    async with open_engine(config, db=db, synchronous=SYNCHRONOUS) as engine:
        async with AsyncExitStack() as stack, trio.open_nursery() as nursery:
            for agent in agents:
                conn = await stack.enter_async_context(engine.connect_agent(agent.id))
                await conn.set_status("online")
                nursery.start_soon(acceptor, conn, int(agent.id[1:]))
            counter = 0

            def setups(department: str) -> Callable[[], Awaitable[float]]:
                async def measure() -> float:
                    nonlocal counter
                    start = time.perf_counter()
                    for _ in range(n_setups):
                        counter += 1
                        chat = await stack.enter_async_context(
                            engine.open_chat(
                                department=department, question=f"q{counter}", visitor=VISITOR
                            )
                        )
                        await active[chat.chat_id].wait()
                        del active[chat.chat_id]
                    return n_setups / (time.perf_counter() - start)

                return measure

            async def baseline() -> float:
                return await ping_pong_rate(n_pings)

            samples = await ainterleave(
                rounds,
                {
                    "baseline": baseline,
                    "broadcast": setups("broadcast"),
                    "assigned": setups("assigned"),
                },
                "setup",
            )
            progress.update("setup: closing chats and writing their tickets")
            nursery.cancel_scope.cancel()
    return samples


def chat_setup(config: RunConfig) -> list[Result]:
    """Chats set up per second (request, offer, accept, active), against ping-pong round trips."""
    n_setups = config.pick(20, 500, 2000)
    n_pings = config.pick(500, 20_000, 50_000)
    rounds = config.n_rounds()
    with temp_db() as db:
        samples = trio.run(_setup, db, n_setups, n_pings, rounds)
    progress.done()
    results = []
    for mode in ("broadcast", "assigned"):
        results.append(
            Result(
                name=f"setup-{mode}",
                unit="chats/s",
                samples=samples[mode],
                baseline_samples=samples["baseline"],
                baseline_unit="round trips/s",
                target=Target(on="ratio", op=">=", value=1 / 8),
                details={
                    "setups_per_round": n_setups,
                    "agents_online": 4,
                    "round_trips_per_round": n_pings,
                    "concurrency": 1,
                },
            )
        )
    return results
