"""A real `helpline serve --store postgresql://...`: a chat end to end, and SIGKILL under load.

The crash test reuses the scenario of `bench/_crash.py` (visitors and agents that reconnect and
resend, a ledger of what was acknowledged) with the daemon's store on PostgreSQL: killed with
SIGKILL at random moments and started again at once, then stopped normally. Nothing acknowledged
may be lost and no ticket written twice. Both skip without HELPLINE_TEST_POSTGRES.
"""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import trio

from bench._crash import AGENTS, CONFIG, VISITORS, Ledger, agent, issue_tokens, visitor
from bench._daemonproc import Daemon, helpline, start_daemon
from engine import open_store
from protocol import connect

from .postgres import fresh_schema

KILLS: Final = 6
DEADLINE: Final = 300.0  # a safety net for a busy machine, not a timing check

E2E_CONFIG = """
[[departments]]
id = "sales"
name = "Sales"

[[agents]]
id = "ann"
name = "Ann"
departments = ["sales"]
"""


@pytest.fixture
def pg_store() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


def serve(root: Path, config: str, store: str) -> Daemon:
    path = root / "helpline.toml"
    path.write_text(config)
    return start_daemon(root, "--config", str(path), "--store", store)


async def test_a_chat_end_to_end(tmp_path: Path, pg_store: str) -> None:
    """A chat opened, talked in and ended over the wire is a ticket in PostgreSQL."""
    daemon = await trio.to_thread.run_sync(serve, tmp_path, E2E_CONFIG, pg_store)
    try:
        assert daemon.admin_token is not None
        assert not (tmp_path / "helpline.db").exists(), "--store wins over the default --db"
        with trio.fail_after(30):
            async with connect(daemon.url, role="admin", token=daemon.admin_token) as admin:
                token = (await admin.request("token_issue", agent_id="ann"))["token"]
                async with (
                    connect(daemon.url, role="agent", token=token) as ann,
                    connect(daemon.url, role="visitor") as vic,
                ):
                    await ann.request("set_status", status="online")
                    reply = await vic.request(
                        "open_chat", department="sales", name="Vic", question="Parcel?"
                    )
                    chat_id = str(reply["chat_id"])
                    offer = await ann.wait_for("offer", chat_id=chat_id)
                    await ann.request("accept", offer_id=offer.fields["offer_id"])
                    await vic.request("send", text="Where is it?", client_msg_id="m-1")
                    await ann.request("send", chat_id=chat_id, text="On its way.")
                    await ann.request("end_chat", chat_id=chat_id)
                    ended = await vic.wait_for("ended")
                ticket = (await admin.request("ticket", ticket_id=ended.fields["ticket_id"]))[
                    "ticket"
                ]
        assert (ticket["chat_id"], ticket["owner"]) == (chat_id, "ann")  # type: ignore[index]
    finally:
        status = await trio.to_thread.run_sync(daemon.stop)
    assert status == 0
    async with open_store(pg_store) as store:
        stored = await store.ticket_for_chat(chat_id)
    assert [e.text for e in stored.entries if e.kind == "message"] == [
        "Where is it?",
        "On its way.",
    ]


async def test_sigkill_under_load_loses_nothing(tmp_path: Path, pg_store: str) -> None:
    """SIGKILL under load: no acknowledged message, chat or ticket lost or doubled."""
    seed = int(os.environ.get("HELPLINE_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    with trio.fail_after(DEADLINE):
        daemon = await trio.to_thread.run_sync(serve, tmp_path, CONFIG, pg_store)
        ledger = Ledger(url=daemon.url)
        try:
            assert daemon.admin_token is not None
            tokens = await issue_tokens(daemon.url, daemon.admin_token)
            async with trio.open_nursery() as clients:
                for agent_id in AGENTS:
                    clients.start_soon(agent, ledger, agent_id, tokens[agent_id], rng)
                for n in range(VISITORS):
                    clients.start_soon(visitor, ledger, n, rng)
                for _ in range(KILLS):
                    await trio.sleep(rng.uniform(1.0, 2.5))
                    await trio.to_thread.run_sync(daemon.kill)
                    ledger.kills += 1
                    daemon = await trio.to_thread.run_sync(serve, tmp_path, CONFIG, pg_store)
                    ledger.url = daemon.url
                await trio.sleep(1.0)
                ledger.stop.set()
            status = await trio.to_thread.run_sync(daemon.stop)
        finally:
            daemon.kill()
        async with open_store(pg_store) as store:
            tickets = await store.tickets(limit=1000)
            live = await store.live_state()
    summary = (
        f"seed {seed}: {ledger.kills} kills, {len(ledger.opened)} chats,"
        f" {len(ledger.acked)} acknowledged messages, {len(tickets)} tickets"
    )
    print(summary)
    by_chat = {t.chat_id: [(e.seq, e.text, e.client_msg_id) for e in t.entries] for t in tickets}
    lost = [
        (chat, cid)
        for (chat, cid), (seq, text) in ledger.acked.items()
        if (seq, text, cid) not in by_chat.get(chat, [])
    ]
    assert status == 0, summary
    assert ledger.kills == KILLS, summary
    assert len(ledger.acked) > 200, summary  # the load was real
    assert len(by_chat) == len(tickets), f"a ticket was written twice: {summary}"
    assert sorted(c for c in ledger.opened if c not in by_chat) == [], summary
    assert lost == [], summary
    assert (len(live.chats), len(live.graces)) == (0, 0), summary
    for lines in by_chat.values():
        ids = [cid for _, _, cid in lines if cid]
        assert len(ids) == len(set(ids)), f"a message stored twice: {summary}"
        assert [seq for seq, _, _ in lines] == list(range(1, len(lines) + 1)), summary


def test_a_second_daemon_on_one_store_is_refused(tmp_path: Path, pg_store: str) -> None:
    """A second `serve` on a PostgreSQL store another daemon serves exits 1 and says so; a daemon
    on another schema of the same database starts."""
    first = serve(tmp_path, E2E_CONFIG, pg_store)
    try:
        done = subprocess.run(
            helpline("serve", "--port", "0", "--store", pg_store),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 1 == done.returncode
        assert "another helpline daemon is serving" in done.stderr
        assert "Traceback" not in done.stderr
        with fresh_schema() as other:
            (tmp_path / "other").mkdir()
            neighbour = serve(tmp_path / "other", E2E_CONFIG, other)
            assert 0 == neighbour.stop()
    finally:
        assert 0 == first.stop()
