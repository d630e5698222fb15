"""``helpline webhook``: add, list, remove, failures and replay on the database file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from engine import open_store
from engine.model.desk_events import DeliveryState, DeskEvent, DeskEventKind
from engine.store.outbox import enqueue

from .test_cli import empty_db, run

SECRET = "0123456789abcdef"


def fail_one(db: str) -> str:
    """Queue one event for webhook crm and give it up; returns its delivery id."""

    async def job() -> str:
        async with open_store(db) as store:
            event = DeskEvent(kind=DeskEventKind.CHAT_ENDED, chat_id="c1", department="", at=1.0)
            await store.write(lambda conn: enqueue(conn, [event]))
            (row,) = await store.outbox_due(2.0)
            await store.outbox_mark(
                row.id,
                state=DeliveryState.FAILED,
                attempts=3,
                next_attempt=0,
                error="HTTP 500",
                now=3,
            )
            return row.delivery_id

    return trio.run(job)


class TestWebhookCommands:
    def test_add_list_remove(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A webhook is added with its filters, listed without its secret, and removed."""
        db = empty_db(tmp_path)
        add = ("webhook", "add", "https://crm.example.com/h", "--secret", SECRET, "--id", "crm")
        assert (0, "added webhook crm\n", "") == run(
            capsys, *add, "--event", "chat.ended", "--db", db
        )
        assert (0, "crm\thttps://crm.example.com/h\tall departments\tchat.ended\n", "") == run(
            capsys, "webhook", "list", "--db", db
        )
        status, _, err = run(capsys, *add, "--db", db)
        assert (1, "helpline: webhook 'crm' exists already\n") == (status, err)
        status, _, err = run(capsys, "webhook", "add", "ftp://x", "--secret", SECRET, "--db", db)
        assert 1 == status
        assert "http:// or https://" in err
        assert (0, "removed webhook crm\n", "") == run(
            capsys, "webhook", "remove", "crm", "--db", db
        )
        status, _, err = run(capsys, "webhook", "remove", "crm", "--db", db)
        assert (1, "helpline: no webhook 'crm'\n") == (status, err)

    def test_failures_and_replay(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A failed delivery is listed (also as JSON) and put back in line by replay."""
        db = empty_db(tmp_path)
        run(
            capsys,
            "webhook",
            "add",
            "https://a.example",
            "--secret",
            SECRET,
            "--id",
            "crm",
            "--db",
            db,
        )
        delivery_id = fail_one(db)
        status, out, _ = run(capsys, "webhook", "failures", "--json", "--db", db)
        (line,) = out.splitlines()
        assert (0, delivery_id, "HTTP 500", "chat.ended") == (
            status,
            json.loads(line)["delivery_id"],
            json.loads(line)["last_error"],
            json.loads(line)["event"]["type"],
        )
        assert (0, "replayed 1 deliveries\n", "") == run(
            capsys, "webhook", "replay", delivery_id, "--db", db
        )
        assert (0, "", "") == run(capsys, "webhook", "failures", "--db", db)

    def test_discard(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A failed delivery is deleted for good by discard."""
        db = empty_db(tmp_path)
        run(
            capsys,
            "webhook",
            "add",
            "https://a.example",
            "--secret",
            SECRET,
            "--id",
            "crm",
            "--db",
            db,
        )
        fail_one(db)
        assert (0, "discarded 1 failed deliveries\n", "") == run(
            capsys, "webhook", "discard", "--webhook", "crm", "--db", db
        )
        assert (0, "", "") == run(capsys, "webhook", "failures", "--db", db)
        assert (0, "replayed 0 deliveries\n", "") == run(capsys, "webhook", "replay", "--db", db)
