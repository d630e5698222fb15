"""What durability costs: message throughput with the journal on against off, and recovery time.

`journal` runs the in-process throughput scenario twice per round, journal on and journal off, in
alternating order, each over a fresh SQLite file; the ratio on/off is the journal's price
(target >= 0.7). `recovery` opens an engine, brings N chats to active (accepted, with a line each),
stops it without ending them (as a crash would leave them), and times how long `open_engine` takes
to be ready again with every chat restored; the baseline is the same file's start-up with no live
chats left, measured in the same run.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import trio

from engine import Department, EngineConfig, RoutingMode, open_engine

from ._common import SYNCHRONOUS, Result, RunConfig, Target, progress, temp_db
from ._inproc import _throughput, accept_all, agents_for, open_active_chats


def journal_cost(config: RunConfig) -> list[Result]:
    """Throughput with the journal on, against the same run with it off."""
    n_chats = config.pick(4, 100, 100)
    n_agents = config.pick(2, 10, 10)
    n_messages = config.pick(200, 10_000, 50_000)
    on: list[float] = []
    off: list[float] = []
    for i in range(config.n_rounds()):
        for journal in (True, False) if i % 2 == 0 else (False, True):
            progress.update(f"journal: round {i + 1}, journal {'on' if journal else 'off'}")
            with temp_db() as db:
                samples = trio.run(
                    partial(_throughput, journal=journal), db, n_chats, n_agents, n_messages, 1
                )
            (on if journal else off).append(samples["helpline"][0])
    progress.done()
    return [
        Result(
            name="journal",
            unit="msg/s",
            samples=on,
            baseline_samples=off,
            baseline_unit="msg/s, journal off",
            target=Target(on="ratio", op=">=", value=0.7),
            details={"chats": n_chats, "messages": n_messages, "synchronous": SYNCHRONOUS},
        )
    ]


async def _fill(db: Path, n_chats: int) -> None:
    n_agents = max(1, n_chats // 50)
    config = EngineConfig(
        departments=(Department(id="d", name="D", routing=RoutingMode.ASSIGNED, offer_window=600),),
        agents=agents_for("a", ("d",), n_agents, 50),
    )
    async with open_engine(config, db=db, synchronous=SYNCHRONOUS, end_chats_on_exit=False) as e:
        async with AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(e.connect_agent(a.id)) for a in config.agents]
            for conn in conns:
                await conn.set_status("online")
            async with trio.open_nursery() as accepting:
                for conn in conns:
                    accepting.start_soon(accept_all, conn)
                chats = await open_active_chats(e, stack, "d", n_chats)
                accepting.cancel_scope.cancel()
            for chat in chats:
                await chat.send("hello")


async def _time_start(db: Path) -> tuple[float, int]:
    start = time.perf_counter()
    async with open_engine(
        EngineConfig(departments=()), db=db, synchronous=SYNCHRONOUS, end_chats_on_exit=False
    ) as engine:
        ready = time.perf_counter() - start
        live = len((await engine.inspect()).chats)
    return ready, live


async def _recovery(db: Path, empty: Path, n_chats: int) -> tuple[float, float, int]:
    await _fill(db, n_chats)
    await _fill(empty, 0)
    restored, live = await _time_start(db)
    baseline, _ = await _time_start(empty)
    return restored, baseline, live


def recovery_time(config: RunConfig) -> list[Result]:
    """Seconds from start to ready with N live chats to restore, against an empty start."""
    n_chats = config.pick(20, 1_000, 10_000)
    restored: list[float] = []
    empty: list[float] = []
    live = 0
    for i in range(config.n_rounds(quick=1, full=3)):
        progress.update(f"recovery: round {i + 1}, {n_chats} live chats")
        with temp_db() as db, temp_db() as blank:
            took, base, live = trio.run(_recovery, db, blank, n_chats)
        restored.append(took)
        empty.append(base)
    progress.done()
    return [
        Result(
            name=f"recovery-{n_chats}",
            unit="s",
            samples=restored,
            baseline_samples=empty,
            baseline_unit="s, no live chats",
            details={"live_chats": n_chats, "restored": live, "synchronous": SYNCHRONOUS},
        )
    ]
