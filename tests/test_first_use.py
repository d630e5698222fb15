"""First use, as a new operator tries it: a real ``helpline serve`` process changed from the shell,
a busy port, a mistyped ``--db``, and the demo's output."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio

from bench._daemonproc import TOKEN_PREFIX, Daemon, helpline, start_daemon
from engine import open_store
from protocol import Client, ClientClosed, ClientError, connect
from protocol.server.auth import hash_token, new_token

DEMO = Path(__file__).parent.parent / "examples" / "demo.py"
DEADLINE = 60.0  # a safety net for real processes on a busy machine, not a timing check


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start_daemon(tmp_path_factory.mktemp("first-use"))
    try:
        yield running
    finally:
        running.kill()


async def shell(daemon: Daemon, *args: str) -> str:
    """Run ``helpline ARGS --db`` (the daemon's database) as the operator would; its output."""
    done = await trio.run_process(
        helpline(*args, "--db", str(daemon.db)), capture_stdout=True, capture_stderr=True
    )
    return str(done.stdout.decode())


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until ``check()`` holds (the daemon looks at the shell's changes once a second)."""
    while True:
        if await check():
            return
        await trio.sleep(0.05)


async def refusal(url: str, token: str) -> tuple[str, str]:
    """The (code, message) an agent's sign-in with ``token`` gets."""
    with pytest.raises(ClientError) as info:
        async with connect(url, role="agent", token=token):
            pass
    return info.value.code, info.value.message


class TestShellChangesReachTheDaemon:
    async def test_an_agent_added_from_the_shell_signs_in_at_once(self, daemon: Daemon) -> None:
        """An agent added and given a token with the command line signs in without a restart,
        and is offered the chats of its department."""
        with trio.fail_after(DEADLINE):
            await shell(daemon, "agent", "add", "ann", "--name", "Ann", "--department", "support")
            token = (await shell(daemon, "token", "ann")).strip()
            async with (
                connect(daemon.url, role="agent", token=token) as ann,
                connect(daemon.url, role="visitor") as visitor,
            ):
                await ann.request("set_status", status="online")
                chat = await visitor.request(
                    "open_chat", department="support", name="Mina", question="Hello?"
                )
                offer = await ann.wait_for("offer", chat_id=chat["chat_id"])
                await ann.request("accept", offer_id=offer.fields["offer_id"])
                await ann.request("end_chat", chat_id=chat["chat_id"])
                await ann.request("set_status", status="offline")

    async def test_a_department_added_and_switched_off_from_the_shell(self, daemon: Daemon) -> None:
        """A department added with the command line takes chats at once; ``department chat
        off`` and ``department set`` reach the running daemon."""
        assert daemon.admin_token is not None
        with trio.fail_after(DEADLINE):
            await shell(daemon, "department", "add", "sales", "--name", "Sales")
            await shell(daemon, "agent", "add", "bo", "--name", "Bo", "--department", "sales")
            token = (await shell(daemon, "token", "bo")).strip()
            async with (
                connect(daemon.url, role="agent", token=token) as bo,
                connect(daemon.url, role="admin", token=daemon.admin_token) as admin,
            ):
                await bo.request("set_status", status="online")
                async with connect(daemon.url, role="visitor") as visitor:
                    chat = await visitor.request(
                        "open_chat", department="sales", name="Mina", question="Price?"
                    )
                    await bo.wait_for("offer", chat_id=chat["chat_id"])
                    await visitor.request("leave")
                await shell(daemon, "department", "chat", "sales", "off")
                await shell(daemon, "department", "set", "sales", "--offer-window", "12")

                async def switched() -> bool:
                    listed = await admin.request("department_list")
                    sales = next(d for d in listed["departments"] if d["id"] == "sales")
                    return sales["chat_enabled"] is False and sales["offer_window"] == 12

                await eventually(switched)
                await bo.request("set_status", status="offline")

    async def test_canned_messages_from_the_shell(self, daemon: Daemon) -> None:
        """A canned message added with the command line is suggested to a signed-in agent."""
        with trio.fail_after(DEADLINE):
            token = (await shell(daemon, "token", "ann")).strip()
            async with connect(daemon.url, role="agent", token=token) as ann:
                await shell(daemon, "canned", "category", "add", "Greetings", "--id", "greet")
                await shell(
                    daemon, "canned", "add", "Hello {visitor.name}!", "--category", "greet",
                    "--id", "hello",
                )  # fmt: skip

                async def suggested() -> bool:
                    reply = await ann.request("canned_suggest", draft="#hel")
                    return ["hello"] == [s["message_id"] for s in reply["suggestions"]]

                await eventually(suggested)

    async def test_agent_skills_from_the_shell(self, daemon: Daemon) -> None:
        """Skills given with ``agent add --skills`` and set with ``agent skills`` decide, in the
        running daemon, who is offered a chat that requires them."""
        assert daemon.admin_token is not None
        with trio.fail_after(DEADLINE):
            await shell(
                daemon, "agent", "add", "dana", "--name", "Dana", "--department", "support",
                "--skills", "de,billing",
            )  # fmt: skip
            await shell(daemon, "agent", "add", "eli", "--name", "Eli", "--department", "support")
            listed = (await shell(daemon, "agent", "list")).splitlines()
            assert any(line.startswith("dana\t") and "skills=de,billing" in line for line in listed)
            dana_token = (await shell(daemon, "token", "dana")).strip()
            eli_token = (await shell(daemon, "token", "eli")).strip()
            async with (
                connect(daemon.url, role="agent", token=dana_token) as dana,
                connect(daemon.url, role="agent", token=eli_token) as eli,
                connect(daemon.url, role="admin", token=daemon.admin_token) as admin,
            ):
                await dana.request("set_status", status="online")
                await eli.request("set_status", status="online")

                async def chosen() -> set[str]:
                    """Who is offered a new chat that requires German."""
                    async with connect(daemon.url, role="visitor") as visitor:
                        chat = await visitor.request(
                            "open_chat", department="support", name="Mina", question="Hallo?",
                            skills=["de"],
                        )  # fmt: skip
                        trace = await admin.request("routing_trace", chat_id=chat["chat_id"])
                        await visitor.request("leave")
                    offered = [s for s in trace["steps"] if s["kind"] == "offered"]  # type: ignore[union-attr]
                    return {
                        c["agent"] for c in offered[0]["candidates"] if c["verdict"] == "chosen"
                    }

                assert await chosen() == {"dana"}
                said = await shell(daemon, "agent", "skills", "eli", "de")
                assert said.strip() == "agent eli skills: de"
                await shell(daemon, "agent", "skills", "dana", "billing")

                async def applied() -> bool:
                    return "agent dana changed" in daemon.log.read_text()

                await eventually(applied)
                assert await chosen() == {"eli"}
                await dana.request("set_status", status="offline")
                await eli.request("set_status", status="offline")

    async def test_an_agent_removed_from_the_shell(self, daemon: Daemon) -> None:
        """An agent removed with the command line is removed from the running daemon too: its
        connection is closed and its token no longer signs in."""
        with trio.fail_after(DEADLINE):
            await shell(daemon, "agent", "add", "cy", "--name", "Cy", "--department", "support")
            token = (await shell(daemon, "token", "cy")).strip()
            async with connect(daemon.url, role="agent", token=token) as cy:
                await shell(daemon, "agent", "remove", "cy")
                with pytest.raises(ClientClosed) as closed:
                    await _until_closed(cy)
                assert 1008 == closed.value.code
            assert "unauthorized" == (await refusal(daemon.url, token))[0]


async def _until_closed(client: Client) -> None:
    while True:
        await client.request("set_status", status="offline")
        await trio.sleep(0.05)


class TestSignInRefusals:
    async def test_refusals_do_not_tell_which_agents_exist(self, daemon: Daemon) -> None:
        """An unknown token and a stored token whose agent does not exist get the same answer."""
        orphan = new_token()
        async with open_store(daemon.db, synchronous="NORMAL") as store:
            await store.save_token(
                token_hash=hash_token(orphan), role="agent", subject="agent:ghost", created_at=0
            )
        with trio.fail_after(DEADLINE):
            unknown = await refusal(daemon.url, new_token())
            ghost = await refusal(daemon.url, orphan)
        assert unknown == ghost
        assert "unauthorized" == unknown[0]
        assert "unknown" in unknown[1]
        assert "revoked" in unknown[1]


class TestStart:
    def test_a_busy_port_prints_no_token(self, tmp_path: Path) -> None:
        """``serve`` on a port in use exits 1 saying so, and neither prints nor stores a token."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            db = tmp_path / "h.db"
            done = subprocess.run(
                helpline("serve", "--port", str(port), "--db", str(db)),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert 1 == done.returncode
        assert "hlt_" not in done.stdout + done.stderr
        assert TOKEN_PREFIX not in done.stdout
        assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in done.stderr
        assert "Traceback" not in done.stderr

        async def count() -> int:
            async with open_store(db, synchronous="NORMAL") as store:
                return await store.count_tokens(role="admin")

        assert 0 == trio.run(count)

    def test_a_new_database_is_announced(self, tmp_path: Path) -> None:
        """``serve`` on a file that does not exist says it creates it, with the full path."""
        running = start_daemon(tmp_path)
        try:
            assert running.admin_token is not None
        finally:
            assert 0 == running.stop()
        log = running.log.read_text()
        assert str(tmp_path / "helpline.db") in log
        assert "database_created" in log

    def test_a_second_daemon_on_one_file_is_refused(self, tmp_path: Path) -> None:
        """A second ``serve`` on a database another daemon serves exits 1 and says so; the first
        one goes on serving."""
        first = start_daemon(tmp_path)
        try:
            done = subprocess.run(
                helpline("serve", "--port", "0", "--db", str(first.db)),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert 1 == done.returncode
            assert f"another helpline daemon is serving {first.db}" in done.stderr
            assert "Traceback" not in done.stderr
            assert first.process.poll() is None
        finally:
            assert 0 == first.stop()

    def test_a_missing_directory_is_a_usage_error(self, tmp_path: Path) -> None:
        """``serve --db`` into a directory that does not exist exits 2 and creates nothing."""
        db = tmp_path / "typo" / "h.db"
        done = subprocess.run(
            helpline("serve", "--port", "0", "--db", str(db)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 2 == done.returncode
        assert "" == done.stdout
        assert f"the directory {tmp_path / 'typo'} does not exist" in done.stderr
        assert [] == list(tmp_path.iterdir())


def test_the_demo_prints_a_clean_story(tmp_path: Path) -> None:
    """``make demo`` prints its story without log lines; stderr gets only warnings (none)."""
    done = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            str(tmp_path / "d.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert "" == done.stderr
    assert "[info" not in done.stdout
    assert done.stdout.startswith("Aiko, Ben and Chloe are online.\n")
