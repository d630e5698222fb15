"""Several ``helpline serve --node`` processes on one PostgreSQL store, and the holder killed.

:class:`Cluster` starts nodes on fixed loopback ports (a node started again after a kill comes
back on its port, so the clients' list of URLs stays right), finds who holds the routing lease,
and kills or pauses nodes. :func:`failover_run` is the crash scenario of ``_crash.py`` on three
nodes: visitors and agents spread over the nodes talk while the lease holder is killed with
SIGKILL again and again (and started again as a follower); it counts what the crash run counts,
plus chats that two agents were told they won, and times each failover: from the kill to another
node holding the lease, and to the first message acknowledged again.

Used by ``tests/test_nodes.py`` and by ``python -m bench cluster``.
"""

from __future__ import annotations

import random
import signal
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psycopg
import trio

from engine import open_engine, open_store

from ._crash import AGENTS, CONFIG, VISITORS, Ledger, Losses, agent, audit, issue_tokens, visitor
from ._daemonproc import Daemon, helpline, start_daemon

LEASE: Final = 1.5
RENEW: Final = 0.3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """Nodes named ``n0``, ``n1``, ... of one desk on ``store`` (see the module docstring)."""

    root: Path
    store: str
    config: str = CONFIG
    lease: float = LEASE
    renew: float = RENEW
    ports: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, Daemon] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.ports[name]}"

    @property
    def urls(self) -> list[str]:
        return [self.url(name) for name in sorted(self.ports)]

    def start(self, name: str, *extra: str) -> Daemon:
        """Start (or start again) node ``name``; returns once it listens."""
        port = self.ports.setdefault(name, free_port())
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        config = self._config_file()
        node = start_daemon(
            home,
            "--config", str(config),
            "--store", self.store,
            "--node", name,
            "--lease", str(self.lease),
            "--renew", str(self.renew),
            "--port", str(port),
            *extra,
        )  # fmt: skip
        self.nodes[name] = node
        return node

    def _config_file(self) -> Path:
        """The nodes' configuration file, written when its text changed."""
        path = self.root / "helpline.toml"
        if not path.exists() or path.read_text() != self.config:
            path.write_text(self.config)
        return path

    def start_many(self, names: list[str]) -> None:
        """Start several nodes at once (each in a thread); returns once all listen."""
        self._config_file()
        threads = [threading.Thread(target=self.start, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        missing = [name for name in names if name not in self.nodes]
        if missing:
            raise RuntimeError(f"nodes {missing} did not start")

    def holder(self) -> tuple[str | None, int, float]:
        """The lease's holder, epoch and seconds until it expires (database clock)."""
        with psycopg.connect(self.store, autocommit=True) as conn:
            row = conn.execute(
                "SELECT holder, epoch, extract(epoch FROM expires_at - now()) FROM cluster_lease"
            ).fetchone()
        assert row is not None
        return row[0], int(row[1]), float(row[2])

    def wait_holder(self, *, other_than: str | None = None, timeout: float = 30.0) -> str:
        """Wait until a live lease is held (by another node than ``other_than``); its holder."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                name, _, left = self.holder()
            except psycopg.Error:
                name, left = None, -1.0
            if name is not None and left > 0 and name != other_than:
                return name
            time.sleep(0.02)
        raise TimeoutError(f"no node took the lease within {timeout} s")

    def admin_token(self) -> str:
        return self.token("--admin")

    def token(self, *who: str) -> str:
        """A new sign-in token from `helpline token` (an agent's id, or `--admin`)."""
        done = subprocess.run(
            helpline("token", *who, "--store", self.store),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout.strip().splitlines()[-1]

    def kill(self, name: str) -> None:
        self.nodes.pop(name).kill()

    def pause(self, name: str) -> None:
        self.nodes[name].process.send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.nodes[name].process.send_signal(signal.SIGCONT)

    def stop_all(self) -> dict[str, int]:
        """SIGTERM every node, followers first; their exit statuses."""
        holder = self.holder()[0]
        order = sorted(self.nodes, key=lambda n: n == holder)
        return {name: self.nodes.pop(name).stop() for name in order}

    def kill_all(self) -> None:
        for node in self.nodes.values():
            node.kill()
        self.nodes.clear()


@dataclass
class FailoverReport(Losses):
    """What one failover run counted (see the module docstring)."""

    two_owners: list[str]
    takeover_seconds: list[float]  # kill -> another node holds the lease
    failover_seconds: list[float]  # kill -> first message acknowledged again
    epochs: list[int]
    stop_status: dict[str, int]

    def summary(self) -> str:
        return (
            f"{super().summary()}, two owners {len(self.two_owners)};"
            f" failover median {_median(self.failover_seconds):.2f} s,"
            f" max {max(self.failover_seconds, default=0):.2f} s"
        )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


async def _wait_ack_after(ledger: Ledger, moment: float, within: float) -> float:
    """The time of the first message acknowledged after ``moment``."""
    with trio.fail_after(within):
        while True:
            if ledger.last_ack > moment:
                return ledger.last_ack
            await trio.sleep(0.002)


async def failover_run(
    cluster: Cluster, *, nodes: int, kills: int, seed: int, pause: tuple[float, float]
) -> FailoverReport:
    """The crash scenario on ``nodes`` nodes, killing the lease holder ``kills`` times."""
    rng = random.Random(seed)
    names = [f"n{i}" for i in range(nodes)]
    await trio.to_thread.run_sync(cluster.start_many, names)
    await trio.to_thread.run_sync(cluster.wait_holder)
    ledger = Ledger(url=cluster.urls)
    takeovers: list[float] = []
    failovers: list[float] = []
    epochs: list[int] = []
    try:
        admin = await trio.to_thread.run_sync(cluster.admin_token)
        tokens = await issue_tokens(cluster.urls[-1], admin)
        async with trio.open_nursery() as clients:
            for agent_id in AGENTS:
                clients.start_soon(agent, ledger, agent_id, tokens[agent_id], rng)
            for n in range(VISITORS):
                clients.start_soon(visitor, ledger, n, rng)
            for _ in range(kills):
                await trio.sleep(rng.uniform(*pause))
                victim = (await trio.to_thread.run_sync(cluster.holder))[0]
                assert victim is not None
                killed_at = time.perf_counter()
                await trio.to_thread.run_sync(cluster.kill, victim)
                ledger.kills += 1
                heir = await trio.to_thread.run_sync(
                    lambda v=victim: cluster.wait_holder(other_than=v)
                )
                took_at = time.perf_counter()
                takeovers.append(took_at - killed_at)
                epochs.append((await trio.to_thread.run_sync(cluster.holder))[1])
                assert heir != victim
                # Counted from the takeover on: a line acknowledged just before the kill may
                # still be on its way to its client.
                failovers.append(await _wait_ack_after(ledger, took_at, 60) - killed_at)
                await trio.to_thread.run_sync(cluster.start, victim)
            await trio.sleep(1.0)
            ledger.stop.set()
        status = await trio.to_thread.run_sync(cluster.stop_all)
    finally:
        cluster.kill_all()
    # A node that stops hands the desk over and ends no chat: end them here, as the last daemon
    # of a desk would on SIGTERM, so that every chat is a ticket to check.
    async with open_engine(db=cluster.store):
        pass
    async with open_store(cluster.store) as store:
        tickets = []
        while page := await store.tickets(limit=1000, offset=len(tickets)):
            tickets.extend(page)
        live = await store.live_state()
    return FailoverReport(
        seed=seed,
        kills=ledger.kills,
        reconnects=ledger.reconnects,
        **audit(ledger, tickets),
        two_owners=sorted(chat for chat, winners in ledger.accepted.items() if len(winners) > 1),
        journal_left=(len(live.chats), len(live.graces)),
        takeover_seconds=takeovers,
        failover_seconds=failovers,
        epochs=epochs,
        stop_status=status,
    )
