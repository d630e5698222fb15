"""Canned messages through the engine: stored, scoped to departments, filled in when picked."""

from __future__ import annotations

from pathlib import Path

import pytest
from trio.testing import MockClock

from engine import Engine, EngineConfig, EngineError, Visitor, open_engine

from .helpers import offer_for


async def seed(engine: Engine) -> dict[str, str]:
    greetings = await engine.canned.add_category("Greetings")
    refunds = await engine.canned.add_category("Refunds")
    ids = {
        "hello": (
            await engine.canned.add_message(
                "Hello {visitor.name}, this is {agent.name} from {department.name}.",
                category=greetings.id,
            )
        ).id,
        "refund": (
            await engine.canned.add_message(
                "ご返金の手続きについてご案内します。", category=refunds.id, department="sales"
            )
        ).id,
        "support": (
            await engine.canned.add_message(
                "Have you tried restarting?", category=greetings.id, department="support"
            )
        ).id,
    }
    ids["greetings"], ids["refunds"] = greetings.id, refunds.id
    return ids


class TestCannedThroughTheEngine:
    async def test_suggest_scoped_and_pick_fills(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An agent sees its departments' and shared messages; picking fills the placeholders."""
        ids = await seed(engine)
        async with engine.connect_agent("ann") as ann:
            assert [m.id for m in await ann.canned_suggest("Sure #返金")] == [ids["refund"]]
            assert await ann.canned_suggest("#restart") == []  # support only; ann is sales
            assert [m.id for m in await ann.canned_suggest("#HELLO")] == [ids["hello"]]
            assert await ann.canned_suggest("no hash here") == []
            await ann.set_status("online")
            visitor = Visitor(name="Mina", email="mina@example.com")
            async with engine.open_chat(department="sales", question="q", visitor=visitor) as v:
                await ann.accept((await offer_for(ann, v.chat_id)).offer_id)
                text = await ann.canned_pick(ids["hello"], v.chat_id)
                assert text == "Hello Mina, this is Ann from Sales."
        assert engine.canned.book.use_count(ids["hello"], "ann") == 1

    async def test_pick_needs_the_chat(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Picking for a chat the agent is not in is refused and counts nothing."""
        ids = await seed(engine)
        async with engine.connect_agent("ann") as ann:
            with pytest.raises(EngineError) as err:
                await ann.canned_pick(ids["hello"], "no-such-chat")
            assert err.value.code == "not_in_chat"
        assert engine.canned.book.use_count(ids["hello"], "ann") == 0

    async def test_category_delete_needs_a_decision(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A category holding messages is only deleted by moving or deleting them."""
        ids = await seed(engine)
        with pytest.raises(EngineError) as err:
            await engine.canned.delete_category(ids["greetings"])
        assert err.value.code == "category_not_empty"
        await engine.canned.delete_category(
            ids["greetings"], messages="move", move_to=ids["refunds"]
        )
        assert {m.category for m in engine.canned.messages()} == {ids["refunds"]}


async def test_canned_survive_reopen(
    config: EngineConfig, db_path: Path, autojump_clock: MockClock
) -> None:
    """Messages, edits, deletions and use counts are all in the database after a restart."""
    async with open_engine(config, db=db_path) as engine:
        ids = await seed(engine)
        await engine.canned.edit_message(ids["support"], text="Please restart the app.")
        await engine.canned.delete_message(ids["refund"])
        await engine.canned.rename_category(ids["refunds"], "Money back")
        await engine.canned.pick(ids["hello"], agent_id="bob", values={})
        await engine.canned.edit_message(ids["hello"], title="挨拶", reading="あいさつ")
        thanks = await engine.canned.add_message(
            "Thanks!",
            category=ids["refunds"],
            department="sales",
            title="お礼",
            shortcut="thx",
            reading="おれい",
        )
        before = engine.canned.book.snapshot()
    async with open_engine(config, db=db_path) as engine:
        after = engine.canned.book.snapshot()
        assert after == before
        assert ("お礼", "thx", "おれい") == (
            (m := engine.canned.message(thanks.id)).title,
            m.shortcut,
            m.reading,
        )
        found = engine.canned.suggest("#おれい", departments=["sales"], agent_id="bob")
        assert [thanks.id] == [m.id for m in found]
        assert {m.text for m in engine.canned.messages(departments=["support"])} == {
            "Please restart the app.",
            "Hello {visitor.name}, this is {agent.name} from {department.name}.",
        }
