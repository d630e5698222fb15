"""What the console, the widget and the admin page get over the wire beyond the first version:
canned suggestions with their labels, category and department; rating scores; the public
department list; the name of an agent that hands a chat over; and agent updates."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import trio
from trio.testing import MockClock

from engine import Engine, Hours

from .gateway_harness import accept, open_chat, open_gateway, refused
from .helpers import settle


class TestCannedSuggestions:
    async def test_suggestions_carry_labels_category_and_department(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A suggestion names its title, shortcut, category (id and name) and department; the
        reading finds it, and the shortcut puts it first."""
        async with open_gateway(engine) as gw, gw.admin() as admin, gw.agent("ann") as ann:
            await admin.request("canned_category_add", id="thanks", name="Thanks")
            added = await admin.request(
                "canned_add",
                id="orei",
                text="ご連絡ありがとうございます。",
                category="thanks",
                department="sales",
                title="お礼",
                shortcut="ty",
                reading="おれい",
            )
            assert ("お礼", "ty", "おれい") == tuple(
                added["message"][k]  # type: ignore[index]
                for k in ("title", "shortcut", "reading")
            )
            await admin.request(
                "canned_add", id="typo", text="Typos happen, sorry!", category="thanks"
            )
            reply = await ann.request("canned_suggest", draft="はい #おれい")
            assert [
                {
                    "message_id": "orei",
                    "text": "ご連絡ありがとうございます。",
                    "title": "お礼",
                    "shortcut": "ty",
                    "category": "thanks",
                    "category_name": "Thanks",
                    "department": "sales",
                }
            ] == [dict(s) for s in reply["suggestions"]]  # type: ignore[union-attr]
            reply = await ann.request("canned_suggest", draft="#ty")
            found = reply["suggestions"]
            assert ["orei", "typo"] == [s["message_id"] for s in found]  # type: ignore[union-attr,index]
            assert found[1]["department"] is None  # type: ignore[index]

    async def test_edit_changes_and_removes_labels(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """canned_edit sets a title, shortcut or reading alone, "" removes one, and a shortcut
        of two words is invalid_field."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            await admin.request("canned_category_add", id="g", name="General")
            await admin.request("canned_add", id="m", text="Hello!", category="g", shortcut="hi")
            edited = await admin.request("canned_edit", id="m", title="Greeting", shortcut="")
            message = edited["message"]
            assert ("Greeting", "", "") == (
                message["title"],  # type: ignore[index]
                message["shortcut"],  # type: ignore[index]
                message["reading"],  # type: ignore[index]
            )
            await refused("invalid_field", admin.request("canned_edit", id="m", shortcut="a b"))
            listed = await admin.request("canned_list")
            assert "Greeting" == listed["messages"][0]["title"]  # type: ignore[index]


async def _rated_chat(gw: Any, **rating: object) -> int:
    """A chat ann takes and ends, rated by its visitor with ``rating``; its ticket id."""
    async with gw.agent("ann") as ann, gw.visitor() as visitor:
        await ann.request("set_status", status="online")
        chat_id = await open_chat(visitor)
        await accept(ann, chat_id)
        ended = await ann.request("end_chat", chat_id=chat_id)
        await visitor.wait_for("ended")
        await visitor.request("rate", **rating)
        ticket_id = ended["ticket_id"]
        assert isinstance(ticket_id, int)
        return ticket_id


class TestRatingScores:
    async def test_a_score_alone_stands_for_a_rating(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A score of 4-5 is good, 3 neutral, 1-2 bad; the ticket keeps the score."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            for score, rating in ((5, "good"), (4, "good"), (3, "neutral"), (2, "bad"), (1, "bad")):
                ticket_id = await _rated_chat(gw, score=score, comment="ok")
                ticket = (await admin.request("ticket", ticket_id=ticket_id))["ticket"]
                assert (rating, score, "ok") == (
                    ticket["rating"],  # type: ignore[index]
                    ticket["score"],  # type: ignore[index]
                    ticket["rating_comment"],  # type: ignore[index]
                )

    async def test_the_report_averages_scores(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Beside the counts, the report gives how many ratings had a score and their average,
        per agent, per department and in total; a rating word wins over the score's."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            await _rated_chat(gw, score=5)
            await _rated_chat(gw, score=2, rating="neutral")
            await _rated_chat(gw, rating="good")
            report = await admin.request("rating_report")
            expected = {"good": 2, "neutral": 1, "bad": 0, "scored": 2, "average_score": 3.5}
            assert expected == {k: report[k] for k in expected}
            assert [{"agent_id": "ann", **expected}] == [dict(r) for r in report["by_agent"]]  # type: ignore[union-attr]
            assert [{"department": "sales", **expected}] == [
                dict(r)
                for r in report["by_department"]  # type: ignore[union-attr]
            ]
            empty = await admin.request("rating_report", since=engine.now() + 60)
            assert (0, None) == (empty["scored"], empty["average_score"])


class TestDepartments:
    async def test_every_role_lists_departments_and_who_is_online(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Visitors, agents and admins get every department's name, whether its chat is on,
        and whether an agent of it is online and connected now."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.admin() as admin:
            await ann.request("set_status", status="offline")
            async with gw.visitor() as visitor:
                before = await visitor.request("departments")
            assert [
                {"id": "closed", "name": "Closed", "chat_enabled": False, "online": False},
                {"id": "sales", "name": "Sales", "chat_enabled": True, "online": False},
                {"id": "support", "name": "Support", "chat_enabled": True, "online": False},
            ] == [
                {k: v for k, v in d.items() if k not in ("open", "opens_at")}
                for d in before["departments"]  # type: ignore[union-attr]
            ]
            assert all(d["open"] for d in before["departments"])  # type: ignore[index,union-attr]
            await ann.request("set_status", status="online")
            async with gw.visitor() as visitor:  # at once: a status change drops the shared answer
                listed = await visitor.request("departments")
            assert [False, True, False] == [d["online"] for d in listed["departments"]]  # type: ignore[index,union-attr]
            for client in (ann, admin):
                listed = await client.request("departments")
                online = {d["id"]: d["online"] for d in listed["departments"]}  # type: ignore[index,union-attr]
                assert {"closed": False, "sales": True, "support": False} == online

    async def test_a_visitor_hears_at_once_that_the_last_agent_left(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """The visitors' shared answer is dropped when an agent's last connection closes (and
        when its first opens), not kept for its second: a widget asking right after is told the
        truth."""
        async with open_gateway(engine) as gw, gw.visitor() as visitor:
            async with gw.agent("ann") as ann:
                await ann.request("set_status", status="online")
                listed = await visitor.request("departments")
                assert {"closed": False, "sales": True, "support": False} == {
                    d["id"]: d["online"]
                    for d in listed["departments"]  # type: ignore[union-attr]
                }
            await settle()
            listed = await visitor.request("departments")
            assert not any(d["online"] for d in listed["departments"])  # type: ignore[union-attr]
            async with gw.agent("ann"):  # still online: connecting is enough
                await settle()
                listed = await visitor.request("departments")
                assert [False, True, False] == [d["online"] for d in listed["departments"]]  # type: ignore[index,union-attr]

    async def test_a_closed_department_says_when_it_opens(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Outside its business hours (today is a holiday) a department is listed with open
        false and opens_at, the next opening (midnight); then open is true, opens_at absent."""
        today = dt.datetime.fromtimestamp(engine.now(), dt.UTC).date()
        midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC)
        sales = engine.department_record("sales")
        assert sales is not None
        hours = Hours(weekly=("mon-sun 00:00-24:00",), holidays=(today.isoformat(),))
        await engine.add_department(dataclasses.replace(sales, hours=hours))
        async with open_gateway(engine) as gw, gw.visitor() as visitor:
            reply = await visitor.request("departments")
        listed = {d["id"]: d for d in reply["departments"]}  # type: ignore[index,union-attr]
        assert listed["sales"]["open"] is False
        assert listed["sales"]["opens_at"] == midnight.timestamp()
        assert (listed["support"]["open"], "opens_at" in listed["support"]) == (True, False)
        await trio.sleep(midnight.timestamp() - engine.now() + 1)
        async with open_gateway(engine) as gw, gw.visitor() as visitor:
            reply = await visitor.request("departments")
        listed = {d["id"]: d for d in reply["departments"]}  # type: ignore[index,union-attr]
        assert (listed["sales"]["open"], "opens_at" in listed["sales"]) == (True, False)


class TestHandoffNames:
    async def test_a_transfer_offer_names_the_agent_asking(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """The offer of a transfer carries the asking agent's id and display name."""
        async with (
            open_gateway(engine) as gw,
            gw.agent("ann") as ann,
            gw.agent("bob") as bob,
            gw.visitor() as visitor,
        ):
            await ann.request("set_status", status="online")
            chat_id = await open_chat(visitor)
            await accept(ann, chat_id)
            await bob.request("set_status", status="online")
            await ann.request("transfer", chat_id=chat_id, to_agent="bob", note="over to you")
            offer = await bob.wait_for("offer", chat_id=chat_id, kind="transfer")
            assert ("ann", "Ann", "over to you") == (
                offer.fields["from_agent"],
                offer.fields["from_agent_name"],
                offer.fields["note"],
            )


class TestAgentUpdate:
    async def test_update_changes_what_is_given(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """agent_update changes name, departments or capacity, keeps the rest, and the agent
        takes chats of its new department at once."""
        async with open_gateway(engine) as gw, gw.admin() as admin, gw.agent("cy") as cy:
            await cy.request("set_status", status="online")
            reply = await admin.request("agent_update", id="cy", name="Cyrus", capacity=4)
            assert {
                "id": "cy",
                "name": "Cyrus",
                "departments": ("support",),
                "capacity": 4,
                "status": "online",
                "ringtone": True,
                "load": 0,
                "skills": (),
            } == dict(reply["agent"])  # type: ignore[call-overload]
            await admin.request("agent_update", id="cy", departments=["sales", "sales"])
            listed = await admin.request("agent_list")
            cyrus = next(a for a in listed["agents"] if a["id"] == "cy")  # type: ignore[union-attr,index]
            assert (["sales"], 4) == (list(cyrus["departments"]), cyrus["capacity"])
            async with gw.visitor() as visitor:
                chat_id = await open_chat(visitor)
                offer = await cy.wait_for("offer", chat_id=chat_id)
                assert "sales" == offer.fields["department"]
            await refused("not_found", admin.request("agent_update", id="nobody", capacity=1))
            await refused("not_found", admin.request("agent_update", id="cy", departments=["mars"]))
