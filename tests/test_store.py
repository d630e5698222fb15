"""The SQLite store: round trips, group commit, queries, configuration and tokens."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from engine.model.records import (
    Agent,
    Department,
    EndReason,
    Entry,
    Handoff,
    Rating,
    RoutingMode,
    Ticket,
    TicketKind,
    Visitor,
)
from engine.store import journal
from engine.store.journal import ChatRow, JournalBatch
from engine.store.sqlite_store import (
    SCHEMA_VERSION,
    SqliteStore,
    StoreBusy,
    StoreClosed,
    StoreError,
    open_store,
)
from engine.store.tickets import MAX_PAGE, AlreadyRated, NotFound, TicketExists

WAIT = 10.0  # seconds before a test that waits for the writer thread gives up


def make_ticket(
    chat_id: str = "chat-1",
    *,
    kind: TicketKind = TicketKind.TRANSCRIPT,
    department: str = "sales",
    agents: tuple[str, ...] = ("ann",),
    owner: str = "ann",
    email: str = "Vic@Example.com",
    visitor_id: str = "v-1",
    ended_at: float = 1_000.0,
) -> Ticket:
    return Ticket(
        chat_id=chat_id,
        kind=kind,
        department=department,
        question="Where is my parcel?",
        visitor=Visitor(name="Vic", email=email, visitor_id=visitor_id),
        entries=(Entry(seq=1, at=ended_at - 10, kind="message", author="visitor", text="hi"),),
        agents=agents,
        started_at=ended_at - 60,
        ended_at=ended_at,
        end_reason=EndReason.AGENT_ENDED,
        owner=owner,
    )


def full_ticket() -> Ticket:
    """A ticket with every field away from its default, and floats that print long."""
    return Ticket(
        chat_id="chat-full",
        kind=TicketKind.TRANSCRIPT,
        department="support",
        question="Ça marche ? 💬",
        visitor=Visitor(
            name="Zoë",
            email="Zoe@Example.COM",
            browser="Firefox 128",
            os="Linux",
            location="Zürich",
            visitor_id="visitor-42",
        ),
        entries=(
            Entry(seq=1, at=0.1 + 0.2, kind="message", author="visitor", text="bonjour"),
            Entry(seq=2, at=1_700_000_000.123456, kind="joined", author="system"),
            Entry(seq=3, at=1e-300, kind="message", author="ann", text="", client_msg_id="m-3"),
        ),
        agents=("ann", "bob", "ann"),
        handoffs=(
            Handoff(
                kind="transfer",
                from_agent="ann",
                to_agent="bob",
                to_department="",
                note="billing question",
                outcome="accepted",
                at=1_700_000_001.5,
            ),
        ),
        started_at=1_699_999_999.999999,
        accepted_at=1_700_000_000.0000001,
        ended_at=1_700_000_100.25,
        end_reason=EndReason.VISITOR_LEFT,
        rating=Rating.NEUTRAL,
        rating_comment="ok-ish",
        handled=True,
        owner="bob",
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "helpline.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    async with open_store(db_path) as s:
        yield s


class Gate:
    """A job that holds the writer thread until released, so later jobs queue up behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def job(self, conn: sqlite3.Connection) -> None:
        self.entered.set()
        self.opened.wait(WAIT)

    async def close_on(self, store: SqliteStore) -> None:
        store.submit(self.job, lambda _: None)
        assert await trio.to_thread.run_sync(self.entered.wait, WAIT)

    def open(self) -> None:
        self.opened.set()


class Outcomes:
    """Collects ``on_done`` calls and lets a test wait for a number of them."""

    def __init__(self) -> None:
        self.values: list[tuple[str, object]] = []
        self._changed = trio.Event()

    def callback(self, label: str) -> Callable[[object], None]:
        def on_done(value: object) -> None:
            self.values.append((label, value))
            self._changed.set()

        return on_done

    async def wait_for(self, n: int) -> dict[str, object]:
        with trio.fail_after(WAIT):
            while len(self.values) < n:
                self._changed = trio.Event()
                await self._changed.wait()
        return dict(self.values)


def insert_token(token_hash: str) -> Callable[[sqlite3.Connection], str]:
    def job(conn: sqlite3.Connection) -> str:
        conn.execute(
            "INSERT INTO tokens (token_hash, role, subject, created_at)"
            " VALUES (?, 'agent', 's', 0)",
            (token_hash,),
        )
        return token_hash

    return job


async def token_hashes(store: SqliteStore) -> set[str]:
    rows = await store.read(lambda conn: conn.execute("SELECT token_hash FROM tokens").fetchall())
    return {row[0] for row in rows}


class TestOpen:
    async def test_wal_and_integrity(self, store: SqliteStore) -> None:
        """The file is in WAL mode and passes SQLite's integrity check."""
        journal = await store.read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        integrity = await store.read(lambda c: c.execute("PRAGMA integrity_check").fetchall())
        assert journal == "wal"
        assert integrity == [("ok",)]

    async def test_writer_pragmas(self, db_path: Path) -> None:
        """The writer has foreign keys on and the synchronous level asked for (FULL by default)."""

        def pragmas(conn: sqlite3.Connection) -> tuple[int, int]:
            fk = conn.execute("PRAGMA foreign_keys").fetchone()[0]
            sync = conn.execute("PRAGMA synchronous").fetchone()[0]
            return fk, sync

        async with open_store(db_path) as store:
            assert await store.write(pragmas) == (1, 2)
        async with open_store(db_path, synchronous="normal") as store:
            assert await store.write(pragmas) == (1, 1)

    async def test_bad_synchronous(self, db_path: Path) -> None:
        """An unknown synchronous level is refused before anything is opened."""
        with pytest.raises(ValueError, match="synchronous"):
            async with open_store(db_path, synchronous="FULL; DROP TABLE tickets"):
                pass  # pragma: no cover
        assert not await trio.Path(db_path).exists()

    async def test_schema_version_once(self, db_path: Path) -> None:
        """Opening twice keeps one schema_version row, at the current version."""
        async with open_store(db_path):
            pass
        async with open_store(db_path) as store:
            rows = await store.read(lambda c: c.execute("SELECT * FROM schema_version").fetchall())
        assert rows == [(SCHEMA_VERSION,)]

    async def test_upgrade_from_version_1(self, db_path: Path) -> None:
        """A file of version 1 (no journal tables) gets them, keeps its tickets, and is marked
        with the current version."""
        async with open_store(db_path) as store:
            await store.save_ticket(make_ticket("old"))

            def downgrade(conn: sqlite3.Connection) -> None:
                for table in ("live_chats", "live_entries", "live_agents"):
                    conn.execute(f"DROP TABLE {table}")
                for table in ("ticket_tags", "routing_traces"):  # and what later versions added
                    conn.execute(f"DROP TABLE {table}")
                conn.execute("ALTER TABLE departments DROP COLUMN options")
                conn.execute("ALTER TABLE agents DROP COLUMN skills")
                for column in ("title", "shortcut", "reading"):  # added by later versions
                    conn.execute(f"ALTER TABLE canned_messages DROP COLUMN {column}")
                conn.execute("ALTER TABLE tickets DROP COLUMN score")
                conn.execute("UPDATE schema_version SET version = 1")

            await store.write(downgrade)
        async with open_store(db_path) as store:
            rows = await store.read(lambda c: c.execute("SELECT * FROM schema_version").fetchall())
            assert rows == [(SCHEMA_VERSION,)]
            assert (store.migrated_from, store.schema_version) == (1, SCHEMA_VERSION)
            assert (await store.ticket_for_chat("old")).chat_id == "old"
            live = await store.live_state()
            assert (live.chats, live.graces) == ((), {})

    async def test_upgrade_moves_offer_ids_beside_the_records(self, db_path: Path) -> None:
        """A file of version 10 (offer ids guarded inside the records' JSON) keeps its live
        records, and a second chat with an offer id a record held before is still refused."""
        held = '{"offer":{"id":"o1"},"handoff":{"id":"h1"}}'
        async with open_store(db_path) as store:

            def downgrade(conn: sqlite3.Connection) -> None:
                conn.execute("DROP INDEX live_chats_by_offer")
                conn.execute("DROP INDEX live_chats_by_handoff")
                conn.execute("ALTER TABLE live_chats DROP COLUMN offer_id")
                conn.execute("ALTER TABLE live_chats DROP COLUMN handoff_id")
                for key in ("offer", "handoff"):
                    conn.execute(
                        f"CREATE UNIQUE INDEX live_chats_by_{key} ON live_chats (CASE WHEN"
                        f" json_valid(record) THEN json_extract(record, '$.{key}.id') END)"
                    )
                conn.execute("INSERT INTO live_chats (chat_id, record) VALUES ('a', ?)", (held,))
                conn.execute("INSERT INTO live_chats (chat_id, record) VALUES ('b', '{no json')")
                conn.execute("UPDATE schema_version SET version = 10")

            await store.write(downgrade)
        async with open_store(db_path) as store:
            assert (store.migrated_from, store.schema_version) == (10, SCHEMA_VERSION)
            for twin in (ChatRow("c", "{}", "o1"), ChatRow("c", "{}", None, "h1")):
                with pytest.raises(StoreError):
                    await store.write(
                        lambda c, r=twin: journal.write_batch(c, JournalBatch(chats=(r,)))
                    )
            await store.write(
                lambda c: journal.write_batch(c, JournalBatch(chats=(ChatRow("a", "{}"),)))
            )
            await store.write(
                lambda c: journal.write_batch(
                    c, JournalBatch(chats=(ChatRow("c", held, "o1", "h1"),))
                )
            )  # chat a let go of its offers: another chat may hold those ids now
            live = await store.live_state()
            assert [(c.chat_id, c.record) for c in live.chats] == [
                ("a", "{}"),
                ("b", "{no json"),
                ("c", held),
            ]

    async def test_upgrade_keeps_the_journal_when_its_tables_are_rebuilt(
        self, db_path: Path
    ) -> None:
        """A file of version 13 (the journal's tables with rowids) keeps every live chat, line,
        grace and seat; the offer id and client message id guards and the seat counts go on."""
        async with open_store(db_path) as store:

            def downgrade(conn: sqlite3.Connection) -> None:
                for table in ("live_chats", "live_entries", "live_agents", "live_members"):
                    conn.execute(f"DROP TABLE {table}")
                conn.execute("DROP TABLE agent_seats")
                script = """
                    CREATE TABLE live_chats (chat_id TEXT PRIMARY KEY, record TEXT NOT NULL,
                        offer_id TEXT, handoff_id TEXT);
                    CREATE TABLE live_entries (chat_id TEXT NOT NULL, seq INTEGER NOT NULL,
                        at REAL NOT NULL, kind TEXT NOT NULL, author TEXT NOT NULL,
                        text TEXT NOT NULL, client_msg_id TEXT NOT NULL,
                        PRIMARY KEY (chat_id, seq));
                    CREATE TABLE live_agents (agent_id TEXT PRIMARY KEY,
                        grace_until REAL NOT NULL);
                    CREATE TABLE live_members (agent_id TEXT NOT NULL, chat_id TEXT NOT NULL,
                        PRIMARY KEY (agent_id, chat_id));
                    CREATE TABLE agent_seats (agent_id TEXT PRIMARY KEY, seats INTEGER NOT NULL);
                    INSERT INTO live_chats VALUES ('a', '{"x":1}', 'o1', NULL);
                    INSERT INTO live_entries VALUES ('a', 1, 5.0, 'visitor', 'v', 'hi', 'm1');
                    INSERT INTO live_agents VALUES ('ann', 99.0);
                    INSERT INTO live_members VALUES ('ann', 'a');
                    INSERT INTO agent_seats VALUES ('ann', 1);
                    UPDATE schema_version SET version = 13
                    """
                for statement in script.split(";"):  # (executescript would commit first)
                    conn.execute(statement)

            await store.write(downgrade)
        async with open_store(db_path) as store:
            assert (store.migrated_from, store.schema_version) == (13, SCHEMA_VERSION)
            live = await store.live_state()
            assert [(c.chat_id, c.record) for c in live.chats] == [("a", '{"x":1}')]
            assert [(e.seq, e.text, e.client_msg_id) for e in live.chats[0].entries] == [
                (1, "hi", "m1")
            ]
            assert live.graces == {"ann": 99.0}
            with pytest.raises(StoreError):  # offer o1 is chat a's
                await store.write(
                    lambda c: journal.write_batch(
                        c, JournalBatch(chats=(ChatRow("b", "{}", "o1"),))
                    )
                )
            with pytest.raises(StoreError):  # message m1 is stored once
                await store.write(
                    lambda c: journal.append_entries(c, [("a", 2, 6.0, "visitor", "v", "hi", "m1")])
                )

            def seats_after_more(conn: sqlite3.Connection) -> list[tuple[str, int]]:
                journal.write_batch(
                    conn, JournalBatch(chats=(ChatRow("b", "{}"),), members=(("b", ("ann",)),))
                )
                return list(conn.execute("SELECT agent_id, seats FROM agent_seats"))

            assert await store.write(seats_after_more) == [("ann", 2)]

    async def test_schema_too_new(self, db_path: Path) -> None:
        """A file written by a newer helpline is refused with a clear code."""
        async with open_store(db_path) as store:
            await store.write(lambda c: c.execute("UPDATE schema_version SET version = 99"))
        with pytest.raises(StoreError) as info:
            async with open_store(db_path):
                pass  # pragma: no cover
        assert info.value.code == "schema_too_new"
        assert str(info.value) == (
            f"database schema version 99 is newer than this helpline ({SCHEMA_VERSION}); "
            "upgrade helpline"
        )


class TestTickets:
    async def test_round_trip(self, db_path: Path) -> None:
        """A saved ticket reads back equal, by id and by chat, also after reopening the file."""
        original = full_ticket()
        async with open_store(db_path) as store:
            saved = await store.save_ticket(original)
            assert saved.id is not None
            assert dataclasses.replace(original, id=saved.id) == saved
            assert saved == await store.ticket(saved.id)
            assert saved == await store.ticket_for_chat("chat-full")
        async with open_store(db_path) as store:
            again = await store.ticket(saved.id)
        assert saved == again
        assert isinstance(again.entries, tuple)
        assert isinstance(again.agents, tuple)
        assert TicketKind.TRANSCRIPT is again.kind
        assert Rating.NEUTRAL is again.rating
        assert again.entries[0].at == 0.1 + 0.2

    async def test_entries_stored_in_seq_order(self, store: SqliteStore) -> None:
        """Entries come back ordered by their sequence number."""
        first = Entry(seq=1, at=1.0, kind="message", author="visitor", text="a")
        second = Entry(seq=2, at=2.0, kind="message", author="ann", text="b")
        saved = await store.save_ticket(dataclasses.replace(make_ticket(), entries=(second, first)))
        assert saved.id is not None
        assert (first, second) == (await store.ticket(saved.id)).entries

    async def test_duplicate_chat(self, store: SqliteStore) -> None:
        """A second ticket for the same chat is refused and the first stays as it was."""
        first = await store.save_ticket(make_ticket("chat-1"))
        with pytest.raises(TicketExists) as info:
            await store.save_ticket(make_ticket("chat-1", kind=TicketKind.MISSED, owner=""))
        assert info.value.code == "ticket_exists"
        assert [first] == await store.tickets()

    async def test_not_found(self, store: SqliteStore) -> None:
        """Unknown ids and chats raise NotFound."""
        with pytest.raises(NotFound) as info:
            await store.ticket(404)
        assert info.value.code == "not_found"
        with pytest.raises(NotFound):
            await store.ticket_for_chat("nope")

    async def test_ticket_with_id_refused(self, store: SqliteStore) -> None:
        """The store assigns ids; a ticket that already has one is a caller bug."""
        with pytest.raises(ValueError, match="assigns ids"):
            await store.save_ticket(dataclasses.replace(make_ticket(), id=7))


class TestWriter:
    async def test_acknowledged_write_is_committed(self, store: SqliteStore) -> None:
        """Once write returns, an unrelated connection sees the change."""
        await store.write(insert_token("h1"))
        other = sqlite3.connect(store.path)
        try:
            rows = other.execute("SELECT token_hash FROM tokens").fetchall()
        finally:
            other.close()
        assert rows == [("h1",)]

    async def test_failing_job_rolls_back_only_itself(self, store: SqliteStore) -> None:
        """In one batch, a job that raises is undone and told; the others commit."""

        def bad(conn: sqlite3.Connection) -> None:
            insert_token("bad")(conn)
            raise ValueError("boom")

        gate = Gate()
        await gate.close_on(store)
        before = store.batch_count
        outcomes = Outcomes()
        store.submit(insert_token("a"), outcomes.callback("a"))
        store.submit(bad, outcomes.callback("bad"))
        store.submit(insert_token("c"), outcomes.callback("c"))
        gate.open()
        got = await outcomes.wait_for(3)
        assert store.batch_count - before == 2  # the gate's batch, then a, bad and c together
        assert got["a"] == "a"
        assert got["c"] == "c"
        assert isinstance(got["bad"], ValueError)
        assert {"a", "c"} == await token_hashes(store)

    async def test_write_raises_the_jobs_exception(self, store: SqliteStore) -> None:
        """write re-raises what the job raised and keeps none of its changes."""

        def bad(conn: sqlite3.Connection) -> None:
            insert_token("x")(conn)
            raise KeyError("boom")

        with pytest.raises(KeyError, match="boom"):
            await store.write(bad)
        assert set() == await token_hashes(store)

    async def test_sqlite_error_becomes_store_error(self, store: SqliteStore) -> None:
        """A raw sqlite3 error reaches the caller as StoreError, with the original as cause."""
        with pytest.raises(StoreError) as info:
            await store.write(lambda conn: conn.execute("INSERT INTO nowhere VALUES (1)"))
        assert info.value.code == "store_failed"
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)

    async def test_group_commit_batches(self, store: SqliteStore) -> None:
        """Writes queued while the writer is busy all commit together, in one transaction."""
        gate = Gate()
        await gate.close_on(store)
        before = store.batch_count
        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(store.write, insert_token(f"t{i}"))
            await trio.testing.wait_all_tasks_blocked()
            gate.open()
        assert store.batch_count - before == 2
        assert {f"t{i}" for i in range(100)} == await token_hashes(store)

    async def test_batch_size_is_bounded(self, db_path: Path) -> None:
        """A batch holds at most batch_max jobs."""
        async with open_store(db_path, batch_max=10) as store:
            gate = Gate()
            await gate.close_on(store)
            before = store.batch_count
            outcomes = Outcomes()
            for i in range(25):
                store.submit(insert_token(f"t{i}"), outcomes.callback(f"t{i}"))
            gate.open()
            await outcomes.wait_for(25)
            assert store.batch_count - before == 1 + 3
            assert len(await token_hashes(store)) == 25

    async def test_failed_commit_fails_the_batch(self, store: SqliteStore) -> None:
        """If COMMIT fails, no job of the batch reports success and nothing of it is stored."""

        def orphan(conn: sqlite3.Connection) -> str:
            # A deferred foreign key is checked at COMMIT, not when the row goes in.
            conn.execute("PRAGMA defer_foreign_keys = ON")
            conn.execute(
                "INSERT INTO ticket_agents (ticket_id, position, agent) VALUES (9, 0, 'x')"
            )
            return "inserted"

        def bad(conn: sqlite3.Connection) -> None:
            raise ValueError("own error")

        gate = Gate()
        await gate.close_on(store)
        outcomes = Outcomes()
        store.submit(insert_token("a"), outcomes.callback("a"))
        store.submit(orphan, outcomes.callback("orphan"))
        store.submit(bad, outcomes.callback("bad"))
        gate.open()
        got = await outcomes.wait_for(3)
        for label in ("a", "orphan"):
            error = got[label]
            assert isinstance(error, StoreError)
            assert isinstance(error.__cause__, sqlite3.IntegrityError)
        assert isinstance(got["bad"], ValueError)
        assert set() == await token_hashes(store)
        assert await store.write(lambda conn: "inserted") == "inserted"  # the writer goes on

    async def test_submit_when_busy(self, db_path: Path) -> None:
        """Past max_pending, submit refuses the job through on_done instead of queueing it."""
        async with open_store(db_path, max_pending=2) as store:
            gate = Gate()
            await gate.close_on(store)
            outcomes = Outcomes()
            store.submit(insert_token("a"), outcomes.callback("a"))
            store.submit(insert_token("b"), outcomes.callback("b"))
            assert outcomes.values == []
            got = await outcomes.wait_for(1)
            assert isinstance(got["b"], StoreBusy)
            assert got["b"].code == "store_busy"
            gate.open()
            got = await outcomes.wait_for(2)
            assert got["a"] == "a"
            assert {"a"} == await token_hashes(store)

    async def test_callback_error_does_not_stop_delivery(self, store: SqliteStore) -> None:
        """A callback that raises is logged; the other callbacks of the batch still run."""

        def broken(_: object) -> None:
            raise RuntimeError("callback bug")

        gate = Gate()
        await gate.close_on(store)
        outcomes = Outcomes()
        store.submit(insert_token("a"), broken)
        store.submit(insert_token("b"), outcomes.callback("b"))
        gate.open()
        assert (await outcomes.wait_for(1))["b"] == "b"
        assert {"a", "b"} == await token_hashes(store)

    async def test_close_finishes_pending_writes(self, db_path: Path) -> None:
        """Closing the store lets queued writes commit and delivers their outcomes first."""
        outcomes = Outcomes()
        async with open_store(db_path) as store:
            for i in range(50):
                store.submit(insert_token(f"t{i}"), outcomes.callback(f"t{i}"))
        assert {f"t{i}": f"t{i}" for i in range(50)} == dict(outcomes.values)
        async with open_store(db_path) as store:
            assert len(await token_hashes(store)) == 50

    async def test_cancelled_write_still_commits(self, store: SqliteStore) -> None:
        """A write whose caller is cancelled after handing it over still runs and commits."""
        gate = Gate()
        await gate.close_on(store)
        with trio.CancelScope() as scope:
            scope.deadline = trio.current_time()  # cancelled at its first checkpoint
            await store.write(insert_token("a"))
        assert scope.cancelled_caught
        gate.open()
        await store.write(lambda conn: None)  # runs after the cancelled one
        assert {"a"} == await token_hashes(store)

    async def test_closed_store_refuses(self, db_path: Path) -> None:
        """After close, write and read raise StoreClosed and submit reports it."""
        async with open_store(db_path) as store:
            pass
        with pytest.raises(StoreClosed):
            await store.write(insert_token("a"))
        with pytest.raises(StoreClosed):
            await store.read(lambda conn: None)
        outcomes = Outcomes()
        store.submit(insert_token("a"), outcomes.callback("a"))
        assert outcomes.values == []  # reported on a later tick, not from inside submit
        assert isinstance((await outcomes.wait_for(1))["a"], StoreClosed)


class TestClockHold:
    async def test_store_work_takes_no_virtual_time(
        self, autojump_clock: trio.testing.MockClock, db_path: Path
    ) -> None:
        """Under the autojump clock (inside hold_clock_for_store) a write or a read lets no
        virtual time pass, however long its thread takes, even with a timer due."""

        def slow(conn: sqlite3.Connection) -> str:
            time.sleep(0.05)
            return insert_token("slow")(conn)

        async with open_store(db_path) as store, trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 1_000)
            before = trio.current_time()
            await store.write(slow)
            await store.read(lambda conn: time.sleep(0.05))
            assert before == trio.current_time()
            nursery.cancel_scope.cancel()


class TestReads:
    async def test_reader_cannot_write(self, store: SqliteStore) -> None:
        """Reader connections are query-only."""
        with pytest.raises(StoreError) as info:
            await store.read(insert_token("x"))
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert set() == await token_hashes(store)

    async def test_concurrent_reads(self, store: SqliteStore) -> None:
        """Many reads at once all see the committed data."""
        await store.write(insert_token("a"))
        results: list[set[str]] = []

        async def read_one() -> None:
            results.append(await token_hashes(store))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(read_one)
        assert [{"a"}] * 20 == results

    @pytest.mark.parametrize(
        ("query", "index"),
        [
            ("SELECT ticket_id FROM ticket_agents WHERE agent = 'x'", "ticket_agents_by_agent"),
            ("SELECT id FROM tickets WHERE visitor_email_lower = 'x'", "tickets_by_email"),
            ("SELECT id FROM tickets ORDER BY ended_at DESC, id DESC LIMIT 5", "tickets_by_end"),
        ],
    )
    async def test_lookups_use_indexes(self, store: SqliteStore, query: str, index: str) -> None:
        """Agent, email and newest-first lookups are index lookups, not table scans."""
        plan = await store.read(lambda c: c.execute(f"EXPLAIN QUERY PLAN {query}").fetchall())
        assert any(index in row[-1] for row in plan), plan


async def seed(store: SqliteStore) -> dict[str, Ticket]:
    """Five tickets, ended at t=100..500, saved out of order."""
    specs = [
        make_ticket("c3", department="support", agents=("bob",), owner="bob", ended_at=300.0),
        make_ticket("c1", agents=("ann", "bob"), owner="bob", ended_at=100.0),
        make_ticket("c5", kind=TicketKind.MISSED, agents=(), owner="", ended_at=500.0),
        make_ticket(
            "c2", kind=TicketKind.MISSED, agents=(), owner="", email="x@y.z", visitor_id="v-2",
            ended_at=200.0,
        ),
        make_ticket("c4", department="support", agents=("carl",), owner="carl", ended_at=400.0),
    ]  # fmt: skip
    saved = [await store.save_ticket(t) for t in specs]
    return {t.chat_id: t for t in saved}


def chats(tickets: list[Ticket]) -> list[str]:
    return [t.chat_id for t in tickets]


class TestQueries:
    async def test_newest_first(self, store: SqliteStore) -> None:
        """Without filters, tickets come newest first."""
        await seed(store)
        assert chats(await store.tickets()) == ["c5", "c4", "c3", "c2", "c1"]

    async def test_same_end_time_orders_by_id(self, store: SqliteStore) -> None:
        """Tickets that ended at the same moment come newest-saved first."""
        for chat in ("a", "b", "c"):
            await store.save_ticket(make_ticket(chat, ended_at=50.0))
        assert chats(await store.tickets()) == ["c", "b", "a"]

    async def test_filters(self, store: SqliteStore) -> None:
        """Each filter narrows the list; filters combine."""
        await seed(store)
        assert chats(await store.tickets(kind=TicketKind.MISSED)) == ["c5", "c2"]
        assert chats(await store.tickets(department="support")) == ["c4", "c3"]
        assert chats(await store.tickets(agent="bob")) == ["c3", "c1"]
        assert chats(await store.tickets(agent="ann")) == ["c1"]
        assert chats(await store.tickets(visitor_email="X@Y.Z")) == ["c2"]
        assert chats(await store.tickets(visitor_id="v-2")) == ["c2"]
        assert chats(await store.tickets(agent="bob", department="support")) == ["c3"]
        assert await store.tickets(agent="nobody") == []

    async def test_period(self, store: SqliteStore) -> None:
        """since is inclusive, until exclusive, both on ended_at."""
        await seed(store)
        assert chats(await store.tickets(since=200.0, until=500.0)) == ["c4", "c3", "c2"]
        assert chats(await store.tickets(since=500.0)) == ["c5"]
        assert chats(await store.tickets(until=200.0)) == ["c1"]

    async def test_paging(self, store: SqliteStore) -> None:
        """limit and offset cut pages from the newest-first list."""
        await seed(store)
        assert chats(await store.tickets(limit=2)) == ["c5", "c4"]
        assert chats(await store.tickets(limit=2, offset=2)) == ["c3", "c2"]
        assert chats(await store.tickets(limit=2, offset=4)) == ["c1"]
        assert await store.tickets(offset=5) == []
        assert await store.tickets(offset=1_000) == []
        assert await store.tickets(limit=0) == []

    async def test_bad_page(self, store: SqliteStore) -> None:
        """A negative offset, a negative limit or one above MAX_PAGE is refused."""
        with pytest.raises(ValueError, match="offset"):
            await store.tickets(offset=-1)
        with pytest.raises(ValueError, match="limit"):
            await store.tickets(limit=-1)
        with pytest.raises(ValueError, match="limit"):
            await store.tickets(limit=MAX_PAGE + 1)

    async def test_listed_tickets_are_complete(self, store: SqliteStore) -> None:
        """Tickets in a list carry their agents, in order, like a single read."""
        saved = await seed(store)
        assert [saved[c] for c in ("c5", "c4", "c3", "c2", "c1")] == await store.tickets()

    async def test_mark_handled(self, store: SqliteStore) -> None:
        """mark_handled sets the flag, is idempotent, and feeds the handled filter."""
        saved = await seed(store)
        ticket_id = saved["c2"].id
        assert ticket_id is not None
        handled = await store.mark_handled(ticket_id)
        assert dataclasses.replace(saved["c2"], handled=True) == handled
        assert handled == await store.mark_handled(ticket_id)
        assert handled == await store.ticket(ticket_id)
        assert chats(await store.tickets(handled=True)) == ["c2"]
        assert chats(await store.tickets(kind=TicketKind.MISSED, handled=False)) == ["c5"]
        with pytest.raises(NotFound):
            await store.mark_handled(999)


class TestRatings:
    async def test_rate_once(self, store: SqliteStore) -> None:
        """A chat is rated once; a second rating is refused and changes nothing."""
        await store.save_ticket(make_ticket("c1"))
        rated = await store.rate("c1", Rating.GOOD, "thanks!")
        assert (rated.rating, rated.rating_comment) == (Rating.GOOD, "thanks!")
        with pytest.raises(AlreadyRated) as info:
            await store.rate("c1", Rating.BAD, "changed my mind")
        assert info.value.code == "already_rated"
        assert rated == await store.ticket_for_chat("c1")

    async def test_concurrent_ratings(self, store: SqliteStore) -> None:
        """Of many ratings sent at once, exactly one wins."""
        await store.save_ticket(make_ticket("c1"))
        won: list[Rating] = []
        refused: list[Rating] = []

        async def rate(rating: Rating) -> None:
            try:
                await store.rate("c1", rating)
            except AlreadyRated:
                refused.append(rating)
            else:
                won.append(rating)

        async with trio.open_nursery() as nursery:
            for rating in [*Rating] * 5:
                nursery.start_soon(rate, rating)
        assert len(won) == 1
        assert len(refused) == 14
        assert won[0] == (await store.ticket_for_chat("c1")).rating

    async def test_rate_unknown_chat(self, store: SqliteStore) -> None:
        """Rating a chat without a ticket raises NotFound."""
        with pytest.raises(NotFound):
            await store.rate("nope", Rating.GOOD)

    async def test_rating_report(self, store: SqliteStore) -> None:
        """Counts per owner and per department, within the period, zero-filled, with how many
        ratings carried a score and the sum of those scores."""
        await seed(store)
        await store.rate("c1", Rating.GOOD, score=5)  # bob, sales, t=100
        await store.rate("c3", Rating.BAD, score=2)  # bob, support, t=300
        await store.rate("c4", Rating.GOOD)  # carl, support, t=400
        await store.rate("c5", Rating.NEUTRAL, score=3)  # no owner, sales, t=500

        def row(good: int, neutral: int, bad: int, scored: int, score_sum: int) -> dict[str, int]:
            return {
                "good": good,
                "neutral": neutral,
                "bad": bad,
                "scored": scored,
                "score_sum": score_sum,
            }

        report = await store.rating_report(since=None, until=None)
        assert report == {
            "agents": {"bob": row(1, 0, 1, 2, 7), "carl": row(1, 0, 0, 0, 0)},
            "departments": {"sales": row(1, 1, 0, 2, 8), "support": row(1, 0, 1, 1, 2)},
        }
        report = await store.rating_report(since=300.0, until=500.0)
        assert report == {
            "agents": {"bob": row(0, 0, 1, 1, 2), "carl": row(1, 0, 0, 0, 0)},
            "departments": {"support": row(1, 0, 1, 1, 2)},
        }

    async def test_score_is_kept_on_the_ticket(self, store: SqliteStore) -> None:
        """A score given with the rating reads back on the ticket; none reads back as None."""
        await seed(store)
        assert (await store.rate("c1", Rating.GOOD, "Lovely", 5)).score == 5
        assert (await store.ticket_for_chat("c1")).score == 5
        assert (await store.rate("c3", Rating.BAD)).score is None

    async def test_empty_rating_report(self, store: SqliteStore) -> None:
        """With no ratings, the report has no rows."""
        await seed(store)
        assert await store.rating_report(since=None, until=None) == {
            "agents": {},
            "departments": {},
        }


class TestConfiguration:
    async def test_departments(self, db_path: Path) -> None:
        """Departments are upserted, listed by id, and survive a reopen."""
        sales = Department(id="sales", name="Sales")
        support = Department(
            id="support",
            name="Support",
            chat_enabled=False,
            routing=RoutingMode.ASSIGNED,
            offer_window=12.5,
            queue_timeout=90.0,
            queue_limit=7,
        )
        async with open_store(db_path) as store:
            await store.save_department(support)
            await store.save_department(sales)
            renamed = dataclasses.replace(sales, name="Sales EU")
            await store.save_department(renamed)
            assert [renamed, support] == await store.departments()
        async with open_store(db_path) as store:
            assert [renamed, support] == await store.departments()

    async def test_agents(self, db_path: Path) -> None:
        """Agents with their departments (in order) are upserted, removed, and survive a reopen."""
        ann = Agent(id="ann", name="Ann", departments=("support", "sales"), capacity=5)
        bob = Agent(id="bob", name="Bob", departments=())
        async with open_store(db_path) as store:
            await store.save_agent(bob)
            await store.save_agent(ann)
            moved = dataclasses.replace(ann, departments=("billing",), capacity=2)
            await store.save_agent(moved)
            assert [moved, bob] == await store.agents()
        async with open_store(db_path) as store:
            assert [moved, bob] == await store.agents()
            await store.remove_agent("ann")
            assert [bob] == await store.agents()
            left = await store.read(
                lambda c: c.execute("SELECT count(*) FROM agent_departments").fetchone()[0]
            )
            assert left == 0
            with pytest.raises(NotFound):
                await store.remove_agent("ann")


class TestTokens:
    async def test_tokens(self, store: SqliteStore) -> None:
        """Token hashes are looked up, counted by role and revoked by subject."""
        await store.save_token(token_hash="h1", role="agent", subject="ann", created_at=1.0)
        await store.save_token(token_hash="h2", role="agent", subject="ann", created_at=2.0)
        await store.save_token(token_hash="h3", role="admin", subject="root", created_at=3.0)
        assert await store.token("h1") == ("agent", "ann")
        assert await store.token("unknown") is None
        assert await store.count_tokens(role="agent") == 2
        assert await store.count_tokens(role="admin") == 1
        assert await store.revoke_tokens(subject="ann") == 2
        assert await store.revoke_tokens(subject="ann") == 0
        assert await store.token("h1") is None
        assert await store.count_tokens(role="agent") == 0
        assert await store.token("h3") == ("admin", "root")

    async def test_duplicate_token(self, store: SqliteStore) -> None:
        """Storing the same hash twice is refused; the first stays."""
        await store.save_token(token_hash="h1", role="agent", subject="ann", created_at=1.0)
        with pytest.raises(StoreError) as info:
            await store.save_token(token_hash="h1", role="admin", subject="eve", created_at=2.0)
        assert info.value.code == "token_exists"
        assert await store.token("h1") == ("agent", "ann")
