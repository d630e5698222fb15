"""Supervisors over the wire, through the in-memory gateway: the live desk, a slow monitor,
barging in, tagging, and the audit entries of admins' changes."""

from __future__ import annotations

import trio
from trio.testing import MockClock

from engine import Engine
from protocol import ServerSettings

from .gateway_harness import accept, open_chat, open_gateway


class TestDesk:
    async def test_desk_changes_are_coalesced(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Forty messages in a second make a few desk events, each with the chat's whole row."""
        async with (
            open_gateway(engine) as gw,
            gw.agent("ann") as ann,
            gw.visitor() as v,
            gw.supervisor("sue", "sales") as sue,
        ):
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            desk = await sue.request("supervise_start")
            assert [c["chat_id"] for c in desk["chats"]] == [chat_id]  # type: ignore[union-attr]
            for i in range(40):
                await v.request("send", text=f"line {i}")
                await trio.sleep(0.025)
            await trio.sleep(1.0)
            changes = [e for e in sue.pending_events() if e.name == "desk_changed"]
            assert 2 <= len(changes) <= 8
            row = changes[-1].fields["chats"][0]  # type: ignore[index]
            assert (row["chat_id"], row["state"], row["owner"]) == (chat_id, "active", "ann")
            assert row["last_message_at"] is not None
            await sue.request("supervise_stop")
            await v.request("send", text="quiet now")
            await trio.sleep(1.0)
            assert [e for e in sue.pending_events() if e.name == "desk_changed"] == []


class TestMonitor:
    async def test_a_slow_monitor_is_dropped(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A monitor that stops reading is closed with 4000; the chat goes on."""
        settings = ServerSettings(outbound_queue=8)
        async with (
            open_gateway(engine, settings) as gw,
            gw.agent("ann") as ann,
            gw.visitor() as v,
        ):
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            async with gw.supervisor("sue", "sales", lockstep=True, event_buffer=1) as sue:
                await sue.request("monitor", chat_id=chat_id)
                for i in range(40):
                    await v.request("send", text=f"line {i}")
                async for _ in sue:
                    pass
                assert sue.close_code == 4000
            await ann.request("send", chat_id=chat_id, text="still here")
            await v.wait_for("message", text="still here")


class TestBarge:
    async def test_the_visitor_is_told(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Barging in is a system line everyone sees; the supervisor then writes in the chat."""
        async with (
            open_gateway(engine) as gw,
            gw.agent("ann") as ann,
            gw.visitor() as v,
            gw.supervisor("sue", "sales") as sue,
        ):
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            await sue.request("barge", chat_id=chat_id)
            barged = await v.wait_for("system", kind="barged")
            assert (barged.fields["agent"], barged.fields["agent_name"]) == (
                "supervisor:sue",
                "sue",
            )
            await ann.wait_for("system", kind="barged")
            await sue.request("send", chat_id=chat_id, text="Hello from the supervisor")
            said = await v.wait_for("message", author="supervisor:sue")
            assert said.fields["author_name"] == "sue"
            await sue.request("leave_chat", chat_id=chat_id)
            left = await v.wait_for("system", kind="left")
            assert left.fields["agent"] == "supervisor:sue"


class TestTag:
    async def test_a_supervisor_tags_a_chat_of_its_department(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """The tags join the agent's, are on the ticket, and the act is in the audit log."""
        async with (
            open_gateway(engine) as gw,
            gw.agent("ann") as ann,
            gw.visitor() as v,
            gw.supervisor("sue", "sales") as sue,
            gw.admin() as root,
        ):
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            await ann.request("tag", chat_id=chat_id, tags=["refund"])
            reply = await sue.request("tag", chat_id=chat_id, tags=["vip", "refund"])
            assert reply["tags"] == ("refund", "vip")
            await ann.request("end_chat", chat_id=chat_id)
            await v.wait_for("ended")
            await trio.sleep(1.0)
            found = await root.request("tickets", view="all", tag="vip")
            assert [t["chat_id"] for t in found["tickets"]] == [chat_id]  # type: ignore[union-attr]
            audit = await root.request("audit_list", action="tag")
            [entry] = audit["entries"]  # type: ignore[misc]
            assert (entry["actor"], entry["target"]) == ("supervisor:sue", chat_id)
            assert entry["after"]["tags"] == ("refund", "vip")


class TestAdminAudit:
    async def test_admin_changes_are_audited(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Each admin change is in audit_list, with the admin as actor and before and after."""
        async with open_gateway(engine) as gw, gw.admin() as root:
            await root.request("department_add", id="billing", name="Billing")
            await root.request("department_update", id="billing", chat_enabled=False)
            await root.request("agent_add", id="dan", name="Dan", departments=["billing"])
            await root.request(
                "token_issue", role="supervisor", name="sue", departments=["billing"]
            )
            await root.request("canned_category_add", name="General", id="general")
            await root.request("agent_remove", id="dan")
            reply = await root.request("audit_list")
            entries = reply["entries"]
            assert isinstance(entries, tuple)
            assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
                ("admin:root", "agent_removed", "dan"),
                ("admin:root", "canned_changed", "general"),
                ("admin:root", "token_issued", "supervisor:sue"),
                ("admin:root", "agent_added", "dan"),
                ("admin:root", "department_changed", "billing"),
                ("admin:root", "department_added", "billing"),
            ]
            changed = entries[4]
            assert (changed["before"]["chat_enabled"], changed["after"]["chat_enabled"]) == (
                True,
                False,
            )
            only = await root.request("audit_list", action="token_issued")
            assert [e["after"]["departments"] for e in only["entries"]] == [("billing",)]  # type: ignore[union-attr]
