"""The ``helpline`` command line: store management, ticket export, the ratings report, help
texts, the daemon's start and stop."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from bench._daemonproc import helpline, start_daemon
from engine import (
    MAX_PAGE,
    Agent,
    AgentConnection,
    ChatEnded,
    Department,
    EndReason,
    EngineConfig,
    Entry,
    Offer,
    Ticket,
    TicketKind,
    Visitor,
    hold_clock_for_store,
    open_engine,
    open_store,
)
from protocol import ConfigError, load_config
from protocol.cli import main
from protocol.cli.common import parse_time
from protocol.cli.ratings import format_ratings
from protocol.cli.tickets import export_tickets
from protocol.server.auth import authenticate
from protocol.server.settings import DEFAULT_PORT, parse_config
from protocol.wire.frames import Role
from protocol.wire.records import ticket_record


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``helpline ARGS`` in this process: (exit status, stdout, stderr)."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def empty_db(tmp_path: Path) -> str:
    """A new, empty helpline database (as ``helpline serve`` creates it) under ``tmp_path``."""
    db = tmp_path / "h.db"

    async def create() -> None:
        async with open_store(db, synchronous="NORMAL"):
            pass

    trio.run(create)
    return str(db)


def help_text(path: tuple[str, ...]) -> str:
    """What ``helpline PATH --help`` prints (it exits with status 0)."""
    with pytest.raises(SystemExit) as info, contextlib.redirect_stdout(io.StringIO()) as out:
        main([*path, "--help"])
    assert 0 == info.value.code, path
    return out.getvalue()


HelpEntry = tuple[int, str, bool]  # indent, what the entry names, whether it has an explanation


def help_entries(text: str) -> list[HelpEntry]:
    """The entries of a ``--help`` text's argument groups ("positional arguments:", "options:"
    and the others): an option (``-x, --xx VALUE``), an argument or a subcommand (one word, a
    subcommand indented by four spaces under its command argument), and whether an explanation
    follows it, on its line after two spaces or on the lines below, indented further. A group's
    own description (prose at the entries' indent) is not an entry."""
    entries: list[tuple[int, str, list[str]]] = []
    in_group = False
    current: list[str] | None = None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        named, _, explained = line.strip().partition("  ")
        if not line.strip():
            continue
        if indent == 0:
            in_group = line.endswith(":") and not line.startswith("usage:")
            current = None
        elif not in_group:
            continue
        elif indent in (2, 4) and (named.startswith("-") or " " not in named):
            current = [explained.strip()]
            entries.append((indent, named, current))
        elif indent > 4 and current is not None:
            current.append(line.strip())
        else:
            current = None
    return [(indent, named, any(more)) for indent, named, more in entries]


def subcommands(path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path (``("agent", "add")``...) that ``--help`` lists, from the top."""
    found = [path]
    for indent, named, _ in help_entries(help_text(path)):
        if indent == 4:
            found += subcommands((*path, named))
    return found


class TestStoreCommands:
    def test_departments_and_agents(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Departments and agents are added, listed and removed in the database file."""
        db = empty_db(tmp_path)
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

    def test_agent_update(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An agent's name, departments and capacity change; the rest stays; nothing to change,
        an unknown agent or department is refused."""
        db = empty_db(tmp_path)
        for dept, name in (("sales", "Sales"), ("support", "Support")):
            run(capsys, "department", "add", dept, "--name", name, "--db", db)
        run(capsys, "agent", "add", "ann", "--name", "Ann", "--department", "sales", "--db", db)
        update = ("agent", "update", "ann", "--db", db)
        assert (0, "changed agent ann\n", "") == run(
            capsys, *update, "--name", "Ann A.", "--department", "support", "--department", "sales"
        )
        assert 0 == run(capsys, *update, "--capacity", "5")[0]
        assert (0, "ann\tAnn A.\tsupport,sales\tcapacity=5\toffline\n", "") == run(
            capsys, "agent", "list", "--db", db
        )
        for extra, complaint in (
            ((), "nothing to change"),
            (("--department", "mars"), "no department mars"),
            (("--capacity", "-1"), "must not be negative"),
        ):
            status, _, err = run(capsys, *update, *extra)
            assert (1, True) == (status, complaint in err), extra
        status, _, err = run(capsys, "agent", "update", "bob", "--capacity", "1", "--db", db)
        assert (1, "helpline: no agent 'bob'\n") == (status, err)

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
            empty_db(tmp_path),
        )
        assert 1 == status
        assert "no department mars; add it first" in err

    def test_tokens(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A token is printed alone; the store keeps only its hash, and a new one revokes it."""
        db = empty_db(tmp_path)
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

    def test_commands_refuse_a_missing_database(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every command but ``serve`` names a database file that does not exist, says how to get
        one, and creates nothing (a mistyped --db must not start an empty database)."""
        missing = tmp_path / "typo.db"
        for command in (
            ["agent", "list"],
            ["agent", "add", "ann", "--name", "Ann", "--department", "sales"],
            ["department", "list"],
            ["department", "chat", "sales", "off"],
            ["token", "--admin"],
            ["canned", "list"],
        ):
            status, out, err = run(capsys, *command, "--db", str(missing))
            assert (1, "") == (status, out), command
            assert err.startswith(f"helpline: no database file {missing}; "), command
            assert f"'helpline serve --db {missing}' once to create it" in err
        assert [] == list(tmp_path.iterdir())


class TestDepartmentCommands:
    def test_chat_on_and_off(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """``department chat DEPT on|off`` switches the stored department's chat."""
        db = empty_db(tmp_path)
        run(capsys, "department", "add", "sales", "--name", "Sales", "--db", db)
        assert (0, "department sales: chat off\n", "") == run(
            capsys, "department", "chat", "sales", "off", "--db", db
        )
        assert "\tchat=off\t" in run(capsys, "department", "list", "--db", db)[1]
        run(capsys, "department", "chat", "sales", "on", "--db", db)
        assert "\tchat=on\t" in run(capsys, "department", "list", "--db", db)[1]
        status, _, err = run(capsys, "department", "chat", "mars", "on", "--db", db)
        assert 1 == status
        assert err.startswith("helpline: no department 'mars'")

    def test_set(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """``department set`` changes the settings given and keeps the others."""
        db = empty_db(tmp_path)
        run(capsys, "department", "add", "sales", "--name", "Sales", "--chat-off", "--db", db)
        status, _, _ = run(
            capsys,
            *("department", "set", "sales", "--routing", "assigned", "--queue-limit", "5"),
            *("--name", "Sales desk", "--db", db),
        )
        assert 0 == status
        assert (
            "sales\tSales desk\tassigned\tchat=off\toffer_window=30\tqueue_timeout=300"
            "\tqueue_limit=5\n" == run(capsys, "department", "list", "--db", db)[1]
        )
        for options, complaint in (
            ([], "nothing to change"),
            (["--offer-window", "0"], "--offer-window must be a positive number"),
            (["--queue-limit", "-1"], "--queue-limit must not be negative"),
        ):
            status, _, err = run(capsys, "department", "set", "sales", *options, "--db", db)
            assert (1, True) == (status, complaint in err), options


class TestCannedCommands:
    def test_categories(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Categories are added, listed and removed; one holding messages only when told what
        becomes of them."""
        db = empty_db(tmp_path)
        assert (0, "greet\n", "") == run(
            capsys, "canned", "category", "add", "Greetings", "--id", "greet", "--db", db
        )
        status, out, _ = run(capsys, "canned", "category", "add", "Closing", "--db", db)
        other = out.strip()
        assert (0, True) == (status, bool(other))
        status, _, err = run(
            capsys, "canned", "category", "add", "Again", "--id", "greet", "--db", db
        )
        assert (1, "helpline: canned category 'greet' exists already\n") == (status, err)
        run(capsys, "canned", "add", "Hello!", "--category", "greet", "--id", "hi", "--db", db)
        listed = run(capsys, "canned", "category", "list", "--db", db)[1].splitlines()
        assert "greet\tGreetings\t1 message" in listed
        status, _, err = run(capsys, "canned", "category", "remove", "greet", "--db", db)
        assert 1 == status
        assert "holds 1 message; pass --delete-messages or --move-to CATEGORY" in err
        assert (
            0
            == run(capsys, "canned", "category", "remove", "greet", "--move-to", other, "--db", db)[
                0
            ]
        )
        assert f"hi\t{other}\tshared\tHello!\n" == run(capsys, "canned", "list", "--db", db)[1]
        assert (
            0
            == run(capsys, "canned", "category", "remove", other, "--delete-messages", "--db", db)[
                0
            ]
        )
        assert (0, "", "") == run(capsys, "canned", "list", "--db", db)
        assert (0, "", "") == run(capsys, "canned", "category", "list", "--db", db)

    def test_message_labels(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A title, shortcut and reading are set on add, changed or removed on edit, and
        listed after the text; a shortcut of two words is refused."""
        db = empty_db(tmp_path)
        run(capsys, "canned", "category", "add", "Thanks", "--id", "thanks", "--db", db)
        add = ("canned", "add", "--category", "thanks", "--id", "orei", "--db", db)
        labels = ("--title", "お礼", "--shortcut", "ty", "--reading", "おれい")
        assert (0, "orei\n", "") == run(capsys, *add, "ありがとうございます。", *labels)
        assert (
            "orei\tthanks\tshared\tありがとうございます。\ttitle=お礼\tshortcut=ty\treading=おれい\n"
            == (run(capsys, "canned", "list", "--db", db)[1])
        )
        edit = ("canned", "edit", "orei", "--db", db)
        assert 0 == run(capsys, *edit, "--shortcut", "", "--title", "Thanks")[0]
        assert (
            "ありがとうございます。\ttitle=Thanks\treading=おれい\n"
            in (run(capsys, "canned", "list", "--db", db)[1])
        )
        status, _, err = run(capsys, *edit, "--shortcut", "two words")
        assert (1, True) == (status, "a shortcut is one word" in err)

    def test_messages(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Messages are added (shared or for one department), listed, edited and removed, with
        the checks of the admin requests."""
        db = empty_db(tmp_path)
        run(capsys, "department", "add", "sales", "--name", "Sales", "--db", db)
        run(capsys, "canned", "category", "add", "Greetings", "--id", "greet", "--db", db)
        add = ("canned", "add", "--category", "greet", "--db", db)
        assert (0, "hi\n", "") == run(capsys, *add, "Hello {visitor.name}!", "--id", "hi")
        assert 0 == run(capsys, *add, "Sales here", "--id", "s", "--department", "sales")[0]
        for extra, complaint in (
            (["--id", "hi"], "canned message 'hi' exists already"),
            (["--department", "mars"], "no department 'mars'"),
        ):
            status, _, err = run(capsys, *add, "Text", *extra)
            assert (1, True) == (status, complaint in err), extra
        status, _, err = run(capsys, "canned", "add", "x", "--category", "nope", "--db", db)
        assert (1, True) == (status, "no canned category 'nope'" in err)
        listing = run(capsys, "canned", "list", "--db", db)[1].splitlines()
        assert sorted(listing) == [
            "hi\tgreet\tshared\tHello {visitor.name}!",
            "s\tgreet\tsales\tSales here",
        ]
        edit = ("canned", "edit", "hi", "--db", db)
        assert 0 == run(capsys, *edit, "--text", "Hi there,\nwelcome", "--department", "sales")[0]
        assert (
            "hi\tgreet\tsales\tHi there,\\nwelcome"
            in run(capsys, "canned", "list", "--department", "sales", "--db", db)[1].splitlines()
        )
        assert 0 == run(capsys, *edit, "--shared")[0]
        assert (
            "hi\tgreet\tshared\tHi there,\\nwelcome"
            in run(capsys, "canned", "list", "--db", db)[1].splitlines()
        )
        status, _, err = run(capsys, *edit)
        assert (1, True) == (status, "nothing to change" in err)
        assert 0 == run(capsys, "canned", "remove", "hi", "--db", db)[0]
        status, _, err = run(capsys, "canned", "remove", "hi", "--db", db)
        assert (1, "helpline: no canned message 'hi'\n") == (status, err)
        assert ["s"] == [
            line.split("\t")[0]
            for line in run(capsys, "canned", "list", "--db", db)[1].splitlines()
        ]


class TestHelp:
    @pytest.mark.parametrize("path", subcommands())
    def test_every_option_is_explained(self, path: tuple[str, ...]) -> None:
        """``--help`` works for every command and names every option with an explanation, also
        the ones its usage line shows."""
        text = help_text(path)
        entries = help_entries(text)
        assert [named for _, named, explained in entries if not explained] == [], path
        assert any(named.startswith("-h, --help") for _, named, _ in entries), path
        usage = text[: text.index("\n\n")]
        listed = {o for _, named, _ in entries for o in re.findall(r"(?<![\w-])--?[\w-]+", named)}
        shown = set(re.findall(r"(?<=[\[ ])--?[\w-]+", usage))
        assert shown <= listed, (path, shown - listed)


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


# -- tickets export and ratings ---------------------------------------------------------------

SALES_AND_SUPPORT = EngineConfig(
    departments=(Department(id="sales", name="Sales"), Department(id="support", name="Support")),
    agents=(
        Agent(id="ann", name="Ann", departments=("sales",)),
        Agent(id="bob", name="Bob", departments=("support",)),
    ),
)
# (department, visitor email, rating) of each chat, oldest first; None as email: a missed chat.
CHATS: tuple[tuple[str, str | None, str | None], ...] = (
    ("sales", "ada@example.com", "good"),
    ("support", "bo@example.com", "bad"),
    ("sales", "ada@example.com", "neutral"),
    ("support", None, None),
    ("sales", "cy@example.com", None),
)


async def _offer(agent: AgentConnection) -> Offer:
    while True:
        event = await agent.next_event()
        if isinstance(event, Offer):
            return event


async def _run_chats(db: Path) -> None:
    async with (
        open_engine(SALES_AND_SUPPORT, db=db, synchronous="NORMAL") as engine,
        engine.connect_agent("ann") as ann,
        engine.connect_agent("bob") as bob,
    ):
        await ann.set_status("online")
        for i, (department, email, rating) in enumerate(CHATS):
            agent = ann if department == "sales" else bob
            await bob.set_status("offline" if email is None else "online")
            visitor = Visitor(name=f"Visitor {i}", email=email or "", browser="Firefox")
            async with engine.open_chat(
                department=department, question=f"Question {i}: grüße?", visitor=visitor
            ) as chat:
                if email is None:  # nobody online: the chat ends at once, as a missed chat
                    while not isinstance(await chat.next_event(), ChatEnded):
                        pass
                else:
                    offer = await _offer(agent)
                    await agent.accept(offer.offer_id)
                    await chat.send(f"Hello from visitor {i}")
                    await agent.send(chat.chat_id, f"Hi {i}, how can I help?")
                    await agent.end_chat(chat.chat_id)
                    if rating is not None:
                        await chat.rate(rating)
            await trio.sleep(60)


def make_tickets(db: Path) -> None:
    """Run the chats of CHATS through the engine, a minute apart (virtual time), over ``db``."""
    with hold_clock_for_store():
        trio.run(_run_chats, db, clock=MockClock(autojump_threshold=0))


def stored(db: Path) -> list[dict[str, Any]]:
    """Every ticket in ``db`` as a full Ticket record, newest first, read from the store."""

    async def read() -> list[dict[str, Any]]:
        async with open_store(db, synchronous="NORMAL") as store:
            names = {a.id: a.name for a in await store.agents()}
            tickets = await store.tickets(limit=1000)
            return [ticket_record(t, lambda a: names.get(a, a)) for t in tickets]

    return trio.run(read)


def lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON lines text; every line must be one."""
    assert text.endswith("\n") or not text
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def chats_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding the tickets of CHATS (made once for this module; tests only read it)."""
    db = tmp_path_factory.mktemp("chats") / "helpline.db"
    make_tickets(db)
    return db


class TestTicketsExport:
    def test_every_ticket_with_its_transcript(
        self, chats_db: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Every ticket comes out once, newest first, as the wire's full Ticket record."""
        status, out, err = run(capsys, "tickets", "export", "--db", str(chats_db))
        assert (0, "") == (status, err)
        exported = lines(out)
        assert stored(chats_db) == exported
        assert [f"Question {i}: grüße?" for i in (4, 3, 2, 1, 0)] == [
            t["question"] for t in exported
        ]
        assert ["transcript", "missed", "transcript", "transcript", "transcript"] == [
            t["kind"] for t in exported
        ]
        first = exported[-1]
        assert ("good", ["ann"], "ann") == (first["rating"], first["agents"], first["owner"])
        assert [
            ("joined", "ann", ""),
            ("message", "visitor", "Hello from visitor 0"),
            ("message", "ann", "Hi 0, how can I help?"),
            ("ended", "system", ""),
        ] == [(e["kind"], e["author"], e["text"]) for e in first["entries"]]
        assert "Ann" == first["entries"][2]["author_name"]

    @pytest.mark.parametrize(
        ("options", "chats"),
        [
            (["--kind", "missed"], [3]),
            (["--kind", "transcript", "--department", "sales"], [4, 2, 0]),
            (["--department", "support"], [3, 1]),
            (["--agent", "bob"], [1]),
            (["--visitor-email", "ADA@example.com"], [2, 0]),
            (["--since", "+90", "--until", "+210"], [3, 2]),
            (["--since", "+61"], [4, 3, 2]),
            (["--until", "+1"], [0]),
            (["--department", "mars"], []),
        ],
    )
    def test_filters(
        self,
        chats_db: Path,
        capsys: pytest.CaptureFixture[str],
        options: list[str],
        chats: list[int],
    ) -> None:
        """Each filter keeps exactly the tickets it names; times are offsets from the first end."""
        everything = stored(chats_db)
        start = everything[-1]["ended_at"]
        options = [
            iso(start + float(option)) if option.startswith("+") else option for option in options
        ]
        status, out, _ = run(capsys, "tickets", "export", "--db", str(chats_db), *options)
        assert 0 == status
        assert [everything[len(CHATS) - 1 - i] for i in chats] == lines(out)

    def test_output_file(
        self, chats_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--output writes the same lines to a file and says how many; nothing is left beside it."""
        target = tmp_path / "export.jsonl"
        status, out, err = run(
            capsys, "tickets", "export", "--db", str(chats_db), "--output", str(target)
        )
        assert (0, "", f"exported 5 tickets to {target}\n") == (status, out, err)
        assert stored(chats_db) == lines(target.read_text(encoding="utf-8"))
        assert ["export.jsonl"] == [p.name for p in tmp_path.iterdir()]

    def test_paging_by_key(self, tmp_path: Path) -> None:
        """Pages of any size export every ticket once, also when many end at the same moment."""
        db = tmp_path / "h.db"
        ends = [100.0, 100.0, 100.0, 100.0, 100.0, 90.0, 90.0, 80.0, 70.0, 70.0, 70.0]

        async def check() -> None:
            async with open_store(db, synchronous="NORMAL") as store:
                for i, ended_at in enumerate(ends):
                    await store.save_ticket(synthetic(i, ended_at))
                everything = await store.tickets(limit=1000)
                for page_size in (1, 2, 3, 5, 11, 12):
                    out = io.StringIO()
                    count = await export_tickets(store, out, {}, page_size=page_size)
                    assert len(ends) == count
                    assert [t.id for t in everything] == [r["id"] for r in lines(out.getvalue())]
                out = io.StringIO()
                await export_tickets(store, out, {}, since=80.0, until=100.0, page_size=2)
                assert [t.id for t in everything[5:8]] == [r["id"] for r in lines(out.getvalue())]

        trio.run(check)

    def test_more_tickets_than_a_page(self, tmp_path: Path) -> None:
        """Thousands of tickets stream out whole; a reader that stops early ends it quietly."""
        db = tmp_path / "h.db"
        count = 2 * MAX_PAGE + 345

        async def fill() -> None:
            async with open_store(db, synchronous="OFF") as store, trio.open_nursery() as nursery:
                for i in range(count):  # concurrent saves share commits
                    nursery.start_soon(store.save_ticket, synthetic(i, 1000.0 + i // 3))

        trio.run(fill)
        done = subprocess.run(
            helpline("tickets", "export", "--db", str(db)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (0, "") == (done.returncode, done.stderr)
        keys = [(record["ended_at"], record["id"]) for record in lines(done.stdout)]
        assert sorted(keys, reverse=True) == keys
        assert set(range(1, count + 1)) == {ticket_id for _, ticket_id in keys}
        newest = keys[0][1]
        with subprocess.Popen(
            helpline("tickets", "export", "--db", str(db)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            assert newest == json.loads(process.stdout.readline())["id"]
            process.stdout.close()
            assert "" == process.stderr.read()
            assert 0 == process.wait(60)

    def test_missing_database(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A database that does not exist is named, with what to do; nothing is created."""
        missing = tmp_path / "nope.db"
        target = tmp_path / "out.jsonl"
        for command in (
            ["tickets", "export", "--output", str(target)],
            ["ratings"],
            ["ratings", "--json"],
        ):
            status, out, err = run(capsys, *command, "--db", str(missing))
            assert (1, "") == (status, out)
            assert err.startswith(f"helpline: no database file {missing}; pass ")
            assert "--db PATH" in err
        assert [] == list(tmp_path.iterdir())

    def test_not_a_database(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A file that is not SQLite is refused with one line, not a traceback."""
        path = tmp_path / "notes.txt"
        path.write_text("not a database, just text that is long enough to have a header\n" * 10)
        status, _, err = run(capsys, "tickets", "export", "--db", str(path))
        assert 1 == status
        assert f"helpline: cannot use {path} as a helpline database: " in err
        assert 1 == len(err.splitlines())

    @pytest.mark.parametrize(
        ("options", "complaint"),
        [
            (["--since", "yesterday"], "expected seconds since the Unix epoch, or an ISO 8601"),
            (["--until", "-5"], "expected a time after 1970"),
            (["--since", "200", "--until", "100"], "--since must be earlier than --until"),
            (["--kind", "lost"], "invalid choice: 'lost'"),
        ],
    )
    def test_usage_errors(
        self, options: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Bad options are usage errors (status 2) that say what was expected."""
        for command in (["tickets", "export"], ["ratings"]):
            if options[0] == "--kind" and command == ["ratings"]:
                continue
            with pytest.raises(SystemExit) as info:
                main([*command, *options])
            assert 2 == info.value.code
            assert complaint in capsys.readouterr().err


class TestParseTime:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("1700000000", 1_700_000_000.0),
            ("1700000000.25", 1_700_000_000.25),
            ("2023-11-14T22:13:20Z", 1_700_000_000.0),
            ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
            ("2023-11-14 22:13:20", 1_700_000_000.0),
            ("2023-11-14", 1_699_920_000.0),
        ],
    )
    def test_forms(self, text: str, seconds: float) -> None:
        """Epoch seconds and ISO 8601 dates and times; no offset means UTC."""
        assert seconds == parse_time(text)

    @pytest.mark.parametrize("text", ["", "nan", "inf", "-1", "1969-12-31", "14/11/2023"])
    def test_refused(self, text: str) -> None:
        """Anything else is an argparse type error."""
        with pytest.raises(argparse.ArgumentTypeError):
            parse_time(text)


NO_SCORES = {"scored": 0, "average_score": None}


class TestRatings:
    def test_table(self, chats_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The table counts each rated chat for its agent and its department."""
        status, out, err = run(capsys, "ratings", "--db", str(chats_db))
        assert (0, "") == (status, err)
        assert (
            "Ratings of chats that ended at any time\n"
            "\n"
            "agent  good  neutral  bad  score\n"
            "ann       1        1    0      -\n"
            "bob       0        0    1      -\n"
            "total     1        1    1      -\n"
            "\n"
            "department  good  neutral  bad  score\n"
            "sales          1        1    0      -\n"
            "support        0        0    1      -\n"
            "total          1        1    1      -\n"
        ) == out

    def test_period_and_json(self, chats_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--since and --until bound the chats' ends; --json has the rating_report reply's shape."""
        start = stored(chats_db)[-1]["ended_at"]
        since, until = iso(start + 1), iso(start + 1000)
        status, out, _ = run(
            capsys, "ratings", "--db", str(chats_db), "--since", since, "--until", until, "--json"
        )
        assert 0 == status
        assert {
            "good": 0,
            "neutral": 1,
            "bad": 1,
            "scored": 0,
            "average_score": None,
            "by_agent": [
                {"agent_id": "ann", "good": 0, "neutral": 1, "bad": 0, **NO_SCORES},
                {"agent_id": "bob", "good": 0, "neutral": 0, "bad": 1, **NO_SCORES},
            ],
            "by_department": [
                {"department": "sales", "good": 0, "neutral": 1, "bad": 0, **NO_SCORES},
                {"department": "support", "good": 0, "neutral": 0, "bad": 1, **NO_SCORES},
            ],
            "since": parse_time(since),
            "until": parse_time(until),
        } == json.loads(out)
        status, out, _ = run(capsys, "ratings", "--db", str(chats_db), "--until", repr(start))
        shown = datetime.datetime.fromtimestamp(start, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert f"Ratings of chats that ended before {shown}\n\nNo rated chats.\n" == out

    def test_table_width_follows_the_ids(self) -> None:
        """Long ids widen their column; numbers stay right-aligned under their heading."""
        report = {
            "good": 12,
            "neutral": 0,
            "bad": 3,
            "scored": 2,
            "average_score": 4.5,
            "by_agent": [
                {
                    "agent_id": "a-very-long-agent-id",
                    "good": 12,
                    "neutral": 0,
                    "bad": 3,
                    "scored": 2,
                    "average_score": 4.5,
                }
            ],
            "by_department": [{"department": "d", "good": 12, "neutral": 0, "bad": 3}],
        }
        text = format_ratings(report, since=0.0)
        assert text.splitlines()[:5] == [
            "Ratings of chats that ended since 1970-01-01T00:00:00Z",
            "",
            "agent                 good  neutral  bad     score",
            "a-very-long-agent-id    12        0    3  4.50 (2)",
            "total                   12        0    3  4.50 (2)",
        ]


def iso(seconds: float) -> str:
    """``seconds`` as an ISO 8601 UTC time with microseconds (what --since and --until read)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


def synthetic(i: int, ended_at: float) -> Ticket:
    """A small transcript ticket ending at ``ended_at``, stored without running a chat."""
    return Ticket(
        chat_id=f"chat-{i}",
        kind=TicketKind.TRANSCRIPT,
        department="sales",
        question=f"Question {i}",
        visitor=Visitor(name=f"Visitor {i}"),
        entries=(Entry(seq=1, at=ended_at, kind="message", author="visitor", text="Hello"),),
        agents=(),
        started_at=ended_at - 1,
        ended_at=ended_at,
        end_reason=EndReason.VISITOR_LEFT,
    )
