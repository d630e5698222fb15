"""Several nodes on one PostgreSQL store: real `helpline serve --node` processes killed and paused.

Each test gets a fresh schema. The lease is short (1.5 s, renewed every 0.3 s) so failovers are
quick. All skip without HELPLINE_TEST_POSTGRES.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import psycopg
import pytest
import trio

from bench._cluster import LEASE, RENEW, Cluster, failover_run
from bench._daemonproc import helpline
from engine import StoreError, lease, open_store
from engine.store.migrate import latest
from protocol import Client, ClientClosed, ClientError, connect, connect_stream

from .postgres import fresh_schema

TAKEOVER_BOUND: Final = LEASE + RENEW + 5.0  # the lease runs out, a look, the engine restores
DEADLINE: Final = 120.0  # a safety net for a busy machine, not a timing check
KILLS: Final = 2  # in the suite; `python -m bench cluster` kills 10 times

RACE_CONFIG = """
[server]
rate = 1000.0
burst = 2000
max_chats_per_connection = 0
max_chats_per_address = 0

[[departments]]
id = "sales"
name = "Sales"
offer_window = 120
queue_timeout = 600
queue_limit = 500

[[agents]]
id = "ann"
name = "Ann"
departments = ["sales"]
capacity = 40

[[agents]]
id = "bob"
name = "Bob"
departments = ["sales"]
capacity = 40

[[agents]]
id = "cid"
name = "Cid"
departments = ["sales"]
capacity = 40
"""
RACE_AGENTS: Final = ("ann", "bob", "cid")
CHATS: Final = 150  # 120 seats: 30 must wait in the queue


@pytest.fixture
def pg_store() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


@pytest.fixture
def cluster(tmp_path: Path, pg_store: str) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path, pg_store)
    try:
        yield nodes
    finally:
        nodes.kill_all()


# -- the fence, at the store ---------------------------------------------------------------------


async def test_a_store_fenced_at_an_old_epoch_cannot_write(pg_store: str) -> None:
    """Once another node took the lease, a write under the old epoch is refused whole."""
    bump = "UPDATE config_changes SET version = version + 1"
    async with open_store(pg_store) as store:
        with psycopg.connect(pg_store, autocommit=True) as conn:
            first = lease.take(conn, "a", "process-a", 30)
            assert first is not None
            store.fence = lease.fence(first)  # type: ignore[attr-defined]
            await store.write(lambda c: c.execute(bump))  # held: the write goes through
            assert lease.take(conn, "b", "process-b", 5) is None  # not expired yet
            # a's process is paused past its lease: the lease runs out
            conn.execute("UPDATE cluster_lease SET expires_at = now() - interval '1 second'")
            second = lease.take(conn, "b", "process-b", 5)
            assert second == first + 1
            before = await store.config_version()
            with pytest.raises(StoreError) as refused:
                await store.write(lambda c: c.execute(bump))
            assert refused.value.code == lease.LEASE_LOST
            assert await store.config_version() == before  # nothing of it was written
            assert not lease.renew(conn, "process-a", first, 5)
            store.fence = lease.fence(second)  # type: ignore[attr-defined]
            await store.write(lambda c: c.execute(bump))
            assert await store.config_version() == before + 1


def test_the_relay_header_cannot_be_forged() -> None:
    signed = lease.sign_peer("secret", "203.0.113.9:5000")
    assert lease.verify_peer("secret", signed) == "203.0.113.9:5000"
    assert lease.verify_peer("other", signed) is None
    assert lease.verify_peer("secret", "203.0.113.9:5000;00") is None
    assert lease.verify_peer("", signed) is None


# -- nodes ---------------------------------------------------------------------------------------


async def test_accepts_raced_across_three_nodes(cluster: Cluster) -> None:
    """Agents and visitors on three different nodes; every offer raced by all three agents:
    one winner per chat, nobody above capacity (in the engine's answers and in the database's
    seats), the rest queued."""
    cluster.config = RACE_CONFIG
    await trio.to_thread.run_sync(cluster.start_many, ["n0", "n1", "n2"])
    holder = await trio.to_thread.run_sync(cluster.wait_holder)
    urls = cluster.urls
    won: dict[str, list[str]] = {a: [] for a in RACE_AGENTS}
    refused: list[str] = []
    with trio.fail_after(DEADLINE):
        admin = await trio.to_thread.run_sync(cluster.admin_token)
        async with connect(urls[2], role="admin", token=admin) as desk:
            tokens = {
                a: str((await desk.request("token_issue", agent_id=a))["token"])
                for a in RACE_AGENTS
            }
        offered: set[str] = set()

        async def take(client: object, agent_id: str, offer_id: str) -> None:
            try:
                reply = await client.request("accept", offer_id=offer_id)  # type: ignore[attr-defined]
            except ClientError as exc:
                refused.append(exc.code)
            else:
                won[agent_id].append(str(reply["chat_id"]))

        async def run_agent(agent_id: str, url: str, ready: trio.Event) -> None:
            async with connect(url, role="agent", token=tokens[agent_id]) as client:
                await client.request("set_status", status="online")
                ready.set()
                async with trio.open_nursery() as nursery:
                    async for event in client:
                        if event.name == "offer":
                            offered.add(str(event.fields["chat_id"]))
                            nursery.start_soon(take, client, agent_id, event.fields["offer_id"])

        opened: list[str] = []

        async def visitor(url: str, n: int) -> None:
            async with connect(url, role="visitor") as client:
                reply = await client.request(
                    "open_chat", department="sales", name=f"V{n}", question="?"
                )
                opened.append(str(reply["chat_id"]))
                await trio.sleep_forever()

        async with trio.open_nursery() as agents:
            for i, agent_id in enumerate(RACE_AGENTS):
                ready = trio.Event()
                agents.start_soon(run_agent, agent_id, urls[i], ready)
                await ready.wait()
            for n in range(CHATS):
                agents.start_soon(visitor, urls[n % 3], n)
            while True:
                if len(opened) == CHATS and sum(map(len, won.values())) >= 120:
                    break
                await trio.sleep(0.05)
            await trio.sleep(1.0)  # any accept still in flight lands (and must be refused)
            agents.cancel_scope.cancel()
    winners = [chat for chats in won.values() for chat in chats]
    assert len(opened) == CHATS
    assert len(winners) == len(set(winners)) == 120, "exactly one winner per seated chat"
    assert all(len(chats) == 40 for chats in won.values()), {a: len(c) for a, c in won.items()}
    assert set(refused) <= {"offer_taken", "stale_offer", "capacity_full"}, refused
    assert len(offered) == 120
    assert refused, "the offers were raced"
    with psycopg.connect(cluster.store, autocommit=True) as conn:  # the database's own count
        seats = dict(conn.execute("SELECT agent_id, count(*) FROM live_members GROUP BY agent_id"))
    assert seats == dict.fromkeys(RACE_AGENTS, 40), seats
    assert cluster.holder()[0] == holder  # nobody lost the lease meanwhile
    assert set(cluster.stop_all().values()) == {0}


async def test_kill_the_holder_under_load(cluster: Cluster) -> None:
    """SIGKILL of the lease holder, again and again under load: another node takes over within
    the lease time plus a bound; nothing acknowledged lost or doubled, no chat without a ticket,
    no chat with two owners, no offer or deadline left pending at the end."""
    seed = int(os.environ.get("HELPLINE_CRASH_SEED", random.randrange(2**32)))
    with trio.fail_after(DEADLINE * 2):
        report = await failover_run(cluster, nodes=3, kills=KILLS, seed=seed, pause=(1.0, 2.0))
    summary = report.summary()
    print(summary, report.takeover_seconds, report.failover_seconds)
    assert report.kills == KILLS, summary
    assert max(report.takeover_seconds) < TAKEOVER_BOUND, report.takeover_seconds
    assert report.epochs == sorted(set(report.epochs)), report.epochs  # every kill a new epoch
    assert report.acknowledged > 100, summary
    assert report.lost_messages == [], summary
    assert report.messages_twice == [], summary
    assert report.lost_chats == [], summary
    assert report.tickets_twice == 0, summary
    assert report.two_owners == [], summary
    assert report.gapless, summary
    assert report.journal_left == (0, 0), summary
    assert set(report.stop_status.values()) == {0}, report.stop_status


TIMER_CONFIG = """
[[departments]]
id = "sales"
name = "Sales"
queue_timeout = 4

[[agents]]
id = "ann"
name = "Ann"
departments = ["sales"]
capacity = 1
"""


async def test_a_pending_timer_fires_on_the_next_holder(cluster: Cluster) -> None:
    """A chat waiting in the queue when the holder is killed still times out, on the node that
    takes over, at the deadline the old holder had set."""
    cluster.config = TIMER_CONFIG
    await trio.to_thread.run_sync(cluster.start_many, ["n0", "n1"])
    holder = await trio.to_thread.run_sync(cluster.wait_holder)
    other = "n1" if holder == "n0" else "n0"
    admin = await trio.to_thread.run_sync(cluster.admin_token)
    with trio.fail_after(DEADLINE):
        async with connect(cluster.url(other), role="admin", token=admin) as desk:
            token = str((await desk.request("token_issue", agent_id="ann"))["token"])
        async with (
            connect(cluster.url(other), role="agent", token=token) as ann,
            connect(cluster.url(other), role="visitor") as first,
            connect(cluster.url(other), role="visitor") as second,
        ):
            await ann.request("set_status", status="online")
            await first.request("open_chat", department="sales", name="V1", question="?")
            offer = await ann.wait_for("offer")
            await ann.request("accept", offer_id=offer.fields["offer_id"])
            queued = await second.request("open_chat", department="sales", name="V2", question="?")
            chat_id = str(queued["chat_id"])
            queued_at = time.monotonic()
            await trio.to_thread.run_sync(cluster.kill, holder)
        await trio.to_thread.run_sync(lambda: cluster.wait_holder(other_than=holder))
        async with open_store(cluster.store) as store:
            while True:
                try:
                    ticket = await store.ticket_for_chat(chat_id)
                except StoreError:
                    await trio.sleep(0.2)
                    continue
                break
    assert ticket.end_reason == "queue_timeout"
    assert time.monotonic() - queued_at >= 4 - 0.5
    assert set(cluster.stop_all().values()) == {0}


ADDRESS_CONFIG = """
[server]
max_chats_per_address = 1

[[departments]]
id = "sales"
name = "Sales"

[[agents]]
id = "ann"
name = "Ann"
departments = ["sales"]
"""


async def _visitor_from(
    url: str, source: str, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """A visitor connecting from the loopback address ``source`` opens a chat and stays;
    ``task_status`` gets "ok" or the error code."""
    host, port = url.removeprefix("ws://").split(":")
    while True:  # until the follower knows the holder (it looks every RENEW seconds)
        sock = trio.socket.socket()
        await sock.bind((source, 0))
        await sock.connect((host, int(port)))
        code: int | None = None
        try:
            async with connect_stream(trio.SocketStream(sock), role="visitor") as client:
                try:
                    await client.request("open_chat", department="sales", name="V", question="?")
                except ClientError as exc:
                    task_status.started(exc.code)
                    return
                task_status.started("ok")
                await trio.sleep_forever()
        except ClientClosed as exc:
            code = exc.code
        if code != 1013:
            raise AssertionError(f"closed with {code}")
        await trio.sleep(RENEW)


async def test_relayed_clients_are_counted_by_their_own_address(cluster: Cluster) -> None:
    """The per-address limit counts the address a follower relays for, not the follower's."""
    cluster.config = ADDRESS_CONFIG
    await trio.to_thread.run_sync(cluster.start_many, ["n0", "n1"])
    holder = await trio.to_thread.run_sync(cluster.wait_holder)
    follower = cluster.url("n1" if holder == "n0" else "n0")
    admin = await trio.to_thread.run_sync(cluster.admin_token)
    with trio.fail_after(DEADLINE):
        async with connect(cluster.url(holder), role="admin", token=admin) as desk:
            token = str((await desk.request("token_issue", agent_id="ann"))["token"])
        async with (
            connect(cluster.url(holder), role="agent", token=token) as ann,
            trio.open_nursery() as nursery,
        ):
            await ann.request("set_status", status="online")  # chats wait for her
            first = await nursery.start(_visitor_from, follower, "127.0.0.2")
            other = await nursery.start(_visitor_from, follower, "127.0.0.3")
            same = await nursery.start(_visitor_from, follower, "127.0.0.2")
            nursery.cancel_scope.cancel()
    assert (first, other, same) == ("ok", "ok", "too_many_chats")
    assert set(cluster.stop_all().values()) == {0}


async def test_a_paused_holder_is_fenced_and_rejoins(cluster: Cluster) -> None:
    """SIGSTOP the holder past its lease: another node takes over; after SIGCONT the old holder
    writes nothing (its writes are refused), closes its clients and follows the new holder."""
    await trio.to_thread.run_sync(cluster.start_many, ["n0", "n1"])
    first = await trio.to_thread.run_sync(cluster.wait_holder)
    second = "n1" if first == "n0" else "n0"
    admin = await trio.to_thread.run_sync(cluster.admin_token)
    outcome: list[object] = []

    async def rename(client: object) -> None:
        try:
            await client.request("department_update", id="sales", name="Renamed")  # type: ignore[attr-defined]
            outcome.append("written")
        except (ClientError, ClientClosed) as exc:
            outcome.append(exc)

    with trio.fail_after(DEADLINE):
        async with (
            connect(cluster.url(first), role="admin", token=admin) as old,
            trio.open_nursery() as nursery,
        ):
            await old.request("agent_list")
            await trio.to_thread.run_sync(cluster.pause, first)
            took = await trio.to_thread.run_sync(
                lambda: cluster.wait_holder(other_than=first, timeout=TAKEOVER_BOUND + 5)
            )
            assert took == second
            _, epoch, _ = cluster.holder()
            nursery.start_soon(rename, old)  # waits in the paused holder's socket
            await trio.sleep(0.2)
            await trio.to_thread.run_sync(cluster.resume, first)
            assert await _closed_code(old) in (1012, 1006)  # the old holder hands over
        assert len(outcome) == 1
        assert outcome[0] != "written", outcome
        with psycopg.connect(cluster.store, autocommit=True) as conn:
            row = conn.execute("SELECT name FROM departments WHERE id = 'sales'").fetchone()
        assert row == ("Sales",), "the paused holder wrote after it lost the lease"
        # Through the old holder's port, the desk is the new holder's.
        async with connect(cluster.urls, role="admin", token=admin, retry_for=10) as again:
            await again.request("agent_list")
    assert cluster.holder()[:2] == (second, epoch)
    log_file = cluster.root / first / "daemon.log"
    with trio.fail_after(DEADLINE):  # it logs once its engine is left, after closing clients
        while "stepped_down" not in (log := log_file.read_text()):  # noqa: ASYNC110 (a file)
            await trio.sleep(0.1)
    assert ("lease_lost" in log) or ("engine_stopped" in log)
    assert set(cluster.stop_all().values()) == {0}


async def _closed_code(client: Client) -> int | None:
    """Ask until the connection closes; its close code."""
    with trio.fail_after(10):
        while True:
            try:
                await client.request("agent_list")
            except ClientClosed as exc:
                return exc.code
            await trio.sleep(0.1)


def _listed(url: str) -> list[str] | None:
    """GET /nodes on the node at ``url``: its URL list, or None while it answers no list (no
    holder yet: 503)."""
    try:
        with urllib.request.urlopen(f"{url.replace('ws://', 'http://')}/nodes", timeout=10) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            urls: list[str] = json.loads(r.read())["urls"]
            return urls
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise
        return None


def _until_listed(url: str, expected: list[str]) -> list[str] | None:
    """Ask ``url`` for the node list until it is ``expected`` (or DEADLINE passes); the last."""
    deadline = time.monotonic() + DEADLINE
    while (urls := _listed(url)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return urls


def test_every_node_lists_the_live_nodes(cluster: Cluster) -> None:
    """/nodes on either of two nodes lists both URLs, the holder's first (a follower relays the
    request to it); a node killed drops out once it is no longer seen."""
    cluster.start_many(["n0", "n1"])
    holder = cluster.wait_holder()
    other = "n1" if holder == "n0" else "n0"
    both = [cluster.url(holder), cluster.url(other)]
    assert _until_listed(cluster.url(holder), both) == both
    assert _until_listed(cluster.url(other), both) == both
    cluster.kill(other)
    assert _until_listed(cluster.url(holder), [cluster.url(holder)]) == [cluster.url(holder)]
    assert set(cluster.stop_all().values()) == {0}


def test_mistakes_refused_and_nodes_listed(cluster: Cluster) -> None:
    """A node of another schema version cannot join, nor a daemon started without --node;
    `helpline nodes` shows who holds what."""
    cluster.start_many(["n0", "n1"])
    holder = cluster.wait_holder()
    listing = subprocess.run(
        helpline("nodes", "--store", cluster.store),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    lines = listing.splitlines()
    assert lines[0].startswith(f"lease: held by {holder}, epoch 1, expires in ")
    assert lines[1].split() == ["NODE", "URL", "DEPARTMENTS", "SCHEMA", "SEEN", "CONNECTIONS"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"n0", "n1"}
    assert rows[holder][1:4] == [cluster.url(holder), "sales", str(latest("postgresql"))]
    other = "n1" if holder == "n0" else "n0"
    assert rows[other][2] == "-"
    http = cluster.url(other).replace("ws://", "http://")
    with urllib.request.urlopen(f"{http}/readyz", timeout=10) as ready:  # relayed to the holder
        assert ready.status == 200
    with psycopg.connect(cluster.store, autocommit=True) as conn:
        conn.execute(
            # seen "now" for the next minute: however slowly the next node starts, it is live
            "INSERT INTO cluster_nodes VALUES ('old', 'x', 'ws://127.0.0.1:1', %s, now(),"
            " now() + interval '1 minute', 0)",
            (latest("postgresql") - 1,),
        )
    done = subprocess.run(
        helpline("serve", "--port", "0", "--store", cluster.store, "--node", "n2"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "node old runs schema version" in done.stderr
    assert "Traceback" not in done.stderr
    alone = subprocess.run(  # a daemon that is not a node cannot join the desk unawares
        helpline("serve", "--port", "0", "--store", cluster.store),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert alone.returncode == 1
    assert "another helpline daemon is serving" in alone.stderr
    help_text = subprocess.run(
        helpline("nodes", "--help"), capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "--store URL" in help_text
    started = time.monotonic()
    assert set(cluster.stop_all().values()) == {0}
    assert time.monotonic() - started < 30
