"""The store contract (engine.store.contract), run against every implementation.

Each test gets a store opened from `store_url`: a SQLite file, and a fresh PostgreSQL schema
(skipped without HELPLINE_TEST_POSTGRES); a test that needs no second opening takes `store`,
which is also an in-memory SQLite store and a SQLite file without threads. What one store
promises, the others keep.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from engine import (
    Agent,
    AgentStatus,
    CannedDesk,
    Department,
    EndReason,
    Entry,
    Handoff,
    Rating,
    RoutingMode,
    Store,
    StoreError,
    Ticket,
    TicketKind,
    Visitor,
    open_store,
)
from engine.model.audit import AuditEntry
from engine.store.contract import Connection
from engine.store.journal import ChatRow, JournalBatch
from engine.store.migrate import latest
from engine.store.tickets import MAX_PAGE, AlreadyRated, NotFound, TicketExists
from engine.store.url import parse_store_url

from .postgres import fresh_schema


def make_ticket(
    chat_id: str = "chat-1",
    *,
    kind: TicketKind = TicketKind.TRANSCRIPT,
    department: str = "sales",
    agents: tuple[str, ...] = ("ann",),
    owner: str = "ann",
    ended_at: float = 1_000.0,
) -> Ticket:
    return Ticket(
        chat_id=chat_id,
        kind=kind,
        department=department,
        question="Where is my parcel?",
        visitor=Visitor(name="Vic", email="Vic@Example.com", visitor_id="v-1"),
        entries=(Entry(seq=1, at=ended_at - 10, kind="message", author="visitor", text="hi"),),
        agents=agents,
        started_at=ended_at - 60,
        ended_at=ended_at,
        end_reason=EndReason.AGENT_ENDED,
        owner=owner,
    )


FULL = Ticket(
    chat_id="chat-full",
    kind=TicketKind.TRANSCRIPT,
    department="support",
    question="Ça marche ? 100% 💬 '?'",
    visitor=Visitor(
        name="Zoë",
        email="Zoe@Example.COM",
        browser="Firefox 128",
        os="Linux",
        location="Zürich",
        visitor_id="visitor-42",
    ),
    entries=(
        Entry(seq=1, at=0.1 + 0.2, kind="message", author="visitor", text="bonjour ?"),
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
            note="billing",
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


@pytest.fixture(params=["sqlite", "postgresql", "memory", "sqlite-unthreaded"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each implementation: a SQLite file, a fresh PostgreSQL schema, an in-memory SQLite store
    and a SQLite file opened with ``threads=False`` (both without threads: engine.store.sqlite,
    Rule 6)."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            url = stack.enter_context(fresh_schema())
        elif request.param == "memory":
            url = ":memory:"
        else:
            url = f"sqlite://{tmp_path / 'helpline.db'}"
        async with open_store(url, threads=request.param != "sqlite-unthreaded") as s:
            yield s


def chats(tickets: list[Ticket]) -> list[str]:
    return [t.chat_id for t in tickets]


def entry(seq: int, text: str = "", client_msg_id: str = "") -> Entry:
    return Entry(
        seq=seq, at=float(seq), kind="message", author="v", text=text, client_msg_id=client_msg_id
    )


async def submitted(store: Store, batch: JournalBatch) -> object:
    """Submit a journal batch and wait for its callback's outcome."""
    done = trio.Event()
    box: list[object] = []

    def on_done(outcome: object) -> None:
        box.append(outcome)
        done.set()

    store.submit_journal(batch, on_done)
    assert box == [], "never called back from inside submit_journal"
    await done.wait()
    return box[0]


class TestSchema:
    async def test_migrated_at_open(self, store_url: str) -> None:
        """A new database gets every migration at open; opening again applies none."""
        backend = parse_store_url(store_url).kind
        async with open_store(store_url) as store:
            assert (store.migrated_from, store.schema_version) == (0, latest(backend))
        async with open_store(store_url) as store:
            assert (store.migrated_from, store.schema_version) == (latest(backend),) * 2
            rows = await store.read(
                lambda c: [tuple(r) for r in c.execute("SELECT version FROM schema_version")]
            )
        assert rows == [(latest(backend),)]

    async def test_newer_schema_refused(self, store_url: str) -> None:
        """A database written by a newer helpline is refused, saying what to do."""
        backend = parse_store_url(store_url).kind
        async with open_store(store_url) as store:
            await store.write(lambda c: c.execute("UPDATE schema_version SET version = 99"))
        with pytest.raises(StoreError) as info:
            async with open_store(store_url):
                pass  # pragma: no cover
        assert info.value.code == "schema_too_new"
        assert str(info.value) == (
            f"database schema version 99 is newer than this helpline ({latest(backend)}); "
            "upgrade helpline"
        )


class TestBeforeCommit:
    async def test_a_refused_transaction_commits_nothing(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The writer's ``before_commit`` runs inside each batch's transaction after its jobs; if
        it raises, nothing of the transaction is committed and its jobs fail because of it."""

        class Refused(Exception):
            pass

        seen: list[int] = []

        def refuse(conn: Connection) -> None:
            (n,) = conn.execute("SELECT count(*) FROM tickets").fetchone()
            seen.append(n)
            raise Refused("not now")

        monkeypatch.setattr(store, "before_commit", refuse)
        with pytest.raises(StoreError) as info:
            await store.save_ticket(make_ticket("c1"))
        assert isinstance(info.value.__cause__, Refused)
        assert seen == [1]  # the job's insert was visible to the check
        monkeypatch.undo()
        assert await store.tickets() == []
        await store.save_ticket(make_ticket("c1"))  # the writer goes on
        assert chats(await store.tickets()) == ["c1"]


class TestTickets:
    async def test_round_trip(self, store_url: str) -> None:
        """A saved ticket reads back equal, by id and by chat, also after reopening."""
        async with open_store(store_url) as store:
            saved = await store.save_ticket(FULL)
            assert saved.id is not None
            assert dataclasses.replace(FULL, id=saved.id) == saved
            assert saved == await store.ticket(saved.id)
            assert saved == await store.ticket_for_chat("chat-full")
        async with open_store(store_url) as store:
            assert saved == await store.ticket(saved.id)

    async def test_one_ticket_per_chat(self, store: Store) -> None:
        """A second ticket for a chat is refused, and the first stays as it was."""
        first = await store.save_ticket(make_ticket("c1"))
        with pytest.raises(TicketExists) as info:
            await store.save_ticket(make_ticket("c1", kind=TicketKind.MISSED, owner=""))
        assert info.value.code == "ticket_exists"
        assert [first] == await store.tickets()

    async def test_schema_refuses_a_second_ticket(self, store: Store) -> None:
        """Even SQL that goes around the store cannot write a second ticket for a chat."""
        await store.save_ticket(make_ticket("c1"))

        def again(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO tickets (chat_id, kind, department, question, visitor_name,"
                " visitor_email, visitor_email_lower, visitor_browser, visitor_os,"
                " visitor_location, visitor_id, entries, handoffs, started_at, ended_at,"
                " end_reason, rating_comment, handled, owner) VALUES ('c1', 'missed', 'sales',"
                " '', '', '', '', '', '', '', '', '[]', '[]', 1, 2, 'visitor_left', '', 0, '')"
            )

        with pytest.raises(StoreError) as info:
            await store.write(again)
        assert info.value.code == "store_failed"
        assert chats(await store.tickets()) == ["c1"]

    async def test_concurrent_tickets_for_one_chat(self, store: Store) -> None:
        """Of many tickets for one chat written at once, exactly one is stored."""
        outcomes: list[str] = []

        async def save(i: int) -> None:
            try:
                await store.save_ticket(make_ticket("c1", owner=f"agent-{i}"))
            except TicketExists:
                outcomes.append("refused")
            else:
                outcomes.append("stored")

        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(save, i)
        assert sorted(outcomes) == ["refused"] * 9 + ["stored"]
        assert len(await store.tickets()) == 1

    async def test_saving_a_ticket_forgets_the_live_chat(self, store: Store) -> None:
        """The ticket and the end of the chat's journal are one transaction."""
        await store.append_entries("c1", [entry(1, "hi")])
        assert [c.chat_id for c in (await store.live_state()).chats] == ["c1"]
        await store.save_ticket(make_ticket("c1"))
        assert (await store.live_state()).chats == ()

    async def test_not_found_and_bad_arguments(self, store: Store) -> None:
        """Unknown ids raise NotFound; a ticket with an id, or a bad page, is a caller bug."""
        with pytest.raises(NotFound) as info:
            await store.ticket(404)
        assert info.value.code == "not_found"
        with pytest.raises(NotFound):
            await store.ticket_for_chat("nope")
        with pytest.raises(NotFound):
            await store.mark_handled(404)
        with pytest.raises(ValueError, match="assigns ids"):
            await store.save_ticket(dataclasses.replace(make_ticket(), id=7))
        with pytest.raises(ValueError, match="limit"):
            await store.tickets(limit=MAX_PAGE + 1)
        with pytest.raises(ValueError, match="offset"):
            await store.tickets(offset=-1)

    async def test_queries(self, store: Store) -> None:
        """Filters combine; pages run newest first; the period is since <= ended_at < until."""
        await store.save_ticket(make_ticket("c1", ended_at=100, agents=("bob",), owner="bob"))
        await store.save_ticket(make_ticket("c2", kind=TicketKind.MISSED, ended_at=200, owner=""))
        await store.save_ticket(make_ticket("c3", department="support", ended_at=300))
        await store.save_ticket(make_ticket("c4", ended_at=300, agents=("ann", "bob")))
        assert chats(await store.tickets()) == ["c4", "c3", "c2", "c1"]
        assert chats(await store.tickets(limit=2, offset=1)) == ["c3", "c2"]
        assert chats(await store.tickets(kind=TicketKind.MISSED)) == ["c2"]
        assert chats(await store.tickets(department="support")) == ["c3"]
        assert chats(await store.tickets(agent="bob")) == ["c4", "c1"]
        assert chats(await store.tickets(visitor_email="vic@EXAMPLE.com", limit=1)) == ["c4"]
        assert chats(await store.tickets(visitor_id="v-1", since=200, until=300)) == ["c2"]
        [c4] = await store.tickets(agent="bob", limit=1)
        assert c4.agents == ("ann", "bob")
        assert c4.id is not None
        handled = await store.mark_handled(c4.id)
        assert handled == dataclasses.replace(c4, handled=True)
        assert handled == await store.mark_handled(c4.id)
        assert chats(await store.tickets(handled=True)) == ["c4"]


class TestRatings:
    async def test_rated_once(self, store: Store) -> None:
        """A chat is rated once; of ratings sent together exactly one wins."""
        await store.save_ticket(make_ticket("c1"))
        won: list[Rating] = []
        refused: list[str] = []

        async def rate(rating: Rating) -> None:
            try:
                won.append((await store.rate("c1", rating, "thanks")).rating or rating)
            except AlreadyRated as exc:
                refused.append(exc.code)

        async with trio.open_nursery() as nursery:
            for rating in [*Rating] * 4:
                nursery.start_soon(rate, rating)
        assert (len(won), refused) == (1, ["already_rated"] * 11)
        stored = await store.ticket_for_chat("c1")
        assert (stored.rating, stored.rating_comment) == (won[0], "thanks")
        with pytest.raises(NotFound):
            await store.rate("nope", Rating.GOOD)

    async def test_report(self, store: Store) -> None:
        """Counts per owner and department within the period, zero-filled, with the number of
        scored ratings and the sum of their scores."""
        await store.save_ticket(make_ticket("c1", ended_at=100, owner="bob"))
        await store.save_ticket(make_ticket("c2", ended_at=200, owner="", department="support"))
        await store.save_ticket(make_ticket("c3", ended_at=300))
        assert 5 == (await store.rate("c1", Rating.GOOD, score=5)).score
        await store.rate("c2", Rating.BAD, score=1)
        await store.rate("c3", Rating.GOOD)
        assert 1 == (await store.ticket_for_chat("c2")).score
        assert None is (await store.ticket_for_chat("c3")).score

        def row(good: int, bad: int, scored: int = 0, score_sum: int = 0) -> dict[str, int]:
            return {
                "good": good,
                "neutral": 0,
                "bad": bad,
                "scored": scored,
                "score_sum": score_sum,
            }

        assert await store.rating_report() == {
            "agents": {"ann": row(1, 0), "bob": row(1, 0, 1, 5)},
            "departments": {"sales": row(2, 0, 1, 5), "support": row(0, 1, 1, 1)},
        }
        assert await store.rating_report(since=150, until=300) == {
            "agents": {},
            "departments": {"support": row(0, 1, 1, 1)},
        }


class TestConfiguration:
    async def test_departments_and_agents(self, store_url: str) -> None:
        """Departments and agents (departments in order) are upserted and survive a reopen."""
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
        ann = Agent(id="ann", name="Ann", departments=("support", "sales"), capacity=5)
        bob = Agent(id="bob", name="Bob", departments=(), status=AgentStatus.ONLINE, ringtone=False)
        async with open_store(store_url) as store:
            for d in (support, sales, dataclasses.replace(sales, name="Sales EU")):
                await store.save_department(d)
            for a in (bob, ann, dataclasses.replace(ann, departments=("sales",), capacity=2)):
                await store.save_agent(a)
        async with open_store(store_url) as store:
            assert [dataclasses.replace(sales, name="Sales EU"), support] == (
                await store.departments()
            )
            moved = dataclasses.replace(ann, departments=("sales",), capacity=2)
            assert [moved, bob] == await store.agents()
            await store.remove_agent("ann")
            assert [bob] == await store.agents()
            with pytest.raises(NotFound):
                await store.remove_agent("ann")

    async def test_tokens(self, store: Store) -> None:
        """Token hashes are looked up, counted by role, revoked by subject, and unique."""
        await store.save_token(token_hash="h1", role="agent", subject="ann", created_at=1.0)
        await store.save_token(token_hash="h2", role="agent", subject="ann", created_at=2.0)
        await store.save_token(token_hash="h3", role="admin", subject="root", created_at=3.0)
        with pytest.raises(StoreError) as info:
            await store.save_token(token_hash="h1", role="admin", subject="eve", created_at=4.0)
        assert info.value.code == "token_exists"
        assert await store.token("h1") == ("agent", "ann")
        assert await store.token("unknown") is None
        assert (await store.count_tokens(role="agent"), await store.count_tokens(role="admin")) == (
            2,
            1,
        )
        assert await store.revoke_tokens(subject="ann") == 2
        assert await store.revoke_tokens(subject="ann") == 0
        assert await store.token("h3") == ("admin", "root")

    async def test_canned_messages(self, store_url: str) -> None:
        """The canned desk keeps its categories, messages and use counts in the store."""
        async with open_store(store_url) as store:
            desk = await CannedDesk.open(store, lambda: 1_700_000_000.5)
            await desk.add_category("Greetings", category_id="greet")
            hello = await desk.add_message("Hello {visitor.name}!", category="greet")
            await desk.edit_message(hello.id, text="Hi {visitor.name}, 100% here?")
            assert await desk.pick(hello.id, agent_id="ann", values={"visitor.name": "Vic"}) == (
                "Hi Vic, 100% here?"
            )
        async with open_store(store_url) as store:
            desk = await CannedDesk.open(store, lambda: 0.0)
            [message] = desk.messages()
            assert (message.text, message.created_at) == (
                "Hi {visitor.name}, 100% here?",
                1_700_000_000.5,
            )
            assert desk.book.use_count(hello.id, "ann") == 1
            await desk.delete_category("greet", messages="delete")
            assert desk.messages() == []


class TestSupervisorTokens:
    async def test_departments_of_a_token(self, store: Store) -> None:
        """A supervisor's token keeps its departments; revoking it deletes them with it."""
        await store.save_token(
            token_hash="s1",
            role="supervisor",
            subject="supervisor:sue",
            created_at=1.0,
            departments=("support", "sales", "sales"),
        )
        await store.save_token(token_hash="a1", role="agent", subject="agent:ann", created_at=1.0)
        assert await store.token("s1") == ("supervisor", "supervisor:sue")
        assert await store.token_departments("s1") == ("sales", "support")
        assert await store.token_departments("a1") == ()
        assert await store.token_departments("unknown") == ()
        assert await store.revoke_tokens(subject="supervisor:sue") == 1
        assert await store.token_departments("s1") == ()


class TestAudit:
    async def test_record_and_list(self, store: Store) -> None:
        """Entries come back newest first with their before and after, filtered as asked."""
        first = await store.record_audit(
            AuditEntry(
                at=10.0,
                actor="cli",
                action="department_added",
                target="sales",
                after={"id": "sales", "name": "Sales ✓", "queue_limit": 3},
            )
        )
        second = await store.record_audit(
            AuditEntry(
                at=20.0,
                actor="admin:root",
                action="department_changed",
                target="sales",
                before={"name": "Sales ✓"},
                after={"name": "Sales"},
            )
        )
        third = await store.record_audit(
            AuditEntry(at=30.0, actor="supervisor:sue", action="whisper", target="c-1")
        )
        ids = [entry.id or 0 for entry in (first, second, third)]
        assert ids == sorted(ids)
        assert 0 < ids[0]
        assert [third, second, first] == await store.audit()
        assert first.after == {"id": "sales", "name": "Sales ✓", "queue_limit": 3}
        assert [second] == await store.audit(actor="admin:root")
        assert [second, first] == await store.audit(action="department_changed") + [
            *await store.audit(action="department_added")
        ]
        assert [third, second] == await store.audit(since=20.0)
        assert [second, first] == await store.audit(until=30.0)
        assert [third] == await store.audit(limit=1)
        assert [second] == await store.audit(limit=1, offset=1)
        assert [] == await store.audit(actor="nobody")

    async def test_refusals(self, store: Store) -> None:
        """An entry with an id, a page out of bounds, or a state that is not JSON is refused."""
        with pytest.raises(ValueError, match="assigns"):
            await store.record_audit(AuditEntry(id=3, at=1.0, actor="cli", action="x", target=""))
        with pytest.raises(ValueError, match="limit"):
            await store.audit(limit=1001)
        with pytest.raises(TypeError):
            await store.record_audit(
                AuditEntry(at=1.0, actor="cli", action="x", target="", after={"bad": object()})
            )
        assert [] == await store.audit()


class TestJournal:
    async def test_lines_replay_in_order(self, store_url: str) -> None:
        """Lines come back per chat in number order, after a reopen; a rewrite replaces a line."""
        async with open_store(store_url) as store:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.append_entries, "b", [entry(2, "b2"), entry(1, "b1")])
                nursery.start_soon(store.append_entries, "a", [entry(1, "a1")])
            await store.append_entries("a", [entry(3, "a3"), entry(2, "a2")])
            await store.append_entries("a", [entry(3, "a3 again")])
        async with open_store(store_url) as store:
            live = await store.live_state()
        assert [(c.chat_id, c.record, [e.text for e in c.entries]) for c in live.chats] == [
            ("a", None, ["a1", "a2", "a3 again"]),
            ("b", None, ["b1", "b2"]),
        ]

    async def test_client_message_id_once_per_chat(self, store: Store) -> None:
        """A client message id stored under one number is refused under another."""
        await store.append_entries("a", [entry(1, "x", client_msg_id="m1")])
        await store.append_entries("b", [entry(1, "x", client_msg_id="m1")])  # another chat
        with pytest.raises(StoreError):
            await store.append_entries("a", [entry(2, "x", client_msg_id="m1")])
        assert [len(c.entries) for c in (await store.live_state()).chats] == [1, 1]

    async def test_router_batches(self, store: Store) -> None:
        """A batch writes records, graces and presence; a ticketed chat gets no record back."""
        await store.save_agent(Agent(id="ann", name="Ann", departments=()))
        await store.save_ticket(make_ticket("done"))
        batch = JournalBatch(
            chats=(ChatRow("a", '{"x":1}'), ChatRow("done", '{"x":2}')),
            graces=(("ann", 123.5), ("bob", 7.0)),
            presence=(("ann", AgentStatus.ONLINE, False), ("gone", AgentStatus.ONLINE, True)),
            tickets=(make_ticket("done"), make_ticket("failed", kind=TicketKind.FAILED)),
        )
        assert await submitted(store, batch) is None
        live = await store.live_state()
        assert [(c.chat_id, c.record) for c in live.chats] == [("a", '{"x":1}')]
        assert live.graces == {"ann": 123.5, "bob": 7.0}
        [ann] = await store.agents()
        assert (ann.status, ann.ringtone) == (AgentStatus.ONLINE, False)
        assert chats(await store.tickets()) == ["failed", "done"]
        assert await submitted(store, JournalBatch(graces=(("ann", None),))) is None
        assert (await store.live_state()).graces == {"bob": 7.0}

    async def test_offer_ids_are_unique(self, store: Store) -> None:
        """Two live chats cannot hold the same open offer, nor the same open transfer or invite;
        a chat that lets an offer go frees its id; a record that is not JSON is kept."""
        offer = ChatRow("a", '{"offer":{"id":"o1"}}', "o1", "h1")
        assert await submitted(store, JournalBatch(chats=(offer,))) is None
        assert await submitted(store, JournalBatch(chats=(offer,))) is None  # same chat
        for twin in (ChatRow("b", "{}", "o1"), ChatRow("b", "{}", None, "h1")):
            failed = await submitted(store, JournalBatch(chats=(twin, ChatRow("c", "{not json"))))
            assert isinstance(failed, StoreError)
        assert [c.chat_id for c in (await store.live_state()).chats] == ["a"]
        assert await submitted(store, JournalBatch(chats=(ChatRow("c", "{not json"),))) is None
        assert await submitted(store, JournalBatch(chats=(ChatRow("a", "{}"),))) is None
        assert await submitted(store, JournalBatch(chats=(ChatRow("b", "{}", "o1", "h1"),))) is None
        assert [c.chat_id for c in (await store.live_state()).chats] == ["a", "b", "c"]


def insert_token(name: str, fail: bool) -> Callable[[Connection], None]:
    """A write that stores an agent token, then fails with a database error if `fail`."""

    def job(conn: Connection) -> None:
        conn.execute(
            "INSERT INTO tokens (token_hash, role, subject, created_at) VALUES (?, ?, ?, ?)",
            (name, "agent", name, 0.0),
        )
        if fail:
            conn.execute("SELECT no_such_column FROM tokens")

    return job


class TestWriter:
    async def test_a_failing_write_undoes_only_itself(self, store: Store) -> None:
        """Writes that share a transaction commit, except the one that failed."""
        results: dict[str, object] = {}

        async def run(name: str, fail: bool) -> None:
            try:
                results[name] = await store.write(insert_token(name, fail))
            except StoreError as exc:
                results[name] = exc.code

        async with trio.open_nursery() as nursery:
            for name, fail in (("a", False), ("bad", True), ("c", False)):
                nursery.start_soon(run, name, fail)
        assert results == {"a": None, "bad": "store_failed", "c": None}
        assert await store.count_tokens(role="agent") == 2

    async def test_a_failing_write_alone_leaves_nothing(self, store: Store) -> None:
        """A write that fails with no other in its transaction (it runs without a savepoint) is
        rolled back whole, and the next write commits."""
        with pytest.raises(StoreError) as info:
            await store.write(insert_token("bad", fail=True))
        assert info.value.code == "store_failed"
        await store.write(insert_token("next", fail=False))
        assert await store.count_tokens(role="agent") == 1

    async def test_closed_store_refuses(self, store_url: str) -> None:
        """After the block, writes, reads and submits are refused with store_closed."""
        async with open_store(store_url) as store:
            pass
        with pytest.raises(StoreError) as info:
            await store.save_agent(Agent(id="ann", name="Ann", departments=()))
        assert info.value.code == "store_closed"
        with pytest.raises(StoreError):
            await store.agents()
        outcome = await submitted(store, JournalBatch())
        assert isinstance(outcome, StoreError)
        assert outcome.code == "store_closed"
