"""The gateway over in-memory streams: every role's requests, events, resume, limits, shutdown."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from engine import AgentConnection, AgentStatus, Engine, EngineError, TicketKind, Visitor
from protocol import Client, ClientClosed, ClientError, ServerSettings
from protocol.server.registry import ChatFacts, Registry
from protocol.server.roles.visitor import sign_visitor_id

from .gateway_harness import (
    RawPeer,
    accept,
    names,
    open_chat,
    open_gateway,
    refused,
    settle,
)


class TestHello:
    async def test_visitor(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A visitor's hello reply names the version, role, heartbeat and frame limit."""
        async with open_gateway(engine) as gw, gw.visitor() as v:
            assert {
                "version": 1,
                "role": "visitor",
                "heartbeat_interval": 20.0,
                "max_frame_size": 65536,
                "resumed": False,
            } == dict(v.hello)

    async def test_agent(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An agent's hello reply carries its record and the chats it is in."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.visitor() as v:
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            async with gw.agent("ann", online=False) as again:
                agent = dict(again.hello["agent"])  # type: ignore[call-overload]
                assert {
                    "id": "ann",
                    "name": "Ann",
                    "departments": ("sales",),
                    "capacity": 2,
                    "status": "online",
                    "ringtone": True,
                    "load": 1,
                    "skills": (),
                } == agent
                assert (chat_id,) == again.hello["chats"]

    async def test_admin(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An admin signs in with an admin token."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            assert "admin" == admin.hello["role"]

    @pytest.mark.parametrize(("role", "token"), [("agent", "hlt_nope"), ("admin", "")])
    async def test_bad_token(
        self, engine: Engine, role: str, token: str, autojump_clock: MockClock
    ) -> None:
        """An unknown token is unauthorized, and the connection is closed with 1008."""
        async with open_gateway(engine) as gw, gw.connect() as c:
            await refused("unauthorized", c.request("hello", version=1, role=role, token=token))
            assert 1008 == await c.wait_closed()

    async def test_agent_token_is_not_an_admin_token(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A token signs in only the role it was issued for."""
        async with open_gateway(engine) as gw, gw.connect() as c:
            token = await gw.token("ann")
            await refused("unauthorized", c.request("hello", version=1, role="admin", token=token))

    async def test_reissued_token_revokes_the_old_one(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """After token_issue the agent's previous token no longer signs in."""
        async with open_gateway(engine) as gw, gw.admin() as admin:
            old = (await admin.request("token_issue", agent_id="ann"))["token"]
            new = (await admin.request("token_issue", agent_id="ann"))["token"]
            async with gw.connect(role="agent", token=new) as ann:
                assert "agent" == ann.hello["role"]
            with pytest.raises(ClientError) as info:
                async with gw.connect(role="agent", token=old):
                    pass
            assert "unauthorized" == info.value.code

    async def test_request_before_hello(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Any other first request is refused with hello_required and close 1008."""
        async with open_gateway(engine) as gw, gw.connect() as c:
            await refused("hello_required", c.request("ping"))
            assert 1008 == await c.wait_closed()

    async def test_unsupported_version(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A hello naming another protocol version is refused and closed with 1008."""
        async with open_gateway(engine) as gw, gw.connect() as c:
            await refused("unsupported_version", c.request("hello", version=2, role="visitor"))
            assert 1008 == await c.wait_closed()

    async def test_second_hello(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A second hello is invalid_state and changes nothing."""
        async with open_gateway(engine) as gw, gw.visitor() as v:
            await refused("invalid_state", v.request("hello", version=1, role="visitor"))
            assert "at" in await v.request("ping")

    async def test_no_hello_in_time(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A connection that says nothing is closed with 1008 after the hello deadline."""
        async with open_gateway(engine) as gw, gw.connect() as c:
            start = trio.current_time()
            assert 1008 == await c.wait_closed()
            assert 10.0 == pytest.approx(trio.current_time() - start, abs=0.01)


class TestVisitor:
    async def test_reply_then_chat_opened(self, engine: Engine, autojump_clock: MockClock) -> None:
        """open_chat replies with the chat and its resume token; chat_opened is the first event."""
        async with open_gateway(engine) as gw, gw.agent("ann"), gw.visitor() as v:
            reply = await v.request("open_chat", department="sales", name="Vera", question="Hi?")
            assert reply["resume_token"].startswith("hlr_")  # type: ignore[union-attr]
            event = await v.receive()
            assert ("chat_opened", dict(reply) | {"department": "sales"}) == (
                event.name,
                dict(event.fields),
            )

    async def test_conversation(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Messages reach the other participants in one order, with the sender's client_msg_id;
        the sending connection gets the reply instead of its own line."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.visitor() as v:
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            sent = await v.request("send", text="Hello", client_msg_id="m-1")
            await ann.request("send", chat_id=chat_id, text="Hi Vera")
            await v.wait_for("chat_opened")
            lines = [await v.receive() for _ in range(2)]
            assert [
                ("system", 1, "joined", None, None),
                ("message", 3, None, "ann", None),
            ] == [
                (
                    e.name,
                    e.fields["seq"],
                    e.fields.get("kind"),
                    e.fields.get("author"),
                    e.fields.get("client_msg_id"),
                )
                for e in lines
            ]
            assert 2 == sent["seq"]
            heard = await ann.wait_for("message", seq=2)
            assert ("visitor", "m-1") == (heard.fields["author"], heard.fields["client_msg_id"])
            await settle()
            assert "message" not in names(ann.pending_events())

    async def test_pipelined_lines(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Lines sent without waiting for replies are all answered, numbered in the order they
        were sent, and a request after them takes effect after them."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.visitor() as v:
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            seqs: dict[int, int] = {}

            async def say(i: int) -> None:
                seqs[i] = int((await v.request("send", text=f"line {i}"))["seq"])

            async with trio.open_nursery() as nursery:
                for i in range(12):
                    nursery.start_soon(say, i)
                    await trio.lowlevel.checkpoint()
            assert sorted(seqs.values()) == [seqs[i] for i in range(12)]
            heard = [(await ann.wait_for("message", seq=seqs[i])).fields["text"] for i in range(12)]
            assert [f"line {i}" for i in range(12)] == heard

    async def test_typing_goes_to_the_others(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """The visitor's typing notice reaches the agent, not the visitor."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.visitor() as v:
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            await v.request("typing", on=True)
            event = await ann.wait_for("typing")
            assert {"chat_id": chat_id, "author": "visitor", "on": True} == dict(event.fields)
            await settle()
            assert "typing" not in names(v.pending_events())

    async def test_one_chat_at_a_time(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A second open_chat while one is open is invalid_state; send without one too."""
        async with open_gateway(engine) as gw, gw.agent("ann"), gw.visitor() as v:
            await refused("invalid_state", v.request("send", text="anyone?"))
            await open_chat(v)
            await refused("invalid_state", open_chat(v))

    async def test_unknown_department(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A department that does not exist is not_found."""
        async with open_gateway(engine) as gw, gw.visitor() as v:
            await refused("not_found", open_chat(v, department="mars"))

    async def test_nobody_online_is_a_missed_chat(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """With no agent online the chat ends at once as a missed chat with a ticket."""
        async with open_gateway(engine) as gw, gw.visitor() as v:
            chat_id = await open_chat(v)
            ended = await v.wait_for("ended")
            assert "no_agent_online" == ended.fields["reason"]
            ticket = await engine.ticket_for_chat(chat_id)
            assert (TicketKind.MISSED, ended.fields["ticket_id"]) == (ticket.kind, ticket.id)
            await open_chat(v)  # an ended chat frees the connection for another

    async def test_leave(self, engine: Engine, autojump_clock: MockClock) -> None:
        """leave ends the visitor's part; the connection may open another chat."""
        async with open_gateway(engine) as gw, gw.agent("ann"), gw.visitor() as v:
            await open_chat(v)
            assert {} == dict(await v.request("leave"))
            await refused("invalid_state", v.request("leave"))
            await open_chat(v)

    async def test_rate(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An ended chat is rated once; a live one cannot be."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.visitor() as v:
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            await refused("invalid_state", v.request("rate", rating="good"))
            await ann.request("end_chat", chat_id=chat_id)
            await v.wait_for("ended")
            await v.request("rate", rating="good", comment="Quick")
            await refused("already_rated", v.request("rate", rating="bad"))
            ticket = await engine.ticket_for_chat(chat_id)
            assert ("good", "Quick") == (ticket.rating, ticket.rating_comment)


class TestResume:
    async def test_replays_what_was_missed(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A resumed visitor gets chat_opened, the lines after last_seq in order, then live ones."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann:
            async with gw.visitor() as v:
                opened = await v.request(
                    "open_chat", department="sales", name="Vera", question="Hi"
                )
                chat_id, token = opened["chat_id"], opened["resume_token"]
                await accept(ann, chat_id)  # type: ignore[arg-type]
                await v.request("send", text="one")  # seq 2
            for text in ("two", "three"):
                await ann.request("send", chat_id=chat_id, text=text)
            async with gw.visitor(resume_token=token, last_seq=2) as back:
                assert back.hello["resumed"] is True
                await ann.request("send", chat_id=chat_id, text="four")
                events = [await back.receive() for _ in range(4)]
                assert [("chat_opened", None), ("message", "two")] == [
                    (e.name, e.fields.get("text")) for e in events[:2]
                ]
                assert ["three", "four"] == [e.fields["text"] for e in events[2:]]
                assert [3, 4, 5] == [e.fields["seq"] for e in events[1:]]
                await back.request("send", text="five")

    async def test_unknown_token(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A token the server does not know resumes nothing; the visitor may open a chat."""
        async with open_gateway(engine) as gw, gw.visitor(resume_token="hlr_forged") as v:
            assert v.hello["resumed"] is False

    async def test_token_of_another_chat(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A resume token presented with another chat's id is unauthorized (close 1008)."""
        async with open_gateway(engine) as gw, gw.agent("ann"):
            async with gw.visitor() as first, gw.visitor() as second:
                token = (
                    await first.request("open_chat", department="sales", name="A", question="q")
                )["resume_token"]
                other = await open_chat(second)
            async with gw.connect() as c:
                hello = c.request(
                    "hello", version=1, role="visitor", resume_token=token, chat_id=other
                )
                await refused("unauthorized", hello)
                assert 1008 == await c.wait_closed()

    async def test_ended_chat_is_not_resumed(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Once the chat ended its token resumes nothing."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann:
            async with gw.visitor() as v:
                reply = await v.request("open_chat", department="sales", name="V", question="q")
                await accept(ann, reply["chat_id"])  # type: ignore[arg-type]
            await ann.request("end_chat", chat_id=reply["chat_id"])
            async with gw.visitor(resume_token=reply["resume_token"]) as back:
                assert back.hello["resumed"] is False

    async def test_newest_connection_takes_over(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """When a second connection resumes the chat, the first is closed with 1000."""
        async with open_gateway(engine) as gw, gw.agent("ann"), gw.visitor() as v:
            reply = await v.request("open_chat", department="sales", name="V", question="q")
            async with gw.visitor(resume_token=reply["resume_token"]) as back:
                assert back.hello["resumed"] is True
                assert 1000 == await v.wait_closed()

    async def test_gone_visitor_ends_after_grace(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A visitor that does not come back within the grace period ends the chat."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann:
            async with gw.visitor() as v:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
            start = trio.current_time()
            ended = await ann.wait_for("ended", chat_id=chat_id)
            assert ("visitor_left", 15.0) == (
                ended.fields["reason"],
                pytest.approx(trio.current_time() - start, abs=0.1),
            )


class TestAgent:
    async def test_offer_and_accept(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Both online agents get the offer; the first accept wins and the other's is withdrawn."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.agent("bob") as bob:
            async with gw.visitor() as v:
                chat_id = await open_chat(v, question="Mars?")
                offer = await bob.wait_for("offer", chat_id=chat_id)
                assert ("chat", "Mars?", "Vera") == (
                    offer.fields["kind"],
                    offer.fields["question"],
                    offer.fields["visitor"]["name"],  # type: ignore[index]
                )
                chat = await accept(ann, chat_id)
                assert ("chat", "ann", ("ann",), "Mars?") == (
                    chat["kind"],
                    chat["owner"],
                    chat["agents"],
                    chat["question"],
                )
                withdrawn = await bob.wait_for("offer_withdrawn")
                assert (offer.fields["offer_id"], "taken") == (
                    withdrawn.fields["offer_id"],
                    withdrawn.fields["reason"],
                )
                await refused(
                    "offer_taken", bob.request("accept", offer_id=offer.fields["offer_id"])
                )

    async def test_decline(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A declined offer in an assigned department moves on to the next agent."""
        async with open_gateway(engine) as gw, gw.agent("bob") as bob, gw.agent("cy") as cy:
            async with gw.visitor() as v:
                chat_id = await open_chat(v, department="support")
                offer = await bob.wait_for("offer", chat_id=chat_id)  # least loaded, then by id
                await bob.request("decline", offer_id=offer.fields["offer_id"])
                chat = await accept(cy, chat_id)
                assert "cy" == chat["owner"]
                await refused(
                    "stale_offer", bob.request("decline", offer_id=offer.fields["offer_id"])
                )

    async def test_offer_of_another_agent(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Accepting an offer made to someone else is not_your_offer; nothing changes."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.agent("cy") as cy:
            async with gw.visitor() as v:
                chat_id = await open_chat(v)
                offer = await ann.wait_for("offer", chat_id=chat_id)
                await refused(
                    "not_your_offer", cy.request("accept", offer_id=offer.fields["offer_id"])
                )
                await refused("not_found", cy.request("accept", offer_id="o-forged"))
                await ann.request("accept", offer_id=offer.fields["offer_id"])

    async def test_only_chats_it_is_in(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An agent cannot read or write a chat it is not in."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.agent("cy") as cy:
            async with gw.visitor() as v:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
                for type_, fields in [
                    ("send", {"text": "hi"}),
                    ("typing", {"on": True}),
                    ("end_chat", {}),
                    ("visitor_panel", {}),
                    ("invite", {"to_agent": "bob"}),
                ]:
                    await refused("not_in_chat", cy.request(type_, chat_id=chat_id, **fields))
                await refused("not_in_chat", cy.request("send", chat_id="c-forged", text="x"))

    async def test_several_chats(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An agent holds chats up to its capacity and talks in each separately."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann:
            async with gw.visitor() as v1, gw.visitor() as v2:
                one, two = await open_chat(v1, question="one"), await open_chat(v2, question="two")
                await accept(ann, one)
                await accept(ann, two)
                await ann.request("send", chat_id=two, text="to two")
                message = await v2.wait_for("message")
                assert ("to two", two) == (message.fields["text"], message.fields["chat_id"])
                await settle()
                assert "message" not in names(v1.pending_events())

    async def test_transfer(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A transfer moves the chat on accept; the note reaches the target only."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.agent("bob") as bob:
            async with gw.visitor() as v:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
                reply = await ann.request("transfer", chat_id=chat_id, to_agent="bob", note="VIP")
                offer = await bob.wait_for("offer", kind="transfer")
                assert (reply["offer_id"], "VIP", "ann") == (
                    offer.fields["offer_id"],
                    offer.fields["note"],
                    offer.fields["from_agent"],
                )
                await bob.request("accept", offer_id=offer.fields["offer_id"])
                removed = await ann.wait_for("chat_removed")
                assert (chat_id, "transferred") == (
                    removed.fields["chat_id"],
                    removed.fields["reason"],
                )
                result = await ann.wait_for("handoff_result")
                assert ("transfer", "accepted", "bob") == (
                    result.fields["kind"],
                    result.fields["outcome"],
                    result.fields["target"],
                )
                assert "owner" == (await bob.wait_for("chat_assigned")).fields["role"]
                system = await v.wait_for("system", kind="transferred")
                assert ("bob", "Bob", None) == (
                    system.fields["agent"],
                    system.fields["agent_name"],
                    system.fields.get("detail"),
                )
                await refused("not_in_chat", ann.request("send", chat_id=chat_id, text="x"))

    async def test_cancel_transfer(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A cancelled transfer leaves the chat with its owner and tells the owner."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.agent("bob") as bob:
            async with gw.visitor() as v:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
                await refused("no_handoff", ann.request("cancel_transfer", chat_id=chat_id))
                await ann.request("transfer", chat_id=chat_id, to_department="sales")
                await refused(
                    "handoff_pending", ann.request("invite", chat_id=chat_id, to_agent="bob")
                )
                await ann.request("cancel_transfer", chat_id=chat_id)
                assert "cancelled" == (await ann.wait_for("handoff_result")).fields["outcome"]
                await bob.wait_for("offer_withdrawn", reason="cancelled")
                await ann.request("send", chat_id=chat_id, text="still mine")

    async def test_invite_and_leave_chat(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An invitee joins and the inviter stays; the invitee may leave again."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.agent("bob") as bob:
            async with gw.visitor() as v:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
                await ann.request("invite", chat_id=chat_id, to_agent="bob", note="help?")
                offer = await bob.wait_for("offer", kind="invite")
                chat = await bob.request("accept", offer_id=offer.fields["offer_id"])
                assert ("invite", "ann", ("ann", "bob")) == (
                    chat["kind"],
                    chat["owner"],
                    chat["agents"],
                )
                assert "invitee" == (await bob.wait_for("chat_assigned")).fields["role"]
                await refused("not_owner", bob.request("end_chat", chat_id=chat_id))
                await bob.request("leave_chat", chat_id=chat_id)
                left = await v.wait_for("system", kind="left")
                assert "bob" == left.fields["agent"]
                await refused("not_owner", ann.request("leave_chat", chat_id=chat_id))

    async def test_end_later(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A delayed ending is announced, can be cancelled, and ends the chat on time."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.visitor() as v:
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            reply = await ann.request("end_chat", chat_id=chat_id, delay=30)
            assert engine.now() + 30 == pytest.approx(reply["ending_at"], abs=0.01)
            assert 30.0 == (await v.wait_for("system", kind="ending")).fields["delay"]
            await ann.request("cancel_end", chat_id=chat_id)
            await v.wait_for("system", kind="ending_cancelled")
            await refused("invalid_state", ann.request("cancel_end", chat_id=chat_id))
            await ann.request("end_chat", chat_id=chat_id, delay=5)
            start = trio.current_time()
            ended = await v.wait_for("ended")
            assert ("agent_ended", 5.0) == (
                ended.fields["reason"],
                pytest.approx(trio.current_time() - start, abs=0.1),
            )

    async def test_status_and_ringtone(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Presence changes are stored, answered and pushed to every connection of the agent."""
        async with open_gateway(engine) as gw, gw.agent("ann", online=False) as ann:
            async with gw.agent("ann", online=False) as tab:
                assert {"status": "online", "ringtone": True} == dict(
                    await ann.request("set_status", status="online")
                )
                assert {"status": "online", "ringtone": False} == dict(
                    await ann.request("set_ringtone", on=False)
                )
                await tab.wait_for("status", status="online", ringtone=True)
                await tab.wait_for("status", ringtone=False)
            async with gw.agent("dee", online=False) as dee:
                await refused("chat_off", dee.request("set_status", status="online"))

    async def test_available_agents(self, engine: Engine, autojump_clock: MockClock) -> None:
        """available_agents lists online agents with room, least loaded first."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.agent("bob") as bob:
            async with gw.visitor() as v:
                await accept(bob, await open_chat(v))
                reply = await ann.request("available_agents", department="sales")
                assert [("ann", 0), ("bob", 1)] == [
                    (a["id"], a["load"])
                    for a in reply["agents"]  # type: ignore[union-attr]
                ]
                await refused("not_found", ann.request("available_agents", department="mars"))

    async def test_visitor_panel(self, engine: Engine, autojump_clock: MockClock) -> None:
        """The panel shows the chat and the earlier tickets of a visitor whose id the site
        signed, newest first."""
        settings = ServerSettings(identity_secret="site-secret")
        signed = {"visitor_id": "v-7", "visitor_signature": sign_visitor_id("site-secret", "v-7")}

        async def open_signed(v: Client, question: str) -> str:
            reply = await v.request(
                "open_chat",
                department="sales",
                name="Vera",
                email="vera@example.com",
                question=question,
                **signed,
            )
            return str(reply["chat_id"])

        async with open_gateway(engine, settings) as gw, gw.agent("ann") as ann:
            earlier = []
            for question in ("first", "second"):
                async with gw.visitor() as v:
                    chat_id = await open_signed(v, question)
                    await accept(ann, chat_id)
                    await ann.request("end_chat", chat_id=chat_id)
                    earlier.append(chat_id)
            async with gw.visitor() as v:
                chat_id = await open_signed(v, "third")
                await accept(ann, chat_id)
                await v.request("send", text="hello")
                panel = await ann.request("visitor_panel", chat_id=chat_id)
                assert ("third", "vera@example.com") == (
                    panel["question"],
                    panel["visitor"]["email"],  # type: ignore[index]
                )
                assert ["joined", "message"] == [
                    h["kind"]
                    for h in panel["history"]  # type: ignore[union-attr]
                ]
                assert earlier[::-1] == [
                    t["chat_id"]
                    for t in panel["previous_tickets"]  # type: ignore[union-attr]
                ]

    async def test_disconnect_grace_requeues(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent gone longer than its grace loses its chats: they wait for another agent."""
        async with open_gateway(engine) as gw, gw.visitor() as v:
            async with gw.agent("ann") as ann:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
            requeued = await v.wait_for("system", kind="requeued")
            assert "ann" == requeued.fields["agent"]
            async with gw.agent("bob") as bob:
                await accept(bob, chat_id)


class TestConnection:
    async def test_rate_limit(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Requests beyond the burst are refused with rate_limited until the bucket refills."""
        settings = ServerSettings(rate=1.0, burst=3)
        async with open_gateway(engine, settings) as gw, gw.visitor() as v:
            codes = []
            for _ in range(4):
                try:
                    await v.request("ping")
                    codes.append("ok")
                except ClientError as exc:
                    codes.append(exc.code)
            assert ["ok", "ok", "rate_limited", "rate_limited"] == codes  # hello took one
            await trio.sleep(1.0)
            await v.request("ping")

    async def test_slow_consumer(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A visitor that stops reading is closed with 4000; the chat goes on for the agent."""
        settings = ServerSettings(outbound_queue=8)
        async with open_gateway(engine, settings) as gw, gw.agent("ann") as ann:
            async with gw.visitor(lockstep=True, event_buffer=1) as v:
                chat_id = await open_chat(v)
                await accept(ann, chat_id)
                for i in range(40):
                    await ann.request("send", chat_id=chat_id, text=f"line {i}")
                async for _ in v:
                    pass
                assert 4000 == v.close_code
            await ann.request("send", chat_id=chat_id, text="are you there?")

    async def test_slow_agent_follows_the_grace(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent whose only connection is dropped as slow keeps its chat for the grace."""
        settings = ServerSettings(outbound_queue=8)
        async with open_gateway(engine, settings) as gw, gw.visitor() as v:
            async with gw.agent("ann", lockstep=True, event_buffer=1) as ann:
                chat_id = await open_chat(v)
                offer = await ann.wait_for("offer", chat_id=chat_id)
                async with trio.open_nursery() as reading:  # read until the accept is answered
                    reading.start_soon(drain, ann)
                    await ann.request("accept", offer_id=offer.fields["offer_id"])
                    reading.cancel_scope.cancel()
                for i in range(40):  # ann reads nothing more
                    await v.request("send", text=f"line {i}")
                dropped_at = trio.current_time()
                async for _ in ann:
                    pass
                assert 4000 == ann.close_code
            requeued = await v.wait_for("system", kind="requeued")
            assert "ann" == requeued.fields["agent"]
            assert 25.0 == pytest.approx(trio.current_time() - dropped_at, abs=1.0)

    async def test_heartbeat(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A peer that does not answer pings is closed with 4001 after interval + timeout."""
        async with open_gateway(engine) as gw:
            peer = RawPeer(gw.stream())
            await peer.handshake()
            await peer.hello(role="visitor")
            start = trio.current_time()
            assert 4001 == await peer.close_code()
            assert 30.0 == pytest.approx(trio.current_time() - start, abs=0.1)
            assert 1 == peer.pings

    async def test_handshake_deadline(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A peer that never completes the opening handshake is dropped after the deadline."""
        async with open_gateway(engine) as gw:
            stream = gw.stream()
            await stream.send_all(b"GET / HTTP/1.1\r\n")
            start = trio.current_time()
            assert b"" == await stream.receive_some()
            assert 10.0 == pytest.approx(trio.current_time() - start, abs=0.1)

    @pytest.mark.parametrize(
        ("origin", "accepted"),
        [(b"https://help.example.com", True), (b"https://evil.example", False), (None, False)],
    )
    async def test_origin_allowlist(
        self, engine: Engine, origin: bytes | None, accepted: bool, autojump_clock: MockClock
    ) -> None:
        """Only listed origins may connect; others get HTTP 403."""
        settings = ServerSettings(origins=("https://help.example.com",))
        async with open_gateway(engine, settings) as gw:
            peer = RawPeer(gw.stream())
            headers = [] if origin is None else [(b"Origin", origin)]
            answer = await peer.handshake(headers)
            assert accepted == (type(answer).__name__ == "AcceptConnection")
            if not accepted:
                assert 403 == answer.status_code  # type: ignore[attr-defined]

    async def test_fault_closes_one_connection(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """A failing handler answers internal and closes its connection with 1011, no other."""
        original = AgentConnection.set_ringtone

        async def broken(self: AgentConnection, on: bool) -> tuple[AgentStatus, bool]:
            if self.agent_id == "ann":
                raise RuntimeError("boom")
            return await original(self, on)

        monkeypatch.setattr(AgentConnection, "set_ringtone", broken)
        async with open_gateway(engine) as gw, gw.agent("bob") as bob:
            async with gw.agent("ann") as ann:
                await refused("internal", ann.request("set_ringtone", on=False))
                assert 1011 == await ann.wait_closed()
            await bob.request("set_ringtone", on=False)

    async def test_store_failures_are_named_for_the_wire(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """A store that cannot answer is store_unavailable on the wire; the connection lives."""

        async def closed(ticket_id: int) -> None:
            raise EngineError("store_closed", "the store is closed")

        async with open_gateway(engine) as gw, gw.admin() as admin:
            monkeypatch.setattr(engine, "ticket", closed)
            await refused("store_unavailable", admin.request("ticket", ticket_id=1))
            await admin.request("ping")

    async def test_shutdown(self, engine: Engine, autojump_clock: MockClock) -> None:
        """On shutdown every client gets a shutdown event, then close 1001; no one else gets in."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.visitor() as v:
            gw.gateway.shutdown("maintenance")
            for client in (ann, v):
                event = await client.wait_for("shutdown")
                assert "maintenance" == event.fields["reason"]
                assert 1001 == await client.wait_closed()
            peer = RawPeer(gw.stream())
            assert 503 == (await peer.handshake()).status_code  # type: ignore[attr-defined]

    async def test_closed_client_raises(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Requests on a connection the server closed raise ClientClosed with its code."""
        async with open_gateway(engine) as gw, gw.visitor() as v:
            gw.gateway.shutdown()
            assert 1001 == await v.wait_closed()
            with pytest.raises(ClientClosed) as info:
                await v.request("ping")
            assert 1001 == info.value.code


class TestRegistry:
    def test_sweep_forgets_ended_chats(self) -> None:
        """A sweep forgets chats the engine no longer has, with their resume tokens."""
        registry = Registry()
        tokens = {
            chat_id: registry.add_chat(
                ChatFacts(
                    chat_id=chat_id,
                    department="sales",
                    question="q",
                    visitor=Visitor(name="V"),
                    started_at=0.0,
                )
            )
            for chat_id in ("live", "gone")
        }
        registry.sweep(["live", "gone"], live=["live"])
        assert ("live", None) == (registry.resume(tokens["live"]), registry.resume(tokens["gone"]))
        assert registry.chat("gone") is None

    def test_sweeps_are_rare(self) -> None:
        """A sweep is due only once the chats recorded doubled since the last one."""
        registry = Registry()
        due = []
        for i in range(600):
            registry.add_chat(
                ChatFacts(
                    chat_id=str(i),
                    department="d",
                    question="",
                    visitor=Visitor(name=""),
                    started_at=0,
                )
            )
            if registry.needs_sweep():
                due.append(i + 1)
                registry.sweep([], live=[])
        assert [256, 512] == due


class TestPublicFace:
    def test_exports(self) -> None:
        """protocol exports the codec, frames, errors, client, gateway and settings by name."""
        import protocol

        assert {
            "Client",
            "ClientClosed",
            "ClientError",
            "ConfigError",
            "DaemonConfig",
            "Gateway",
            "ProtocolError",
            "ServerSettings",
            "connect",
            "connect_stream",
            "decode_request",
            "decode_server_frame",
            "encode_event",
            "encode_reply_error",
            "encode_reply_ok",
            "encode_request",
            "load_config",
            "run_daemon",
            "serve",
        } <= set(protocol.__all__)
        assert all(hasattr(protocol, name) for name in protocol.__all__)


async def drain(client: Client) -> None:
    """Read and drop a client's events until cancelled."""
    async for _ in client:
        pass
