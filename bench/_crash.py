"""A real daemon killed with SIGKILL again and again under load: what is lost, how fast it is back.

`helpline serve` runs on a fresh database with a loopback port. Visitors open chats and talk, two
agents accept every offer, talk in their chats and now and then end one. Meanwhile the daemon is
killed with SIGKILL at random moments and started again at once on the same file. Clients
reconnect as SPEC.md section 10 says: agents sign in again with their tokens, visitors resume with
their resume tokens and the last `seq` they saw, and everyone resends, with the same
`client_msg_id`, the one message that was not acknowledged.

At the end the daemon is stopped normally (every live chat becomes a ticket) and the SQLite file
is read back. Counted: acknowledged messages missing from their chat's ticket (or stored twice),
chats whose `open_chat` was acknowledged without exactly one ticket, tickets written twice, the
integrity check, what is left in the journal, and the seconds from each restart to ready (the
daemon printing its URL). `tests/test_crash.py` runs it with 10 kills and requires every loss
count to be zero; `python -m bench crash` runs it longer and reports the same counts.

Only 127.0.0.1 is contacted; time is real (a process is killed), bounded by a deadline.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio
import trio_websocket

from engine import Ticket, open_store
from protocol import Client, ClientClosed, ClientError, connect

from ._common import Result, RunConfig, Target, progress
from ._daemonproc import Daemon, start_daemon

VISITORS: Final = 8
AGENTS: Final = ("ann", "bob")

CONFIG = """
[server]
rate = 500.0
burst = 1000

[engine]
visitor_grace = 120
agent_grace = 120
handoff_timeout = 60

[[departments]]
id = "sales"
name = "Sales"
offer_window = 120
queue_timeout = 600
queue_limit = 100

[[agents]]
id = "ann"
name = "Ann"
departments = ["sales"]
capacity = 50

[[agents]]
id = "bob"
name = "Bob"
departments = ["sales"]
capacity = 50
"""

# A dropped connection, or a daemon that is down or still starting: reconnect and go on.
GONE = (
    ClientClosed,
    OSError,
    trio.TooSlowError,
    trio.BrokenResourceError,
    trio_websocket.HandshakeError,
    trio_websocket.ConnectionClosed,
)
RETRY: Final = frozenset({"busy", "rate_limited", "store_unavailable", "shutting_down"})
CHAT_OVER: Final = frozenset({"invalid_state", "chat_ended", "not_in_chat", "not_found"})


@dataclass
class Ledger:
    """What the daemon acknowledged, as the clients saw it."""

    url: str | list[str] = ""  # several nodes: every node's URL, each client starting elsewhere
    stop: trio.Event = field(default_factory=trio.Event)
    opened: set[str] = field(default_factory=set)  # chats whose open_chat was answered
    acked: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    accepted: dict[str, set[str]] = field(default_factory=dict)  # chat -> agents told they won
    kills: int = 0
    reconnects: int = 0
    last_ack: float = 0.0  # time.perf_counter() of the latest acknowledged message

    def urls(self, n: int) -> str | list[str]:
        """The URL, or the nodes' URLs starting at the ``n``-th: clients spread over nodes."""
        if isinstance(self.url, str):
            return self.url
        k = n % len(self.url)
        return self.url[k:] + self.url[:k]

    def ack(self, key: tuple[str, str], seq: int, text: str) -> None:
        self.acked[key] = (seq, text)
        self.last_ack = time.perf_counter()


async def visitor(ledger: Ledger, n: int, rng: random.Random) -> None:
    """Open a chat, talk until told to stop, resume after every drop; a new chat when one ends."""
    chat_id = token = ""
    last_seq = count = 0
    pending: tuple[str, str] | None = None  # (client_msg_id, text) sent and not acknowledged

    async def watch(client: Client, ended: trio.Event) -> None:
        nonlocal last_seq
        async for event in client:
            if event.name in ("message", "system") and event.fields.get("chat_id") == chat_id:
                last_seq = max(last_seq, int(event.fields["seq"]))  # type: ignore[call-overload]
            elif event.name == "ended":
                ended.set()

    while not (ledger.stop.is_set() and pending is None):
        resume = {"resume_token": token, "last_seq": last_seq, "chat_id": chat_id} if token else {}
        try:
            async with connect(
                ledger.urls(n), role="visitor", connect_timeout=2, **resume
            ) as client:  # type: ignore[arg-type]
                if token and not client.hello["resumed"]:
                    chat_id = token = ""  # its chat ended: what was not acknowledged is not owed
                    pending = None
                ended = trio.Event()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch, client, ended)
                    if not chat_id:
                        if ledger.stop.is_set():  # `watch` would wait on the open connection
                            nursery.cancel_scope.cancel()
                            return
                        reply = await client.request(
                            "open_chat", department="sales", name=f"V{n}", question=f"q{n}"
                        )
                        chat_id, token = str(reply["chat_id"]), str(reply["resume_token"])
                        last_seq = 0
                        ledger.opened.add(chat_id)
                    while not ended.is_set() and (pending or not ledger.stop.is_set()):
                        if pending is None:
                            count += 1
                            pending = (f"v{n}-{count}", f"visitor {n} line {count}")
                        try:
                            reply = await client.request(
                                "send", text=pending[1], client_msg_id=pending[0]
                            )
                        except ClientError as exc:
                            if exc.code in CHAT_OVER:
                                break
                            if exc.code not in RETRY:
                                raise
                            await trio.sleep(0.05)
                            continue
                        ledger.ack((chat_id, pending[0]), int(reply["seq"]), pending[1])  # type: ignore[call-overload]
                        pending = None
                        await trio.sleep(rng.uniform(0.01, 0.08))
                    if ended.is_set() or pending is not None:  # the chat is over
                        chat_id = token = ""
                        pending = None
                    nursery.cancel_scope.cancel()
        except GONE:
            ledger.reconnects += 1
            await trio.sleep(0.05)


async def agent(ledger: Ledger, agent_id: str, token: str, rng: random.Random) -> None:
    """Stay signed in, accept every offer, talk in held chats, end one now and then."""
    count = 0
    pending: tuple[str, str, str] | None = None  # (chat_id, client_msg_id, text) not acknowledged

    async def take(client: Client, offer_id: str, held: set[str]) -> None:
        try:
            reply = await client.request("accept", offer_id=offer_id)
            held.add(str(reply["chat_id"]))
            ledger.accepted.setdefault(str(reply["chat_id"]), set()).add(agent_id)
        except ClientError:
            pass  # taken by the other agent, withdrawn, or the chat ended
        except GONE:
            pass  # the reconnect signs in again and is told its chats

    async def watch(client: Client, held: set[str], nursery: trio.Nursery) -> None:
        async for event in client:
            chat = str(event.fields.get("chat_id", ""))
            if event.name == "offer":
                nursery.start_soon(take, client, str(event.fields["offer_id"]), held)
            elif event.name == "chat_assigned":
                held.add(chat)
            elif event.name in ("chat_removed", "ended"):
                held.discard(chat)

    while not (ledger.stop.is_set() and pending is None):
        try:
            where = ledger.urls(AGENTS.index(agent_id) if agent_id in AGENTS else 0)
            async with connect(where, role="agent", token=token, connect_timeout=2) as client:
                held = {str(c) for c in client.hello["chats"]}  # type: ignore[attr-defined]
                await client.request("set_status", status="online")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch, client, held, nursery)
                    while pending or not ledger.stop.is_set():
                        if pending is not None and pending[0] not in held:
                            pending = None  # the chat ended before the line was acknowledged
                        if pending is None:
                            if not held:
                                await trio.sleep(0.02)
                                continue
                            count += 1
                            chat = rng.choice(sorted(held))
                            pending = (chat, f"{agent_id}-{count}", f"{agent_id} line {count}")
                        chat, cid, text = pending
                        try:
                            reply = await client.request(
                                "send", chat_id=chat, text=text, client_msg_id=cid
                            )
                        except ClientError as exc:
                            if exc.code in CHAT_OVER:
                                held.discard(chat)
                                pending = None
                            elif exc.code not in RETRY:
                                raise
                            continue
                        ledger.ack((chat, cid), int(reply["seq"]), text)  # type: ignore[call-overload]
                        pending = None
                        if rng.random() < 0.03:
                            try:
                                await client.request("end_chat", chat_id=chat)
                            except ClientError:
                                pass  # not the owner, or it ended already
                        await trio.sleep(rng.uniform(0.01, 0.08))
                    nursery.cancel_scope.cancel()
        except GONE:
            ledger.reconnects += 1
            await trio.sleep(0.05)


async def issue_tokens(url: str, admin_token: str) -> dict[str, str]:
    async with connect(url, role="admin", token=admin_token) as admin:
        return {a: str((await admin.request("token_issue", agent_id=a))["token"]) for a in AGENTS}


@dataclass
class Losses:
    """What a run under kills counted that a crash run and a failover run share: the chats,
    messages and tickets, and what the tickets say was lost or stored twice (`audit`)."""

    seed: int
    kills: int
    reconnects: int
    chats: int
    acknowledged: int
    tickets: int
    lost_messages: list[tuple[str, str]]
    messages_twice: list[tuple[str, str]]
    lost_chats: list[str]
    tickets_twice: int
    gapless: bool  # every ticket's lines are numbered 1..n
    journal_left: tuple[int, int]  # live chats and graces still in the journal after the stop

    def summary(self) -> str:
        return (
            f"seed {self.seed}: {self.kills} kills, {self.reconnects} reconnects,"
            f" {self.chats} chats, {self.acknowledged} acknowledged messages,"
            f" {self.tickets} tickets; lost messages {len(self.lost_messages)},"
            f" messages stored twice {len(self.messages_twice)}, lost chats"
            f" {len(self.lost_chats)}, tickets written twice {self.tickets_twice}"
        )


@dataclass
class CrashReport(Losses):
    """What one crash run counted."""

    integrity: list[tuple[str]]
    restart_seconds: list[float]
    stop_status: int


async def crash_run(
    workdir: Path, *, kills: int, seed: int, pause: tuple[float, float] = (1.0, 2.5)
) -> CrashReport:
    """Run the load, kill the daemon `kills` times at random moments, and count (see above)."""
    rng = random.Random(seed)
    config = workdir / "helpline.toml"
    config.write_text(CONFIG)
    db = workdir / "helpline.db"
    daemon: Daemon = await trio.to_thread.run_sync(start_daemon, workdir, "--config", str(config))
    ledger = Ledger(url=daemon.url)
    restarts: list[float] = []
    try:
        if daemon.admin_token is None:
            raise RuntimeError("the daemon printed no admin token on its first start")
        tokens = await issue_tokens(daemon.url, daemon.admin_token)
        async with trio.open_nursery() as clients:
            for agent_id in AGENTS:
                clients.start_soon(agent, ledger, agent_id, tokens[agent_id], rng)
            for n in range(VISITORS):
                clients.start_soon(visitor, ledger, n, rng)
            for _ in range(kills):
                await trio.sleep(rng.uniform(*pause))
                await trio.to_thread.run_sync(daemon.kill)  # SIGKILL, then reaped
                ledger.kills += 1
                started = time.perf_counter()
                daemon = await trio.to_thread.run_sync(
                    start_daemon, workdir, "--config", str(config)
                )
                restarts.append(time.perf_counter() - started)
                ledger.url = daemon.url
            await trio.sleep(1.0)
            ledger.stop.set()  # clients finish what they have in flight, then leave
        status = await trio.to_thread.run_sync(daemon.stop)  # SIGTERM: ends every chat
    finally:
        daemon.kill()
    async with open_store(db) as store:
        tickets = await store.tickets(limit=1000)
        integrity = await store.read(lambda c: c.execute("PRAGMA integrity_check").fetchall())
        live = await store.live_state()
    return CrashReport(
        seed=seed,
        kills=ledger.kills,
        reconnects=ledger.reconnects,
        **audit(ledger, tickets),
        integrity=[tuple(row) for row in integrity],
        journal_left=(len(live.chats), len(live.graces)),
        restart_seconds=restarts,
        stop_status=status,
    )


def crash_bench(config: RunConfig) -> list[Result]:
    """The crash run, longer than the test's: loss counts (target 0) and restart-to-ready time."""
    kills = config.pick(2, 20, 60)
    seed = random.randrange(2**32)
    progress.update(f"crash: {kills} kills under load (seed {seed})")
    with tempfile.TemporaryDirectory(prefix="helpline-crash-") as tmp:
        report = trio.run(partial(crash_run, Path(tmp), kills=kills, seed=seed))
    progress.done()
    losses = (
        len(report.lost_messages)
        + len(report.messages_twice)
        + len(report.lost_chats)
        + report.tickets_twice
    )
    details = {
        "seed": report.seed,
        "kills": report.kills,
        "chats": report.chats,
        "acknowledged_messages": report.acknowledged,
        "lost_messages": len(report.lost_messages),
        "messages_stored_twice": len(report.messages_twice),
        "lost_chats": len(report.lost_chats),
        "tickets_written_twice": report.tickets_twice,
        "integrity": report.integrity == [("ok",)],
    }
    return [
        Result(
            name="crash",
            unit="lost+dup",
            samples=[float(losses)],
            target=Target(on="figure", op="==", value=0),
            details=details,
        ),
        Result(
            name="crash-restart",
            unit="s to ready",
            samples=[statistics.median(report.restart_seconds)] if report.restart_seconds else [],
            details={
                "what": "median seconds from a restart after SIGKILL to listening",
                "restart_seconds": [round(x, 4) for x in report.restart_seconds],
            },
        ),
    ]


def audit(ledger: Ledger, tickets: list[Ticket]) -> dict[str, Any]:
    """What the tickets say of the ledger's chats: the `Losses` fields of a report (losses,
    duplicates, gaps)."""
    by_chat: dict[str, list[tuple[int, str, str]]] = {}
    duplicated = 0
    for t in tickets:
        duplicated += t.chat_id in by_chat
        by_chat[t.chat_id] = [(e.seq, e.text, e.client_msg_id) for e in t.entries]
    return {
        "chats": len(ledger.opened),
        "acknowledged": len(ledger.acked),
        "tickets": len(tickets),
        "lost_messages": [
            (chat, cid)
            for (chat, cid), (seq, text) in ledger.acked.items()
            if (seq, text, cid) not in by_chat.get(chat, [])
        ],
        "messages_twice": [
            (chat, cid)
            for chat, lines in by_chat.items()
            for cid in {c for _, _, c in lines if c}
            if [c for _, _, c in lines].count(cid) > 1
        ],
        "lost_chats": sorted(c for c in ledger.opened if c not in by_chat),
        "tickets_twice": duplicated,
        "gapless": all(
            [seq for seq, _, _ in lines] == list(range(1, len(lines) + 1))
            for lines in by_chat.values()
        ),
    }
