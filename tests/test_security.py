"""What each party may see: file modes, visitor history across departments, canned messages,
and the limits on opening chats."""

from __future__ import annotations

import os
import stat
from collections.abc import Awaitable
from pathlib import Path

import pytest
from trio.testing import MockClock

from engine import Engine, EngineError, Visitor
from protocol import ClientError

from .gateway_harness import accept, open_chat, open_gateway
from .helpers import offer_for
from engine._store import open_store


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
