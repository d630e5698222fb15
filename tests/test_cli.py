"""The ``helpline`` command line: store management, help texts, the daemon's start and stop."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import pytest
import trio

from engine._store import open_store
from protocol import ConfigError, load_config
from protocol._auth import authenticate
from protocol._frames import Role
from protocol._settings import DEFAULT_PORT, parse_config
from protocol.cli import build_parser, main

from .daemon_harness import start_daemon


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``helpline ARGS`` in this process: (exit status, stdout, stderr)."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every command path (``("agent", "add")``...) of the parser."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += subcommands(child, (*path, name))
    return found


class TestStoreCommands:
    def test_departments_and_agents(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Departments and agents are added, listed and removed in the database file."""
        db = str(tmp_path / "h.db")
        assert 0 == run(capsys, "department", "add", "sales", "--name", "Sales", "--db", db)[0]
        status, _, err = run(capsys, "department", "add", "sales", "--name", "Again", "--db", db)
        assert (1, "helpline: department 'sales' exists already\n") == (status, err)
        add = ("agent", "add", "ann", "--name", "Ann", "--department", "sales", "--capacity", "4")
        assert 0 == run(capsys, *add, "--db", db)[0]
        assert (0, "ann\tAnn\tsales\tcapacity=4\toffline\n", "") == run(
            capsys, "agent", "list", "--db", db
        )
        status, out, _ = run(capsys, "department", "list", "--db", db)
        assert out.startswith("sales\tSales\tbroadcast\tchat=on")
        assert 0 == run(capsys, "agent", "remove", "ann", "--db", db)[0]
        assert (0, "") == run(capsys, "agent", "list", "--db", db)[:2]
        status, _, err = run(capsys, "agent", "remove", "ann", "--db", db)
        assert (1, "helpline: no agent 'ann'\n") == (status, err)

    def test_agent_needs_known_departments(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An agent of a department that does not exist is refused with a hint."""
        status, _, err = run(
            capsys,
            "agent",
            "add",
            "ann",
            "--name",
            "Ann",
            "--department",
            "mars",
            "--db",
            str(tmp_path / "h.db"),
        )
        assert 1 == status
        assert "no department mars; add it first" in err

    def test_tokens(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A token is printed alone; the store keeps only its hash, and a new one revokes it."""
        db = str(tmp_path / "h.db")
        run(capsys, "department", "add", "sales", "--name", "Sales", "--db", db)
        run(capsys, "agent", "add", "ann", "--name", "Ann", "--department", "sales", "--db", db)
        first = run(capsys, "token", "ann", "--db", db)[1].strip()
        second = run(capsys, "token", "ann", "--db", db)[1].strip()
        admin = run(capsys, "token", "--admin", "--db", db)[1].strip()
        assert first.startswith("hlt_")
        assert len(first) >= 4 + 43  # 256 bits, URL-safe

        async def check() -> None:
            async with open_store(db, synchronous="NORMAL") as store:
                assert await authenticate(store, Role.AGENT, first) is None
                assert "ann" == await authenticate(store, Role.AGENT, second)
                assert "admin" == await authenticate(store, Role.ADMIN, admin)
                assert await authenticate(store, Role.ADMIN, second) is None

        trio.run(check)
        assert first.encode() not in (tmp_path / "h.db").read_bytes()
        status, _, err = run(capsys, "token", "nobody", "--db", db)
        assert (1, "helpline: no agent 'nobody'\n") == (status, err)

    def test_token_needs_one_subject(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``token`` with neither an agent nor --admin is a usage error (status 2)."""
        with pytest.raises(SystemExit) as info:
            main(["token"])
        assert 2 == info.value.code
        assert "name an agent, or pass --admin" in capsys.readouterr().err


class TestHelp:
    @pytest.mark.parametrize("path", subcommands(build_parser()))
    def test_every_option_is_explained(
        self, path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--help`` works for every command and names every option with an explanation."""
        parser = build_parser()
        for name in path:
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = sub.choices[name]
        for action in parser._actions:
            assert action.help, (path, action.dest)
        with pytest.raises(SystemExit) as info:
            main([*path, "--help"])
        assert 0 == info.value.code
        text = capsys.readouterr().out
        for action in parser._actions:
            for option in action.option_strings:
                assert option in text, (path, option)


class TestConfig:
    def test_defaults(self) -> None:
        """Without a file the daemon has the documented defaults and one department."""
        config = load_config(None)
        assert ("127.0.0.1", DEFAULT_PORT, 8765) == (config.server.host, config.server.port, 8765)
        assert ["support"] == [d.id for d in config.engine.departments]

    def test_a_full_file(self, tmp_path: Path) -> None:
        """Every table of the file reaches its settings."""
        path = tmp_path / "h.toml"
        path.write_text(
            '[server]\nport = 9000\norigins = ["https://help.example.com"]\nrate = 5\n'
            "[engine]\nvisitor_grace = 60\n"
            '[[departments]]\nid = "sales"\nname = "Sales"\nrouting = "assigned"\n'
            '[[agents]]\nid = "ann"\nname = "Ann"\ndepartments = ["sales"]\n'
            '[[canned]]\nid = "hi"\ntext = "Hello!"\n'
        )
        config = load_config(path)
        assert (9000, ("https://help.example.com",), 5.0) == (
            config.server.port,
            config.server.origins,
            config.server.rate,
        )
        assert 60.0 == config.engine.visitor_grace
        assert ("sales", "assigned") == (
            config.engine.departments[0].id,
            config.engine.departments[0].routing.value,
        )
        assert ("ann", ("sales",)) == (
            config.engine.agents[0].id,
            config.engine.agents[0].departments,
        )
        assert ("hi", "general") == (config.canned[0].id, config.canned[0].category)

    @pytest.mark.parametrize(
        ("document", "complaint"),
        [
            ({"server": {"prot": 1}}, "unknown key 'prot'"),
            ({"server": {"port": "80"}}, "server.port must be a non-negative integer"),
            ({"server": {"port": 70000}}, "port must be 0..65535"),
            ({"engine": {"visitor_grace": True}}, "engine.visitor_grace must be a number"),
            ({"departments": [{"id": "x"}]}, "departments[0]"),
            ({"departments": [{"id": "x", "name": "X", "routing": "random"}]}, "routing"),
            ({"agents": [{"id": "a", "name": "A", "departments": ["mars"]}]}, "unknown department"),
            ({"daemon": {}}, "unknown table"),
        ],
    )
    def test_mistakes_are_named(self, document: dict[str, object], complaint: str) -> None:
        """A wrong key, type or value is a ConfigError that says which and why."""
        with pytest.raises(ConfigError, match=complaint.replace("[", r"\[").replace("]", r"\]")):
            parse_config(document)

    def test_serve_reports_a_bad_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``serve`` with a broken file exits 1 with the reason, before opening anything."""
        path = tmp_path / "h.toml"
        path.write_text("[server\n")
        status, _, err = run(capsys, "serve", "--config", str(path), "--db", str(tmp_path / "h.db"))
        assert 1 == status
        assert "is not valid TOML" in err
        assert not (tmp_path / "h.db").exists()


class TestServe:
    def test_first_start_prints_an_admin_token_once(self, tmp_path: Path) -> None:
        """The first start prints a working admin token; later starts do not; SIGINT stops it."""
        first = start_daemon(tmp_path)
        try:
            assert first.url.startswith("ws://127.0.0.1:")
            assert first.admin_token is not None
        finally:
            assert 0 == first.stop(signal.SIGINT)
        again = start_daemon(tmp_path)
        try:
            assert again.admin_token is None
            assert again.url != ""
        finally:
            assert 0 == again.stop(signal.SIGTERM)

        async def check() -> None:
            async with open_store(tmp_path / "helpline.db", synchronous="NORMAL") as store:
                assert 1 == await store.count_tokens(role="admin")
                assert ["support"] == [d.id for d in await store.departments()]

        trio.run(check)
