"""Admins and the agent's workspace over the wire: departments, agents, tokens, tickets, canned."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from engine import CannedMessage, Engine
from protocol import ClientError
from protocol._daemon import seed_canned

from .gateway_harness import accept, open_chat, open_gateway, refused


class TestAdmin:
    async def test_departments(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Departments are added once, updated in part, and listed."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            added = await admin.request(
                "department_add", id="billing", name="Billing", routing="assigned", offer_window=20
            )
            assert {
                "id": "billing",
                "name": "Billing",
                "chat_enabled": True,
                "routing": "assigned",
                "offer_window": 20.0,
                "queue_timeout": 300.0,
                "queue_limit": 50,
            } == dict(added["department"])  # type: ignore[call-overload]
            await refused("invalid_state", admin.request("department_add", id="billing", name="B"))
            updated = await admin.request("department_update", id="billing", chat_enabled=False)
            assert updated["department"]["chat_enabled"] is False  # type: ignore[index]
            assert "Billing" == updated["department"]["name"]  # type: ignore[index]
            await refused("not_found", admin.request("department_update", id="mars"))
            listed = await admin.request("department_list")
            assert ["billing", "closed", "sales", "support"] == [
                d["id"]
                for d in listed["departments"]  # type: ignore[union-attr]
            ]

    async def test_agents_and_tokens(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A new agent gets a token, signs in and takes chats at once."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            added = await admin.request("agent_add", id="eve", name="Eve", departments=["sales"])
            assert ("eve", "offline", 3) == (
                added["agent"]["id"],  # type: ignore[index]
                added["agent"]["status"],  # type: ignore[index]
                added["agent"]["capacity"],  # type: ignore[index]
            )
            await refused(
                "invalid_state",
                admin.request("agent_add", id="eve", name="E", departments=["sales"]),
            )
            await refused(
                "not_found", admin.request("agent_add", id="fay", name="F", departments=["mars"])
            )
            await refused("not_found", admin.request("token_issue", agent_id="nobody"))
            token = (await admin.request("token_issue", agent_id="eve"))["token"]
            async with gw.connect(role="agent", token=token) as eve, gw.visitor() as v:
                await eve.request("set_status", status="online")
                chat_id = await open_chat(v)
                await accept(eve, chat_id)
                await eve.request("send", chat_id=chat_id, text="Eve here")
                assert "Eve" == (await v.wait_for("message")).fields["author_name"]
            listed = await admin.request("agent_list")
            assert "eve" in [a["id"] for a in listed["agents"]]  # type: ignore[union-attr]

    async def test_agent_remove(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Removing an agent closes its connections with 1008 and revokes its token."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            token = (await admin.request("token_issue", agent_id="ann"))["token"]
            async with gw.connect(role="agent", token=token) as ann:
                await admin.request("agent_remove", id="ann")
                assert 1008 == await ann.wait_closed()
            with pytest.raises(ClientError) as info:
                async with gw.connect(role="agent", token=token):
                    pass
            assert "unauthorized" == info.value.code
            await refused("not_found", admin.request("agent_remove", id="ann"))

    async def test_tickets(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Ticket views list summaries; one ticket has its transcript; missed chats are marked."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            async with gw.visitor() as v:
                missed = await open_chat(v, department="support")
                await v.wait_for("ended")
            async with gw.agent("ann") as ann, gw.visitor() as v:
                done = await open_chat(v)
                await accept(ann, done)
                await v.request("send", text="thanks")
                await ann.request("end_chat", chat_id=done)
                listed = await ann.request("tickets", view="all")
                assert [done] == [t["chat_id"] for t in listed["tickets"]]  # type: ignore[union-attr]
                await refused("forbidden", ann.request("tickets", view="all", department="support"))
                missed_id = (await engine.ticket_for_chat(missed)).id
                await refused("not_found", ann.request("ticket", ticket_id=missed_id))
            views = {}
            for view in ("missed", "all"):
                reply = await admin.request("tickets", view=view)
                views[view] = [t["chat_id"] for t in reply["tickets"]]  # type: ignore[union-attr]
            assert {"missed": [missed], "all": [done, missed]} == views
            summary = (
                await admin.request("tickets", view="visitor", visitor_email="VERA@example.com")
            )["tickets"][0]  # type: ignore[index]
            assert "entries" not in summary
            ticket = (await admin.request("ticket", ticket_id=summary["id"]))["ticket"]
            assert ["joined", "message", "ended"] == [
                e["kind"]
                for e in ticket["entries"]  # type: ignore[index]
            ]
            await refused("invalid_state", admin.request("mark_handled", ticket_id=summary["id"]))
            marked = await admin.request("mark_handled", ticket_id=missed_id)
            assert {"ticket_id": missed_id, "handled": True} == dict(marked)
            await refused("not_found", admin.request("ticket", ticket_id=10**9))

    async def test_agent_of_several_departments(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent's views merge its departments' tickets, newest first, and page exactly."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            for department in ("sales", "support", "sales", "support", "sales"):
                async with gw.visitor() as v:
                    await open_chat(v, department=department)
                    await v.wait_for("ended")
                await trio.sleep(1)
            everything = await admin.request("tickets", view="missed")
            ids = [t["id"] for t in everything["tickets"]]  # type: ignore[union-attr]
            async with gw.agent("bob", online=False) as bob:
                page = await bob.request("tickets", view="missed", limit=2, offset=1)
                assert ids[1:3] == [t["id"] for t in page["tickets"]]  # type: ignore[union-attr]
            async with gw.agent("cy", online=False) as cy:
                mine = await cy.request("tickets", view="department")
                assert ["support", "support"] == [
                    t["department"]
                    for t in mine["tickets"]  # type: ignore[union-attr]
                ]

    async def test_rating_report(self, engine: Engine, autojump_clock: MockClock) -> None:
        """The report counts ratings in total, per owning agent and per department."""
        async with open_gateway(engine) as gw, gw.admin() as admin, gw.agent("ann") as ann:
            async with gw.visitor() as v:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
                await ann.request("end_chat", chat_id=chat_id)
                await v.wait_for("ended")
                await v.request("rate", rating="good")
            report = await admin.request("rating_report")
            assert (1, 0, 0) == (report["good"], report["neutral"], report["bad"])
            assert [{"agent_id": "ann", "good": 1, "neutral": 0, "bad": 0}] == [
                dict(r)
                for r in report["by_agent"]  # type: ignore[union-attr]
            ]

    async def test_roles_are_enforced(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A request of another role is forbidden; the connection stays open."""
        async with open_gateway(engine) as gw, gw.visitor() as v, gw.agent("ann") as ann:
            await refused("forbidden", v.request("agent_list"))
            await refused("forbidden", ann.request("department_add", id="x", name="X"))
            await v.request("ping")

    async def test_available_agents(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An admin sees who can take a chat, like an agent does."""
        async with open_gateway(engine) as gw, gw.admin() as admin, gw.agent("bob"):
            reply = await admin.request("available_agents", department="support")
            assert ["bob"] == [a["id"] for a in reply["agents"]]  # type: ignore[union-attr]


class TestCanned:
    async def test_suggest_and_pick(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Suggestions match the draft after '#'; a pick fills in the visitor's name."""
        messages = (
            CannedMessage(id="hi", text="Hello {visitor.name}!", category="g", created_at=0),
            CannedMessage(id="bye", text="Bye", category="g", department="sales", created_at=0),
            CannedMessage(id="no", text="Hello?", category="g", department="support", created_at=0),
        )
        await seed_canned(engine, messages)
        async with open_gateway(engine) as gw, gw.agent("ann") as ann:
            async with gw.visitor() as v:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
                reply = await ann.request("canned_suggest", draft="well #hel")
                assert [{"message_id": "hi", "text": "Hello {visitor.name}!"}] == [
                    dict(s)
                    for s in reply["suggestions"]  # type: ignore[union-attr]
                ]
                listed = await ann.request("canned_suggest", draft="", limit=5)
                assert 2 == len(listed["suggestions"])  # type: ignore[arg-type]
                picked = await ann.request("canned_pick", message_id="hi", chat_id=chat_id)
                assert {"message_id": "hi", "text": "Hello Vera!"} == dict(picked)
                await refused(
                    "not_found", ann.request("canned_pick", message_id="x", chat_id=chat_id)
                )
