"""Admins and the agent's workspace over the wire: departments, agents, tokens, tickets, canned."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from engine import CannedDesk, CannedMessage, Engine
from protocol import SERVER_FRAME_LIMITS, Client, ClientError
from protocol.server.daemon import seed_canned

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
                "overflow_wait": 0.0,
                "overflow_queue": 0,
                "overflow_to": (),
                "silence_timeout": 0.0,
                "skills_wait": 60.0,
                "hours": {"timezone": "UTC", "weekly": (), "holidays": ()},
            } == dict(added["department"])  # type: ignore[call-overload]
            await refused("invalid_state", admin.request("department_add", id="billing", name="B"))
            updated = await admin.request("department_update", id="billing", chat_enabled=False)
            assert updated["department"]["chat_enabled"] is False  # type: ignore[index]
            assert "Billing" == updated["department"]["name"]  # type: ignore[index]
            await refused("not_found", admin.request("department_update", id="mars"))
            hours = await admin.request(
                "department_update",
                id="billing",
                hours_timezone="Europe/Berlin",
                hours_weekly=["mon-fri 09:00-17:00"],
                overflow_to=["sales"],
            )
            assert {
                "timezone": "Europe/Berlin",
                "weekly": ("mon-fri 09:00-17:00",),
                "holidays": (),
            } == (
                hours["department"]["hours"]  # type: ignore[index]
            )
            await refused(
                "invalid_field",
                admin.request("department_update", id="billing", hours_weekly=["9 to 5"]),
            )
            await refused(
                "not_found", admin.request("department_update", id="billing", overflow_to=["x"])
            )
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
            counts = {"good": 1, "neutral": 0, "bad": 0, "scored": 0, "average_score": None}
            assert [{"agent_id": "ann", **counts}] == [
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
                assert [
                    {
                        "message_id": "hi",
                        "text": "Hello {visitor.name}!",
                        "title": "",
                        "shortcut": "",
                        "category": "g",
                        "category_name": "g",
                        "department": None,
                    }
                ] == [
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


async def suggested(agent: Client, draft: str) -> list[object]:
    """The ids of the canned messages ``agent`` is suggested for ``draft``, best first."""
    reply = await agent.request("canned_suggest", draft=draft, limit=50)
    return [s["message_id"] for s in reply["suggestions"]]  # type: ignore[union-attr]


async def listed(admin: Client, **filters: object) -> list[object]:
    """The ids of the canned messages ``canned_list`` returns for ``filters``, in order."""
    reply = await admin.request("canned_list", **filters)
    return [m["id"] for m in reply["messages"]]  # type: ignore[union-attr]


class TestCannedAdmin:
    async def test_messages(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Admins add, list, edit and delete canned messages; agents' suggestions follow at once."""
        async with open_gateway(engine) as gw, gw.admin() as admin, gw.agent("ann") as ann:
            category = await admin.request("canned_category_add", name="Greetings", id="greet")
            assert {"id": "greet", "name": "Greetings"} == dict(category["category"])  # type: ignore[call-overload]
            added = await admin.request(
                "canned_add", text="Hello {visitor.name}!", category="greet", id="hi"
            )
            assert {
                "id": "hi",
                "text": "Hello {visitor.name}!",
                "category": "greet",
                "department": None,
                "created_at": engine.now(),
                "title": "",
                "shortcut": "",
                "reading": "",
            } == dict(added["message"])  # type: ignore[call-overload]
            await trio.sleep(1)
            await admin.request(
                "canned_add",
                text="We ship to Osaka",
                category="greet",
                department="sales",
                id="ship",
            )
            await trio.sleep(1)
            made = await admin.request(
                "canned_add", text="Support hours: 9 to 5", category="greet", department="support"
            )
            hours = made["message"]["id"]  # type: ignore[index]
            assert isinstance(hours, str)
            assert hours

            assert [hours, "ship", "hi"] == await listed(admin)
            assert ["ship", "hi"] == await listed(admin, department="sales")
            assert [hours, "hi"] == await listed(admin, department="support", category="greet")
            assert ["ship", "hi"] == await suggested(ann, "#")
            assert [] == await suggested(ann, "#hours")

            edited = await admin.request("canned_edit", id=hours, shared=True)
            assert edited["message"]["department"] is None  # type: ignore[index]
            assert [hours] == await suggested(ann, "#hours")
            await admin.request("canned_edit", id="ship", department="support")
            assert [] == await suggested(ann, "#osaka")
            edited = await admin.request("canned_edit", id="hi", text="Hi {visitor.name}, welcome!")
            assert ("Hi {visitor.name}, welcome!", None, "greet") == (
                edited["message"]["text"],  # type: ignore[index]
                edited["message"]["department"],  # type: ignore[index]
                edited["message"]["category"],  # type: ignore[index]
            )
            assert ["hi"] == await suggested(ann, "#welc")
            async with gw.visitor() as v:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
                picked = await ann.request("canned_pick", message_id="hi", chat_id=chat_id)
                assert "Hi Vera, welcome!" == picked["text"]

                assert {} == dict(await admin.request("canned_delete", id="hi"))
                assert [] == await suggested(ann, "#welc")
                await refused(
                    "not_found", ann.request("canned_pick", message_id="hi", chat_id=chat_id)
                )
            assert [hours, "ship"] == await listed(admin)

        reloaded = await CannedDesk.open(engine.store, engine.now)
        assert engine.canned.messages() == reloaded.messages()

    async def test_message_errors(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Unknown ids, departments and categories, taken ids, and contradictions are refused."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            await admin.request("canned_category_add", name="General", id="general")
            await admin.request("canned_add", text="Hello!", category="general", id="hi")
            for code, request, fields in (
                ("not_found", "canned_add", {"text": "x", "category": "nope"}),
                (
                    "not_found",
                    "canned_add",
                    {"text": "x", "category": "general", "department": "mars"},
                ),
                ("invalid_state", "canned_add", {"text": "x", "category": "general", "id": "hi"}),
                ("invalid_field", "canned_add", {"text": "  ", "category": "general"}),
                ("not_found", "canned_edit", {"id": "nope", "text": "x"}),
                ("not_found", "canned_edit", {"id": "hi", "category": "nope"}),
                ("not_found", "canned_edit", {"id": "hi", "department": "mars"}),
                (
                    "invalid_field",
                    "canned_edit",
                    {"id": "hi", "department": "sales", "shared": True},
                ),
                ("invalid_field", "canned_edit", {"id": "hi", "shared": False}),
                ("missing_field", "canned_edit", {"id": "hi"}),
                ("not_found", "canned_delete", {"id": "nope"}),
                ("not_found", "canned_list", {"department": "mars"}),
                ("not_found", "canned_list", {"category": "nope"}),
            ):
                error = await refused(code, admin.request(request, **fields))
                assert error.message, (request, fields)
            assert ["hi"] == await listed(admin)
            assert "Hello!" == engine.canned.messages()[0].text
            async with gw.agent("ann") as ann:
                await refused("forbidden", ann.request("canned_add", text="x", category="general"))

    async def test_categories(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A category holding messages is deleted only with them or after moving them."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            made = await admin.request("canned_category_add", name="Shipping")
            shipping = made["category"]["id"]  # type: ignore[index]
            assert isinstance(shipping, str)
            assert shipping
            await admin.request("canned_category_add", name="General", id="general")
            await refused(
                "invalid_state", admin.request("canned_category_add", name="G", id="general")
            )
            renamed = await admin.request(
                "canned_category_rename", id=shipping, name="Shipping and returns"
            )
            assert {"id": shipping, "name": "Shipping and returns"} == dict(renamed["category"])  # type: ignore[call-overload]
            await refused("not_found", admin.request("canned_category_rename", id="x", name="X"))
            await admin.request(
                "canned_add", text="We ship to Osaka", category=shipping, id="osaka"
            )
            await admin.request("canned_add", text="Returns are free", category=shipping, id="free")

            await refused(
                "category_not_empty", admin.request("canned_category_delete", id=shipping)
            )
            await refused(
                "category_not_empty",
                admin.request("canned_category_delete", id=shipping, messages="refuse"),
            )
            for code, fields in (
                ("not_found", {"id": "nope"}),
                ("not_found", {"id": shipping, "messages": "move", "move_to": "nope"}),
                ("invalid_field", {"id": shipping, "messages": "move", "move_to": shipping}),
                ("invalid_field", {"id": shipping, "messages": "delete", "move_to": "general"}),
                ("missing_field", {"id": shipping, "messages": "move"}),
            ):
                await refused(code, admin.request("canned_category_delete", **fields))
            assert ["free", "osaka"] == sorted(await listed(admin, category=shipping))  # type: ignore[type-var]

            moved = await admin.request(
                "canned_category_delete", id=shipping, messages="move", move_to="general"
            )
            assert {"deleted": 0, "moved": 2} == dict(moved)
            reply = await admin.request("canned_list", category="general")
            assert [{"id": "general", "name": "General"}] == [
                dict(c)
                for c in reply["categories"]  # type: ignore[union-attr]
            ]
            assert {"general"} == {m["category"] for m in reply["messages"]}  # type: ignore[union-attr]
            async with gw.agent("ann") as ann:
                assert ["osaka"] == await suggested(ann, "#osaka")

            await admin.request("canned_category_add", name="Old", id="old")
            await admin.request("canned_edit", id="osaka", category="old")
            deleted = await admin.request("canned_category_delete", id="old", messages="delete")
            assert {"deleted": 1, "moved": 0} == dict(deleted)
            assert ["free"] == await listed(admin)
            await admin.request("canned_category_add", name="Empty", id="empty")
            assert {"deleted": 0, "moved": 0} == dict(
                await admin.request("canned_category_delete", id="empty")
            )
            assert ["general"] == [c.id for c in engine.canned.categories()]

    async def test_list_is_cut_to_fit(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A list too large for one frame comes back cut, newest first, and marked truncated."""
        await engine.canned.add_category("Long", category_id="long")
        text = "x" * 16 * 1024  # the longest text canned_add takes
        count = SERVER_FRAME_LIMITS.max_frame_size // len(text) + 10
        for i in range(count):
            await engine.canned.add_message(text, category="long", message_id=f"m{i:03}")
            await trio.sleep(1)
        async with open_gateway(engine) as gw, gw.admin() as admin:
            reply = await admin.request("canned_list")
            shown = [m["id"] for m in reply["messages"]]  # type: ignore[union-attr]
            assert reply["truncated"] is True
            assert count - 20 <= len(shown) < count
            assert [f"m{i:03}" for i in range(count - 1, count - 1 - len(shown), -1)] == shown
