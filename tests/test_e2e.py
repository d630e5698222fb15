"""End to end: a real ``helpline serve`` process on a loopback port, driven by real clients.

One daemon serves the whole module (tests run in file order; the last one stops it with SIGTERM
and reads the SQLite file). Time is real here, so delays are kept short.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio

from bench._daemonproc import Daemon, helpline, start_daemon
from engine import open_store
from protocol import Client, ClientError, connect, encode_request

CONFIG = """
[engine]
handoff_timeout = 10
visitor_grace = 5
agent_grace = 5

[[departments]]
id = "sales"
name = "Sales"
offer_window = 10

[[departments]]
id = "support"
name = "Support"

[[departments]]
id = "billing"
name = "Billing"

[[agents]]
id = "ann"
name = "Ann"
departments = ["sales"]

[[agents]]
id = "bob"
name = "Bob"
departments = ["sales", "support"]

[[agents]]
id = "cy"
name = "Cy"
departments = ["support"]
"""

OPENED: list[str] = []  # every chat the module opened: each must end as exactly one ticket
DEADLINE = 30.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("e2e")
    config = root / "helpline.toml"
    config.write_text(CONFIG)
    running = start_daemon(root, "--config", str(config))
    try:
        yield running
    finally:
        running.kill()


async def open_chat(visitor: Client, department: str, question: str) -> str:
    reply = await visitor.request(
        "open_chat", department=department, name="Mina", email="mina@example.com", question=question
    )
    chat_id = reply["chat_id"]
    assert isinstance(chat_id, str)
    OPENED.append(chat_id)
    return chat_id


async def take(agent: Client, chat_id: str, kind: str = "chat") -> Any:
    """Wait for the agent's offer for ``chat_id`` of ``kind`` and accept it."""
    offer = await agent.wait_for("offer", chat_id=chat_id, kind=kind)
    return await agent.request("accept", offer_id=offer.fields["offer_id"])


class TestDaemon:
    async def test_a_day_at_the_help_desk(self, daemon: Daemon) -> None:
        """Offer, accept, messages, transfer, invite, a delayed end and a missed chat, read back."""
        url, admin_token = daemon.url, daemon.admin_token
        assert admin_token is not None
        with trio.fail_after(DEADLINE):
            issued = await trio.run_process(
                helpline("token", "ann", "--db", str(daemon.db)), capture_stdout=True
            )
            ann_token = issued.stdout.decode().strip()  # issued from the shell, daemon running
            async with connect(url, role="admin", token=admin_token) as admin:
                tokens = {
                    agent: (await admin.request("token_issue", agent_id=agent))["token"]
                    for agent in ("bob", "cy")
                }
                async with (
                    connect(url, role="agent", token=ann_token) as ann,
                    connect(url, role="agent", token=tokens["bob"]) as bob,
                    connect(url, role="agent", token=tokens["cy"]) as cy,
                ):
                    for agent in (ann, bob, cy):
                        await agent.request("set_status", status="online")
                    async with connect(url, role="visitor") as visitor:
                        chat_id = await open_chat(visitor, "sales", "Do you ship to Osaka?")
                        offered = await bob.wait_for("offer", chat_id=chat_id)
                        chat = await take(ann, chat_id)
                        assert ("ann", "Do you ship to Osaka?") == (chat["owner"], chat["question"])
                        withdrawn = await bob.wait_for("offer_withdrawn")
                        assert (offered.fields["offer_id"], "taken") == (
                            withdrawn.fields["offer_id"],
                            withdrawn.fields["reason"],
                        )
                        await visitor.request("send", text="Hello!", client_msg_id="m-1")
                        await ann.request("send", chat_id=chat_id, text="We do, in three days.")
                        await ann.request(
                            "transfer", chat_id=chat_id, to_agent="bob", note="invoice question"
                        )
                        await take(bob, chat_id, "transfer")
                        result = await ann.wait_for("handoff_result")
                        assert "accepted" == result.fields["outcome"]
                        await bob.request("invite", chat_id=chat_id, to_agent="cy", note="terms?")
                        joined = await take(cy, chat_id, "invite")
                        assert ("bob", ("bob", "cy")) == (joined["owner"], joined["agents"])
                        await cy.request("send", chat_id=chat_id, text="Invoices are fine.")
                        ending = await bob.request("end_chat", chat_id=chat_id, delay=0.5)
                        assert "ending_at" in ending
                        assert (
                            0.5 == (await visitor.wait_for("system", kind="ending")).fields["delay"]
                        )
                        ended = await visitor.wait_for("ended")
                        assert "agent_ended" == ended.fields["reason"]
                        await visitor.request("rate", rating="good", comment="Quick")
                    async with connect(url, role="visitor") as visitor:
                        missed_id = await open_chat(visitor, "billing", "Can I pay later?")
                        missed = await visitor.wait_for("ended")
                        assert "no_agent_online" == missed.fields["reason"]

                ticket = (await admin.request("ticket", ticket_id=ended.fields["ticket_id"]))[
                    "ticket"
                ]
                assert ("transcript", ("ann", "bob", "cy"), "bob", "good") == (
                    ticket["kind"],
                    ticket["agents"],
                    ticket["owner"],
                    ticket["rating"],
                )
                lines = [
                    (e["kind"], e.get("author"), e["text"])
                    for e in ticket["entries"]
                    if e["kind"] == "message"
                ]
                assert [
                    ("message", "visitor", "Hello!"),
                    ("message", "ann", "We do, in three days."),
                    ("message", "cy", "Invoices are fine."),
                ] == lines
                assert [("transfer", "bob", "accepted"), ("invite", "cy", "accepted")] == [
                    (h["kind"], h["to_agent"], h["outcome"]) for h in ticket["handoffs"]
                ]
                missed_view = await admin.request("tickets", view="missed")
                assert [missed_id] == [t["chat_id"] for t in missed_view["tickets"]]

    async def test_garbage_leaves_the_daemon_serving(self, daemon: Daemon) -> None:
        """Non-WebSocket bytes and a broken frame are refused; the daemon serves on."""
        address = urlsplit(daemon.url)
        assert address.hostname is not None
        assert address.port is not None
        with trio.fail_after(DEADLINE):
            stream = await trio.open_tcp_stream(address.hostname, address.port)
            async with stream:
                await stream.send_all(b"\x16\x03\x01 not an HTTP request\r\n\r\n")
                answer = b""
                while chunk := await stream.receive_some():
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 400")
            async with connect(daemon.url) as raw:
                await raw.send_raw(b"\xc1\xc1\xc1")
                error = await raw.receive()
                assert ("error", "malformed") == (error.name, error.fields["code"])
                assert 1008 == await raw.wait_closed()
            async with connect(daemon.url, role="visitor") as visitor:
                assert "at" in await visitor.request("ping")
                with pytest.raises(ClientError) as info:
                    await visitor.request("agent_list")
                assert "forbidden" == info.value.code

    async def test_oversized_frame(self, daemon: Daemon) -> None:
        """A message over the frame limit is closed with 1009 by the WebSocket layer."""
        with trio.fail_after(DEADLINE):
            async with connect(daemon.url, role="visitor") as visitor:
                await visitor.send_raw(encode_request("ping", 9, pad="x" * 70_000))
                assert 1009 == await visitor.wait_closed()

    async def test_a_supervisor_whispers_unseen(self, daemon: Daemon) -> None:
        """A supervisor lists the live chats, monitors one and whispers to its agent; the visitor
        sees nothing of it, live or when it resumes, and the ticket keeps it as internal."""
        url = daemon.url
        with trio.fail_after(DEADLINE):
            issued = await trio.run_process(
                helpline(
                    "token", "--supervisor", "sue", "--department", "sales", "--db", str(daemon.db)
                ),
                capture_stdout=True,
            )
            sue_token = issued.stdout.decode().strip()
            async with connect(url, role="admin", token=daemon.admin_token) as admin:
                ann_token = (await admin.request("token_issue", agent_id="ann"))["token"]
                async with (
                    connect(url, role="agent", token=ann_token) as ann,
                    connect(url, role="visitor") as visitor,
                    connect(url, role="supervisor", token=sue_token) as sue,
                ):
                    assert dict(sue.hello["supervisor"]) == {  # type: ignore[call-overload]
                        "id": "supervisor:sue",
                        "name": "sue",
                        "departments": ("sales",),
                    }
                    await ann.request("set_status", status="online")
                    opened = await visitor.request(
                        "open_chat", department="sales", name="Mina", question="A discount?"
                    )
                    chat_id = str(opened["chat_id"])
                    await take(ann, chat_id)
                    await visitor.request("send", text="Is there a discount?")
                    desk = await sue.request("supervise_start")
                    [row] = [c for c in desk["chats"] if c["chat_id"] == chat_id]
                    assert (row["state"], row["owner"]) == ("active", "ann")
                    monitored = await sue.request("monitor", chat_id=chat_id)
                    replayed = await sue.wait_for("message", seq=monitored["seq"])
                    assert replayed.fields["text"] == "Is there a discount?"
                    whisper = await sue.request("whisper", chat_id=chat_id, text="Offer 10%")
                    heard = await ann.wait_for("whisper", chat_id=chat_id)
                    assert (heard.fields["seq"], heard.fields["text"]) == (
                        whisper["seq"],
                        "Offer 10%",
                    )
                    await ann.request("send", chat_id=chat_id, text="We can do 10% off.")
                    answer = await visitor.wait_for("message", author="ann")
                    assert answer.fields["seq"] > whisper["seq"]
                    await sue.wait_for("message", author="ann")
                    changed = await sue.wait_for("desk_changed")
                    assert chat_id in [c["chat_id"] for c in changed.fields["chats"]]
                    seen = visitor.pending_events()
                    assert all(e.name != "whisper" for e in seen)
                    assert all("Offer 10%" not in str(e.fields) for e in seen)
                    token = str(opened["resume_token"])
                    await visitor.aclose()
                async with connect(
                    url, role="visitor", resume_token=token, last_seq=0, chat_id=chat_id
                ) as again:
                    assert again.hello["resumed"] is True
                    await again.wait_for("message", author="ann")
                    replay = again.pending_events()
                    assert all(e.name != "whisper" for e in replay)
                    async with connect(url, role="agent", token=ann_token) as ann_again:
                        ended = await ann_again.request("end_chat", chat_id=chat_id)
                    await again.wait_for("ended")
                    assert await again.request("rate", rating="good") == {}
                ticket = (await admin.request("ticket", ticket_id=ended["ticket_id"]))["ticket"]
                [internal] = [e for e in ticket["entries"] if e["kind"] == "whisper"]
                assert (internal["text"], internal["internal"]) == ("Offer 10%", True)
                audit = await admin.request("audit_list", actor="supervisor:sue")
                assert [e["action"] for e in audit["entries"]] == ["whisper", "monitor"]
        async with open_store(daemon.db, synchronous="NORMAL") as store:
            stored = await store.ticket_for_chat(chat_id)
        assert "Offer 10%" not in [e.text for e in stored.for_visitor().entries]

    async def test_sigterm_ends_every_chat(self, daemon: Daemon, tmp_path: Path) -> None:
        """SIGTERM: clients get shutdown and 1001, the daemon exits 0, every chat is a ticket."""
        url, ann_token = daemon.url, None
        with trio.fail_after(DEADLINE):
            async with connect(url, role="admin", token=daemon.admin_token) as admin:
                ann_token = (await admin.request("token_issue", agent_id="ann"))["token"]
            async with (
                connect(url, role="agent", token=ann_token) as ann,
                connect(url, role="visitor") as visitor,
            ):
                await ann.request("set_status", status="online")
                chat_id = await open_chat(visitor, "sales", "Still open at closing time?")
                await take(ann, chat_id)
                await visitor.request("send", text="Are you closing?")
                daemon.process.send_signal(signal.SIGTERM)
                for client in (ann, visitor):
                    shutdown = await client.wait_for("shutdown")
                    assert shutdown.fields["reason"]
                    assert 1001 == await client.wait_closed()
            status = await trio.to_thread.run_sync(daemon.stop, None)
        assert 0 == status
        async with open_store(daemon.db, synchronous="NORMAL") as store:
            tickets = {chat: await store.ticket_for_chat(chat) for chat in OPENED}
        last = tickets[chat_id]
        assert ("transcript", "shutdown", ("ann",)) == (
            last.kind.value,
            last.end_reason.value,
            last.agents,
        )
        assert "Are you closing?" in [e.text for e in last.entries]
        assert 3 == len({t.id for t in tickets.values()})
