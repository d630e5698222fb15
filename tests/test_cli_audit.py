"""``helpline token --supervisor`` and ``helpline audit``: command line changes are audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from engine import open_store
from protocol.server.auth import authenticate_supervisor

from .test_cli import empty_db, run


class TestSupervisorTokens:
    def test_a_scoped_token(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A supervisor's token signs in with the departments it was issued for, which exist."""
        db = empty_db(tmp_path)
        for dept in ("sales", "support"):
            run(capsys, "department", "add", dept, "--name", dept.title(), "--db", db)
        status, out, _ = run(
            capsys, "token", "--supervisor", "sue", "--department", "sales", "--db", db
        )
        assert status == 0
        token = out.strip()

        async def check() -> None:
            async with open_store(db, synchronous="NORMAL") as store:
                found = await authenticate_supervisor(store, token)
                assert found == ("supervisor:sue", "sue", frozenset({"sales"}))

        trio.run(check)
        status, _, err = run(
            capsys, "token", "--supervisor", "sue", "--department", "mars", "--db", db
        )
        assert status == 1
        assert "no department 'mars'" in err

    def test_supervisor_needs_departments(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``--supervisor`` without ``--department`` is a usage error."""
        with pytest.raises(SystemExit) as info:
            run(capsys, "token", "--supervisor", "sue")
        assert info.value.code == 2


class TestAudit:
    def test_changes_are_listed(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Every change the commands make is listed, newest first, as a table or JSON."""
        db = empty_db(tmp_path)
        run(capsys, "department", "add", "sales", "--name", "Sales", "--db", db)
        run(capsys, "department", "set", "sales", "--name", "Sales desk", "--db", db)
        run(capsys, "agent", "add", "ann", "--name", "Ann", "--department", "sales", "--db", db)
        run(capsys, "token", "ann", "--db", db)
        run(capsys, "canned", "category", "add", "General", "--id", "general", "--db", db)
        run(capsys, "agent", "remove", "ann", "--db", db)
        status, out, _ = run(capsys, "audit", "--json", "--db", db)
        assert status == 0
        entries = [json.loads(line) for line in out.splitlines()]
        assert [e["action"] for e in entries] == [
            "agent_removed",
            "canned_changed",
            "token_issued",
            "agent_added",
            "department_changed",
            "department_added",
        ]
        assert {e["actor"] for e in entries} == {"cli"}
        changed = entries[4]
        assert (changed["before"]["name"], changed["after"]["name"]) == ("Sales", "Sales desk")
        assert entries[0]["before"]["departments"] == ["sales"]
        assert entries[0]["after"] is None
        status, out, _ = run(
            capsys, "audit", "--action", "agent_added", "--actor", "cli", "--db", db
        )
        lines = out.splitlines()
        assert lines[0].split() == ["time", "actor", "action", "target", "change"]
        assert len(lines) == 2
        assert "agent_added" in lines[1]
        assert '"capacity": 3' in lines[1]
        assert run(capsys, "audit", "--actor", "nobody", "--db", db)[1] == "No audit entries.\n"
        assert run(capsys, "audit", "--limit", "1", "--json", "--db", db)[1].count("\n") == 1
