"""What each party may see: file modes, visitor history across departments, canned messages,
and the limits on opening chats."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections.abc import Awaitable, Mapping
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from engine import Engine, EngineError, Visitor
from engine.store.sqlite_store import open_store
from protocol import ClientError, ServerSettings
from protocol.server.roles.visitor import address_key, verify_visitor_id

from .gateway_harness import accept, open_chat, open_gateway
from .helpers import offer_for, settle

MINA = Visitor(name="Mina", email="mina@example.com")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _modes(folder: Path) -> dict[str, int]:
    return {p.name: _mode(p) for p in folder.iterdir() if p.name.startswith("helpline")}


class TestDatabaseFiles:
    async def test_created_readable_by_owner_only(self, tmp_path: Path) -> None:
        """The database, its -wal and its -shm are created 0600, whatever the umask."""
        db = tmp_path / "helpline.db"
        old = os.umask(0o022)
        try:
            async with open_store(db, synchronous="NORMAL") as store:
                await store.save_token(
                    token_hash="h" * 64, role="admin", subject="admin:root", created_at=1.0
                )
                modes = _modes(tmp_path)
        finally:
            os.umask(old)
        assert {"helpline.db", "helpline.db-wal", "helpline.db-shm"} <= set(modes)
        assert {name: 0o600 for name in modes} == modes

    async def test_existing_file_is_narrowed(self, tmp_path: Path) -> None:
        """A database file left readable by others from an older version is made 0600."""
        db = tmp_path / "helpline.db"
        db.touch()
        os.chmod(db, 0o644)
        async with open_store(db, synchronous="NORMAL"):
            pass
        assert _mode(db) == 0o600


async def _canned(engine: Engine) -> dict[str, str]:
    """A shared message, one of sales and one of support; returns their ids by name."""
    general = await engine.canned.add_category("General")
    ids = {}
    for name, department in (("shared", None), ("sales", "sales"), ("support", "support")):
        message = await engine.canned.add_message(
            f"{name} answer", category=general.id, department=department
        )
        ids[name] = message.id
    return ids


class TestCannedScope:
    async def test_pick_of_another_department_is_not_found(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent of sales picking a support message by id gets not_found, and no use counts."""
        ids = await _canned(engine)
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with engine.open_chat(department="sales", question="q", visitor=MINA) as v:
                await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
                assert await ann.canned_pick(ids["sales"], v.chat_id) == "sales answer"
                assert await ann.canned_pick(ids["shared"], v.chat_id) == "shared answer"
                with pytest.raises(EngineError) as err:
                    await ann.canned_pick(ids["support"], v.chat_id)
                missing = await _refusal(ann.canned_pick("no-such-message", v.chat_id))
        assert (err.value.code, err.value.message) == (
            missing.code,
            missing.message.replace("no-such-message", ids["support"]),
        )
        assert engine.canned.book.use_count(ids["support"], "ann") == 0

    async def test_every_read_is_scoped(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Suggest, list and get show an agent its departments' messages and the shared ones."""
        ids = await _canned(engine)
        async with engine.connect_agent("ann") as ann:
            suggested = {m.id for m in await ann.canned_suggest("#answer")}
            listed = {m.id for m in await ann.canned_messages()}
            assert {ids["shared"], ids["sales"]} == suggested == listed
            assert (await ann.canned_message(ids["sales"])).text == "sales answer"
            with pytest.raises(EngineError) as err:
                await ann.canned_message(ids["support"])
            assert err.value.code == "not_found"

    async def test_pick_over_the_wire(self, engine: Engine, autojump_clock: MockClock) -> None:
        """canned_pick of another department's message id answers not_found."""
        ids = await _canned(engine)
        async with open_gateway(engine) as gw, gw.agent("ann") as ann, gw.visitor() as v:
            chat_id = await open_chat(v)
            await accept(ann, chat_id)
            reply = await ann.request("canned_pick", message_id=ids["sales"], chat_id=chat_id)
            assert reply["text"] == "sales answer"
            with pytest.raises(ClientError) as err:
                await ann.request("canned_pick", message_id=ids["support"], chat_id=chat_id)
            assert err.value.code == "not_found"


async def _refusal(call: Awaitable[object]) -> EngineError:
    with pytest.raises(EngineError) as err:
        await call
    return err.value


async def _ended_chat(engine: Engine, agent_id: str, department: str, visitor: Visitor) -> str:
    """One chat through accept and end, through the engine; returns its chat id."""
    async with engine.connect_agent(agent_id) as agent:
        await agent.set_status("online")
        async with engine.open_chat(department=department, question="q", visitor=visitor) as v:
            await agent.accept((await offer_for(agent, v.chat_id)).offer_id)
            await agent.end_chat(v.chat_id)
            return v.chat_id


class TestVisitorHistory:
    async def test_panel_shows_only_the_agents_departments(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A verified visitor's tickets and live chats of another department stay hidden."""
        known = Visitor(name="Mina", email="mina@example.com", visitor_id="u-1")
        in_sales = await _ended_chat(engine, "ann", "sales", known)
        async with (
            engine.connect_agent("ann") as ann,
            engine.connect_agent("cy") as cy,
            engine.connect_agent("bob") as bob,
        ):
            await ann.set_status("online")
            await cy.set_status("online")
            async with (
                engine.open_chat(department="sales", question="live", visitor=known) as live,
                engine.open_chat(department="support", question="q", visitor=known) as v,
            ):
                await settle()
                await cy.accept((await offer_for(cy, v.chat_id)).offer_id)
                panel = await cy.visitor_panel(v.chat_id)
                assert ([], []) == (
                    [c.chat_id for c in panel.recent_chats],
                    [t.chat_id for t in panel.recent_tickets],
                )
                await bob.set_status("online")
                await cy.invite(v.chat_id, to_agent="bob")
                await bob.accept((await offer_for(bob, v.chat_id)).offer_id)
                both = await bob.visitor_panel(v.chat_id)  # bob works in sales and support
                assert [live.chat_id, in_sales] == [c.chat_id for c in both.recent_chats]
                assert [in_sales] == [t.chat_id for t in both.recent_tickets]

    async def test_email_links_nothing(self, engine: Engine, autojump_clock: MockClock) -> None:
        """The same email (a claim) links neither tickets nor live chats."""
        await _ended_chat(engine, "bob", "sales", MINA)
        async with engine.connect_agent("bob") as bob:
            await bob.set_status("online")
            async with (
                engine.open_chat(department="sales", question="a", visitor=MINA) as other,
                engine.open_chat(department="support", question="b", visitor=MINA) as v,
            ):
                await bob.accept((await offer_for(bob, v.chat_id)).offer_id)
                panel = await bob.visitor_panel(v.chat_id)
                assert (other.chat_id, (), ()) == (
                    other.chat_id,
                    panel.recent_chats,
                    panel.recent_tickets,
                )
                assert panel.verified is False


def _signed(secret: str, visitor_id: str) -> str:
    """What the embedding site computes (written out here, not taken from the server's code)."""
    return hmac.new(secret.encode(), visitor_id.encode(), hashlib.sha256).hexdigest()


SECRET = "s3cret-shared-with-the-site"


class TestVisitorIdentityOverTheWire:
    def test_signature_check(self) -> None:
        """Only the site's HMAC-SHA256 of the id verifies it; upper-case hex is accepted."""
        good = _signed(SECRET, "v-1")
        assert verify_visitor_id(SECRET, "v-1", good)
        assert verify_visitor_id(SECRET, "v-1", good.upper())
        for secret, visitor_id, signature in (
            ("", "v-1", _signed("", "v-1")),  # no secret configured: nothing verifies
            (SECRET, "v-2", good),
            (SECRET, "v-1", good[:-1]),
            (SECRET, "v-1", "é" * 64),
            (SECRET, "v-1", ""),
        ):
            assert not verify_visitor_id(secret, visitor_id, signature)

    async def _panel(
        self, engine: Engine, first: dict[str, str], second: dict[str, str], *, agent: str
    ) -> Mapping[str, object]:
        """A chat in sales as `first`, ended; a chat in `second`'s department; its panel."""
        settings = ServerSettings(identity_secret=SECRET)
        async with open_gateway(engine, settings) as gw, gw.agent(agent) as a:
            async with gw.visitor() as v:
                reply = await v.request(
                    "open_chat", department="sales", name="Vera", question="one", **first
                )
                await accept(a, str(reply["chat_id"]))
                await a.request("end_chat", chat_id=reply["chat_id"])
            async with gw.visitor() as v:
                reply = await v.request("open_chat", name="Mallory", question="two", **second)
                await accept(a, str(reply["chat_id"]))
                return await a.request("visitor_panel", chat_id=reply["chat_id"])

    async def test_claimed_id_links_no_history(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """Claiming another visitor's id and email shows them as unverified and links nothing."""
        vera = {"visitor_id": "v-1", "email": "vera@example.com"}
        panel = await self._panel(engine, vera, {"department": "sales", **vera}, agent="bob")
        assert ((), ()) == (panel["previous_tickets"], panel["recent_chats"])
        visitor = panel["visitor"]
        assert isinstance(visitor, Mapping)
        assert ("v-1", False) == (visitor["visitor_id"], visitor["verified"])

    async def test_forged_signature_links_no_history(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A signature made with another secret is no better than none."""
        vera = {"visitor_id": "v-1", "visitor_signature": _signed(SECRET, "v-1")}
        forged = {"visitor_id": "v-1", "visitor_signature": _signed("guess", "v-1")}
        panel = await self._panel(engine, vera, {"department": "sales", **forged}, agent="bob")
        assert () == panel["previous_tickets"]

    async def test_signed_id_links_history_of_own_departments(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A signed id links the visitor's chats, within the agent's departments only."""
        vera = {"visitor_id": "v-1", "visitor_signature": _signed(SECRET, "v-1")}
        panel = await self._panel(engine, vera, {"department": "sales", **vera}, agent="bob")
        assert 1 == len(panel["previous_tickets"])  # type: ignore[arg-type]
        visitor = panel["visitor"]
        assert isinstance(visitor, Mapping)
        assert ("v-1", True) == (visitor["visitor_id"], visitor["verified"])


class TestChatLimits:
    async def test_per_connection(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A connection that left three live chats gets too_many_chats and stays open; once
        they end it may open again."""
        async with (
            open_gateway(engine) as gw,
            gw.agent("ann") as ann,
            gw.agent("bob") as bob,
            gw.visitor() as v,
        ):
            for agent, question in ((ann, "1"), (ann, "2"), (bob, "3")):
                await accept(agent, await open_chat(v, question=question))
                await v.request("leave")  # the chat lives on through the visitor grace
            with pytest.raises(ClientError) as err:
                await open_chat(v, question="4")
            assert err.value.code == "too_many_chats"
            await v.request("ping")  # still open
            await trio.sleep(engine.config.visitor_grace + 1)  # the three chats end
            await open_chat(v, question="5")

    async def test_per_address(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Connections from one address share its limit; other limits still allow it."""
        settings = ServerSettings(max_chats_per_address=2)
        async with (
            open_gateway(engine, settings) as gw,
            gw.agent("ann"),
            gw.visitor() as v1,
            gw.visitor() as v2,
            gw.visitor() as v3,
        ):
            await open_chat(v1)
            await open_chat(v2)
            with pytest.raises(ClientError) as err:
                await open_chat(v3)
            assert err.value.code == "too_many_chats"
            await v1.request("leave")
            await trio.sleep(engine.config.visitor_grace + 1)
            await open_chat(v3)

    async def test_per_verified_visitor(self, engine: Engine, autojump_clock: MockClock) -> None:
        """One verified visitor's chats count together, over any number of connections."""
        settings = ServerSettings(identity_secret=SECRET, max_chats_per_visitor=1)
        vera = {"visitor_id": "v-1", "visitor_signature": _signed(SECRET, "v-1")}
        async with (
            open_gateway(engine, settings) as gw,
            gw.agent("ann"),
            gw.visitor() as v1,
            gw.visitor() as v2,
        ):
            await v1.request("open_chat", department="sales", name="V", question="q", **vera)
            with pytest.raises(ClientError) as err:
                await v2.request("open_chat", department="sales", name="V", question="q", **vera)
            assert err.value.code == "too_many_chats"
            await v2.request("open_chat", department="sales", name="V", question="q")

    async def test_resumed_connection_counts_with_its_chat(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A connection that resumed a chat shares the limit of the connection that opened it."""
        settings = ServerSettings(max_chats_per_connection=2)
        async with open_gateway(engine, settings) as gw, gw.agent("ann") as ann:
            async with gw.visitor() as v:
                await accept(ann, await open_chat(v, question="1"))
                await v.request("leave")
                reply = await v.request("open_chat", department="sales", name="V", question="2")
                await accept(ann, str(reply["chat_id"]))
            async with gw.visitor(resume_token=reply["resume_token"]) as again:
                assert again.hello["resumed"] is True
                await again.request("leave")
                with pytest.raises(ClientError) as err:
                    await open_chat(again, question="3")
                assert err.value.code == "too_many_chats"

    def test_loopback_is_limited_unless_configured(self) -> None:
        """The per-address key is the peer's host; loopback is exempt only when configured."""
        limited = ServerSettings()
        exempt = ServerSettings(limit_loopback=False)
        assert address_key("127.0.0.1:5000", limited) == "127.0.0.1"
        assert address_key("::1:5000", limited) == "::1"
        assert address_key("127.0.0.1:5000", exempt) is None
        assert address_key("::1:5000", exempt) is None
        assert address_key("203.0.113.9:5000", exempt) == "203.0.113.9"
