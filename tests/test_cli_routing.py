"""The routing commands: ``helpline why CHAT_ID`` and ``helpline department hours DEPT``."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from engine import (
    Agent,
    Department,
    EngineConfig,
    Visitor,
    hold_clock_for_store,
    open_engine,
    open_store,
)

from .helpers import offer_for, settle
from .test_cli import empty_db, run


def missed_chat(db: Path) -> str:
    """A chat in sales whose offer to ann lapsed: the desk's one missed chat."""
    config = EngineConfig(
        departments=(Department(id="sales", name="Sales", offer_window=30),),
        agents=(Agent(id="ann", name="Ann", departments=("sales",), capacity=2),),
    )

    async def go() -> str:
        async with open_engine(config, db=db, synchronous="NORMAL") as engine:
            async with engine.connect_agent("ann") as ann:
                await ann.set_status("online")
                async with engine.open_chat(
                    department="sales", question="?", visitor=Visitor(name="Vera")
                ) as v:
                    await offer_for(ann, v.chat_id)
                    await trio.sleep(31)
                    await settle()
                    return v.chat_id

    with hold_clock_for_store():  # the store's threads take no virtual time
        return trio.run(go, clock=MockClock(autojump_threshold=0))


class TestWhy:
    def test_prints_the_timeline(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Each step on a line, the offer's candidates under it, the reason it was missed."""
        chat_id = missed_chat(tmp_path / "h.db")
        capsys.readouterr()  # the engine's log
        status, out, err = run(capsys, "why", chat_id, "--db", str(tmp_path / "h.db"))
        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == f"chat {chat_id} (ended, 4 steps)"
        kinds = [line.split("] ", 1)[1].split(":")[0] for line in lines if "] " in line]
        assert kinds == ["requested", "offered", "timeout", "missed"]
        assert any(line.split()[:3] == ["ann", "chosen", "broadcast"] for line in lines)
        assert lines[-1].endswith("missed: offer_timeout")

    def test_unknown_chat(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        status, _, err = run(capsys, "why", "nope", "--db", empty_db(tmp_path))
        assert status == 1
        assert "no stored routing trace" in err


class TestDepartmentHours:
    def test_set_and_show(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Hours given are stored (the rest kept); a schedule that does not parse is refused."""
        db = empty_db(tmp_path)
        run(capsys, "department", "add", "sales", "--name", "Sales", "--db", db)
        status, out, _ = run(capsys, "department", "hours", "sales", "--db", db)
        assert (status, out) == (0, "department sales: always open (UTC); holidays: none\n")
        args = ("department", "hours", "sales", "--timezone", "Europe/Berlin", "--db", db)
        assert run(capsys, *args, "--weekly", "mon-fri 09:00-17:00")[0] == 0
        status, out, _ = run(
            capsys, "department", "hours", "sales", "--holidays", "2024-12-25", "--db", db
        )
        assert out == (
            "department sales: mon-fri 09:00-17:00 (Europe/Berlin); holidays: 2024-12-25\n"
        )
        status, _, err = run(
            capsys, "department", "hours", "sales", "--weekly", "9 to 5", "--db", db
        )
        assert status == 1
        assert "DAYS HH:MM-HH:MM" in err

        async def stored() -> Department:
            async with open_store(db) as store:
                return next(d for d in await store.departments() if d.id == "sales")

        assert trio.run(stored).hours.weekly == ("mon-fri 09:00-17:00",)
