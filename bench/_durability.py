"""What durability costs: message throughput with the journal on against off, and recovery time.

`journal` runs the in-process throughput scenario twice per round, journal on and journal off, in
alternating order, each over a fresh SQLite file; the ratio on/off is the journal's price
(target >= 0.7). With HELPLINE_BENCH_POSTGRES set to a PostgreSQL URL, `journal-postgresql` runs
the same journal-on scenario with the store on PostgreSQL (a fresh schema per round), against
SQLite's journal-on figure of the same run, and records both stores' commit latency (one line
appended and committed, awaited one after another). `recovery` opens an engine, brings N chats to
active (accepted, with a line each), stops it without ending them (as a crash would leave them),
and times how long `open_engine` takes to be ready again with every chat restored; the baseline
is the same file's start-up with no live chats left, measured in the same run.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from functools import partial
from pathlib import Path
from urllib.parse import quote

import trio

from engine import Department, EngineConfig, Entry, RoutingMode, open_engine, open_store

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
    results = [
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
    server = os.environ.get(POSTGRES_ENV, "")
    if server:
        results.append(_journal_postgres(config, server, on, n_chats, n_agents, n_messages))
    return results


POSTGRES_ENV = "HELPLINE_BENCH_POSTGRES"


@contextmanager
def _pg_schema(server: str) -> Iterator[str]:
    """A store URL on a fresh schema of ``server``, dropped afterwards."""
    import psycopg

    schema = f"helpline_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    try:
        options = quote(f"-csearch_path={schema}", safe="")
        yield f"{server}{'&' if '?' in server else '?'}options={options}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[arg-type]


async def _commit_latency(db: str, n: int) -> list[float]:
    """Seconds for each of ``n`` one-line appends, awaited one after another (no grouping)."""
    took: list[float] = []
    async with open_store(db, synchronous=SYNCHRONOUS) as store:
        for i in range(n):
            line = Entry(seq=i + 1, at=float(i), kind="message", author="v", text="x")
            start = time.perf_counter()
            await store.append_entries("chat", [line])
            took.append(time.perf_counter() - start)
    return took


def _journal_postgres(
    config: RunConfig,
    server: str,
    sqlite_on: list[float],
    n_chats: int,
    n_agents: int,
    n_messages: int,
) -> Result:
    """The journal-on throughput with the store on PostgreSQL, against SQLite's of this run."""
    samples: list[float] = []
    n_commits = config.pick(50, 500, 2000)
    for i in range(config.n_rounds()):
        progress.update(f"journal: round {i + 1}, PostgreSQL")
        with _pg_schema(server) as url:
            got = trio.run(
                partial(_throughput, journal=True), url, n_chats, n_agents, n_messages, 1
            )
        samples.append(got["helpline"][0])
    progress.update("journal: commit latency, PostgreSQL and SQLite")
    with _pg_schema(server) as url:
        pg_latency = trio.run(_commit_latency, url, n_commits)
    with temp_db() as db:
        sqlite_latency = trio.run(_commit_latency, str(db), n_commits)
    progress.done()

    def ms(xs: list[float], q: int) -> float:
        return round(statistics.quantiles(xs, n=100)[q - 1] * 1000, 3)

    return Result(
        name="journal-postgresql",
        unit="msg/s",
        samples=samples,
        baseline_samples=sqlite_on,
        baseline_unit="msg/s, journal on SQLite",
        details={
            "chats": n_chats,
            "messages": n_messages,
            "commits": n_commits,
            "commit_latency_ms_p50": {
                "postgresql": ms(pg_latency, 50),
                "sqlite": ms(sqlite_latency, 50),
            },
            "commit_latency_ms_p99": {
                "postgresql": ms(pg_latency, 99),
                "sqlite": ms(sqlite_latency, 99),
            },
            "synchronous": SYNCHRONOUS,
        },
    )


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
