"""Several nodes on one PostgreSQL store: throughput through 1, 2 and 3 nodes, cross-node delivery
latency, and failover time. Runs when HELPLINE_BENCH_POSTGRES names a server (each part on a fresh
schema, dropped afterwards); otherwise its results are skipped.

- ``cluster-throughput-N``: visitor -> agent messages per second with N nodes, visitors and agents
  spread over the nodes round-robin (so with N > 1 most of them are relayed to the lease holder),
  every visitor sending its lines one after another, awaiting each acknowledgement. The baseline
  of N = 2 and 3 is N = 1 in the same run.
- ``cluster-latency-p50`` / ``-p99``: two nodes, the agents on the holder and the visitors on the
  follower, each visitor sending a line every 50 ms: milliseconds from a visitor's send to its
  agent's event (both clients in this process, one clock). The baseline is the same with the
  visitors on the holder too.
- ``cluster-failover-median`` / ``-max``: the failover run of ``_cluster.py`` (three nodes, load,
  the holder killed with SIGKILL, lease 1.5 s renewed every 0.3 s): seconds from a kill to the first
  line acknowledged again; the losses it counts are in the details and must all be zero.
- ``cluster-races``: the race soak of ``_races.py`` (three nodes, an agent on each, visitors
  opening chats on all of them, every offer raced by every agent with a free seat) over 2,000 won
  races (30 at ``--smoke``, ``--races N`` for another count): the violations it counts (two
  winners, a chat never won, a chat without exactly one ticket or with another owner, an agent
  above capacity or with seats in ``live_members`` other than it was told). Races per second,
  refused accepts by code and every count are in the details. The only part that runs at
  ``--smoke``.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import trio

from protocol import Client, connect

from ._cluster import LEASE, RENEW, Cluster, failover_run
from ._common import Result, RunConfig, Target, percentile, progress
from ._durability import POSTGRES_ENV, _pg_schema
from ._races import LeaseMoved, race_soak

DEPARTMENT: Final = "bench"


def _config(n_agents: int, capacity: int) -> str:
    agents = "".join(
        f'\n[[agents]]\nid = "a{i}"\nname = "A{i}"\ndepartments = ["{DEPARTMENT}"]\n'
        f"capacity = {capacity}\n"
        for i in range(n_agents)
    )
    return (
        "[server]\nrate = 1000000.0\nburst = 1000000\nlimit_loopback = false\n"
        "max_chats_per_address = 0\n\n"
        f'[[departments]]\nid = "{DEPARTMENT}"\nname = "Bench"\nrouting = "assigned"\n'
        f"offer_window = 600\nqueue_limit = 1000\n{agents}"
    )


class _Desk:
    """Agents and visitors with one accepted chat each, spread over ``urls``."""

    def __init__(self) -> None:
        self.visitors: list[Client] = []
        self.received: dict[str, float] = {}  # line text -> when its agent got it
        self.accepted = 0
        self.changed = trio.Event()

    async def agent(self, url: str, token: str, ready: trio.Event) -> None:
        async with connect(url, role="agent", token=token, retry_for=10) as client:
            await client.request("set_status", status="online")
            ready.set()
            async for event in client:
                if event.name == "offer":
                    await client.request("accept", offer_id=event.fields["offer_id"])
                    self.accepted += 1
                elif event.name == "message":
                    self.received[str(event.fields["text"])] = time.perf_counter()
                    self.changed.set()  # wakes every waiter; the next receipt sets a new one
                    self.changed = trio.Event()

    async def visitor(self, url: str, n: int, ready: trio.Event) -> None:
        async with connect(url, role="visitor", retry_for=10, keep_events=False) as client:
            await client.request("open_chat", department=DEPARTMENT, name=f"V{n}", question="?")
            self.visitors.append(client)
            ready.set()
            await trio.sleep_forever()

    async def wait_received(self, texts: list[str], within: float = 120) -> None:
        with trio.fail_after(within):
            while not all(t in self.received for t in texts):
                await self.changed.wait()


async def _open_desk(
    nursery: trio.Nursery,
    cluster: Cluster,
    agent_urls: list[str],
    visitor_urls: list[str],
    n_agents: int,
    n_visitors: int,
) -> _Desk:
    desk = _Desk()
    admin = await trio.to_thread.run_sync(cluster.admin_token)
    async with connect(cluster.urls[0], role="admin", token=admin, retry_for=10) as a:
        tokens = [
            str((await a.request("token_issue", agent_id=f"a{i}"))["token"])
            for i in range(n_agents)
        ]
    for i in range(n_agents):
        ready = trio.Event()
        nursery.start_soon(desk.agent, agent_urls[i % len(agent_urls)], tokens[i], ready)
        await ready.wait()
    for n in range(n_visitors):
        ready = trio.Event()
        nursery.start_soon(desk.visitor, visitor_urls[n % len(visitor_urls)], n, ready)
        await ready.wait()
    with trio.fail_after(60):
        while True:
            if desk.accepted >= n_visitors:
                break
            await trio.sleep(0.05)
    return desk


def _with_cluster(server: str, nodes: int, config: str, run: Any) -> Any:
    """Start ``nodes`` nodes on a fresh schema, run ``run(cluster)`` in trio, stop them."""
    with _pg_schema(server) as store, tempfile.TemporaryDirectory() as root:
        cluster = Cluster(Path(root), store, config=config)
        try:
            cluster.start_many([f"n{i}" for i in range(nodes)])
            cluster.wait_holder()
            return trio.run(run, cluster)
        finally:
            cluster.kill_all()


def _throughput(server: str, nodes: int, n_visitors: int, per_visitor: int) -> float:
    n_agents = max(2, n_visitors // 10)

    async def run(cluster: Cluster) -> float:
        holder = cluster.holder()[0]
        urls = [cluster.url(n) for n in sorted(cluster.ports)]
        assert holder is not None
        async with trio.open_nursery() as nursery:
            desk = await _open_desk(nursery, cluster, urls, urls, n_agents, n_visitors)
            texts = [f"{n}-{i}" for n in range(n_visitors) for i in range(per_visitor)]
            started = time.perf_counter()

            async def talk(client: Client, n: int) -> None:
                for i in range(per_visitor):
                    await client.request("send", text=f"{n}-{i}")

            async with trio.open_nursery() as talking:
                for n, client in enumerate(desk.visitors):
                    talking.start_soon(talk, client, n)
            await desk.wait_received(texts)
            rate = len(texts) / (time.perf_counter() - started)
            nursery.cancel_scope.cancel()
        return rate

    return _with_cluster(server, nodes, _config(n_agents, n_visitors), run)


def _latency(server: str, n_visitors: int, per_visitor: int, *, cross: bool) -> list[float]:
    n_agents = max(2, n_visitors // 10)

    async def run(cluster: Cluster) -> list[float]:
        holder = cluster.holder()[0]
        assert holder is not None
        follower = next(n for n in cluster.ports if n != holder)
        agents = [cluster.url(holder)]
        visitors = [cluster.url(follower if cross else holder)]
        delays: list[float] = []
        async with trio.open_nursery() as nursery:
            desk = await _open_desk(nursery, cluster, agents, visitors, n_agents, n_visitors)

            async def talk(client: Client, n: int) -> None:
                for i in range(per_visitor):
                    text = f"{n}-{i}"
                    sent = time.perf_counter()
                    await client.request("send", text=text)
                    await desk.wait_received([text])
                    delays.append((desk.received[text] - sent) * 1000)
                    await trio.sleep(0.05)

            async with trio.open_nursery() as talking:
                for n, client in enumerate(desk.visitors):
                    talking.start_soon(talk, client, n)
            nursery.cancel_scope.cancel()
        return delays

    return _with_cluster(server, 2, _config(n_agents, n_visitors), run)


def _failover(server: str, kills: int) -> dict[str, Any]:
    seed = random.randrange(2**32)
    with _pg_schema(server) as store, tempfile.TemporaryDirectory() as root:
        cluster = Cluster(Path(root), store)

        async def run() -> Any:
            return await failover_run(cluster, nodes=3, kills=kills, seed=seed, pause=(1.0, 2.0))

        report = trio.run(run)
    return {
        "seconds": report.failover_seconds,
        "takeover_seconds": report.takeover_seconds,
        "summary": report.summary(),
        "losses": {
            "lost_messages": len(report.lost_messages),
            "messages_twice": len(report.messages_twice),
            "lost_chats": len(report.lost_chats),
            "tickets_twice": report.tickets_twice,
            "two_owners": len(report.two_owners),
            "journal_left": list(report.journal_left),
            "gapless": report.gapless,
        },
    }


def _races(server: str, races: int) -> tuple[float, dict[str, Any]]:
    """The race soak on a fresh schema: its violations and details."""
    seed = random.randrange(2**32)

    def report(won: int, seconds: float) -> None:
        rate = won / seconds if seconds > 0 else 0.0
        progress.update(f"cluster: races, {won}/{races} won, {rate:.1f}/s")

    with _pg_schema(server) as store, tempfile.TemporaryDirectory() as root:
        cluster = Cluster(Path(root), store)

        async def run() -> Any:
            return await race_soak(cluster, races=races, seed=seed, report=report)

        soak = trio.run(run)  # LeaseMoved: see the caller
    return float(soak.violations), {
        **soak.details(),
        "seed": seed,
        "violations": soak.violations,
        "summary": soak.summary(),
    }


def _race(row: Result, server: str, races: int) -> None:
    """Fill the ``cluster-races`` row: its violations, or why it could not finish."""
    progress.update(f"cluster: races, {races} accepts raced across 3 nodes")
    try:
        violations, row.details = _races(server, races)
    except LeaseMoved as moved:
        row.skipped = str(moved)
    else:
        row.samples = [violations]


def cluster_bench(config: RunConfig) -> list[Result]:
    """Throughput through 1, 2 and 3 nodes, cross-node latency, failover and accepts raced
    across three nodes (see above)."""
    through = {n: Result(name=f"cluster-throughput-{n}", unit="msg/s") for n in (1, 2, 3)}
    for n in (2, 3):
        through[n].baseline_unit = "msg/s, 1 node"
        through[n].details["what"] = f"{n} nodes, clients spread over them, against 1 node"
    p50 = Result(name="cluster-latency-p50", unit="ms", baseline_unit="ms, same node")
    p99 = Result(name="cluster-latency-p99", unit="ms", baseline_unit="ms, same node")
    median = Result(
        name="cluster-failover-median", unit="s", target=Target(on="figure", op="<=", value=5)
    )
    worst = Result(name="cluster-failover-max", unit="s")
    races = Result(
        name="cluster-races", unit="violations", target=Target(on="figure", op="==", value=0)
    )
    results = [*through.values(), p50, p99, median, worst, races]
    server = os.environ.get(POSTGRES_ENV, "")
    if not server:
        for r in results:
            r.skipped = f"set {POSTGRES_ENV}=postgresql://... to run the cluster scenario"
        return results
    n_races = config.races or config.pick(30, 2000, 2000)
    if config.mode == "smoke":
        small = "not at smoke size (it starts a dozen processes); tests/test_nodes.py runs it"
        for r in results[:-1]:
            r.skipped = small
        _race(races, server, n_races)
        progress.done()
        return results
    rounds = config.n_rounds(quick=1, full=3)
    n_visitors = config.pick(4, 40, 100)
    per_visitor = config.pick(5, 50, 100)
    for _ in range(rounds):
        for n in (1, 2, 3):
            progress.update(f"cluster: throughput through {n} nodes")
            through[n].samples.append(_throughput(server, n, n_visitors, per_visitor))
    for n in (2, 3):
        through[n].baseline_samples = list(through[1].samples)
    progress.update("cluster: cross-node latency")
    cross = _latency(server, config.pick(2, 10, 20), config.pick(5, 40, 100), cross=True)
    same = _latency(server, config.pick(2, 10, 20), config.pick(5, 40, 100), cross=False)
    p50.samples, p50.baseline_samples = [percentile(cross, 50)], [percentile(same, 50)]
    p99.samples, p99.baseline_samples = [percentile(cross, 99)], [percentile(same, 99)]
    kills = config.pick(2, 10, 20)
    progress.update(f"cluster: failover, {kills} kills of the holder")
    failover = _failover(server, kills)
    median.samples = [statistics.median(failover["seconds"])]
    worst.samples = [max(failover["seconds"])]
    for r in (median, worst):
        r.details = {
            "kills": kills,
            "lease": LEASE,
            "renew": RENEW,
            "failover_seconds": failover["seconds"],
            "takeover_seconds": failover["takeover_seconds"],
            "losses": failover["losses"],
            "summary": failover["summary"],
        }
    _race(races, server, n_races)
    progress.done()
    return results
