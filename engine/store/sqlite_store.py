"""The durable store: tickets, departments, agents and access tokens in one SQLite file.

Theory of operation
===================

``open_store(path)`` opens (or creates) the file, puts it in WAL mode, applies the schema
migrations it lacks (``engine.store.migrate``), and starts ONE writer thread that owns the only
writing connection. Every write is a small function run in that thread; the thread groups whatever
writes are waiting into one transaction (group commit) with a savepoint per write, so one failing
write undoes only itself, and reports each outcome back to trio only after COMMIT returned. The
mechanism lives in ``engine.store.sqlite``; this module is the queries.

The queries (``StoreQueries``) are written once for SQLite and PostgreSQL: ``?`` placeholders and
SQL both databases understand, run through the backend's ``write``, ``read`` and ``submit``.
``SqliteStore`` and ``engine.store.postgres.PostgresStore`` add only the machinery under them; both
honour the contract of ``engine.store.contract``.

Two ways to write, for two kinds of caller (DESIGN.md, "The store is a leaf"):

* ``await store.save_ticket(t)`` (and every other ``async`` write) returns once the write is
  committed; sessions and agents use these.
* ``store.submit_journal(batch, on_done)`` (and the generic ``store.submit(fn, on_done)``) never
  blocks and never awaits. ``on_done`` is called later in the trio thread, outside any task, with
  the result or the exception; the router uses it and turns the callback into a message.

Reads run on separate reader connections in worker threads, each inside one read transaction.

Schema
------

The schema lives in ``engine/store/migrations/sqlite/*.sql``. ``tickets`` has one row per chat: the
visitor's fields as real columns (plus the lower-cased email in an indexed column), entries and
handoffs as JSON text, and ``UNIQUE(chat_id)`` so that a second ticket for a chat is refused by the
database itself. ``ticket_agents`` lists who handled each ticket, in order, indexed by agent.
``departments``, ``agents`` with ``agent_departments``, ``tokens`` (only hashes), the canned
messages' tables and ``schema_version`` complete it.

The journal of live chats (``live_chats``, ``live_entries``, ``live_agents``) is described in
``store.journal``. Storing a chat's ticket deletes its live rows in the same transaction, so a
chat is always exactly one of live or ticketed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol, TypeVar

import trio

from ..model.desk_events import rating_event, ticket_events
from ..model.records import (
    Agent,
    AgentStatus,
    Department,
    Entry,
    Rating,
    RoutingMode,
    Ticket,
    TicketKind,
)
from . import journal
from . import routing_rows as rr
from .audit import AuditQueries
from .contract import Connection, RatingReport
from .migrate import latest, migrate
from .outbox import OutboxQueries, enqueue
from .sqlite import SYNCHRONOUS_MODES, Database, connect_writer
from .tickets import (
    AlreadyRated,
    NotFound,
    TicketExists,
    check_new,
    check_page,
    insert_ticket,
    one_ticket,
    period,
    select_tickets,
)
from .writer import StoreBusy, StoreClosed, StoreError

__all__ = [
    "SqliteStore",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "StoreQueries",
    "open_store",
]

T = TypeVar("T")

SCHEMA_VERSION: Final = latest("sqlite")


def store_ticket(conn: Connection, ticket: Ticket) -> Ticket:
    """Insert a new ticket and queue the webhook events it reports, in one transaction."""
    stored = insert_ticket(conn, ticket)
    enqueue(conn, ticket_events(stored))
    return stored


def _write_router_batch(conn: Connection, batch: journal.JournalBatch) -> None:
    journal.write_batch(conn, batch)
    enqueue(conn, batch.events)  # committed with the decisions they report, or not at all
    for ticket in batch.tickets:
        try:
            store_ticket(conn, ticket)
        except TicketExists:
            pass  # the chat's ticket was stored after all; the failed one is not needed


# -- agents -------------------------------------------------------------------------------------


def _upsert_agent(conn: Connection, a: Agent) -> None:
    conn.execute(
        "INSERT INTO agents (id, name, capacity, status, ringtone, skills)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, capacity = excluded.capacity,"
        " status = excluded.status, ringtone = excluded.ringtone, skills = excluded.skills",
        (a.id, a.name, a.capacity, a.status.value, int(a.ringtone), rr.skills_json(a.skills)),
    )
    conn.execute("DELETE FROM agent_departments WHERE agent_id = ?", (a.id,))
    conn.executemany(
        "INSERT INTO agent_departments (agent_id, position, department) VALUES (?, ?, ?)",
        [(a.id, position, dept) for position, dept in enumerate(a.departments)],
    )


def _select_agents(conn: Connection) -> list[Agent]:
    departments: dict[str, list[str]] = {}
    for agent_id, dept in conn.execute(
        "SELECT agent_id, department FROM agent_departments ORDER BY agent_id, position"
    ):
        departments.setdefault(agent_id, []).append(dept)
    return [
        Agent(
            id=agent_id,
            name=name,
            departments=tuple(departments.get(agent_id, ())),
            capacity=capacity,
            status=AgentStatus(status),
            ringtone=bool(ringtone),
            skills=rr.skills_of(skills),
        )
        for agent_id, name, capacity, status, ringtone, skills in conn.execute(
            "SELECT id, name, capacity, status, ringtone, skills FROM agents ORDER BY id"
        )
    ]


def _delete(conn: Connection, table: str, key: str, what: str) -> None:
    if conn.execute(f"DELETE FROM {table} WHERE id = ?", (key,)).rowcount == 0:
        raise NotFound(f"no {what} {key!r}")


class _Lines:
    """Live chats' lines waiting for the writer, which takes them all as one job."""

    def __init__(self, lock: threading.Lock) -> None:
        self.rows: list[journal.EntryRow] = []
        self.taken = False  # the writer has the rows: new lines go to a new _Lines
        self.done = trio.Event()
        self.error: BaseException | None = None
        self._lock = lock

    def write(self, conn: Connection) -> None:  # in the writer thread
        with self._lock:
            self.taken = True
            rows = self.rows
        journal.append_entries(conn, rows)

    def finish(self, outcome: object) -> None:  # in the trio thread, after COMMIT
        # Also when the job failed before `write` ran (BEGIN found the file locked): this group
        # is over, and a line that comes now starts a new one instead of joining its failure.
        with self._lock:
            self.taken = True
        if isinstance(outcome, BaseException):
            self.error = outcome
        self.done.set()


class LineQueue:
    """Gathers the lines of every chat that arrive before the writer takes the job into that job.

    Many sessions share one job as well as one transaction, which keeps the writer thread's work
    per line, and its turns at the GIL, small.
    """

    def __init__(self) -> None:
        self._lines: _Lines | None = None
        self._lock = threading.Lock()

    async def append(
        self,
        submit: Callable[[Callable[[Connection], None], Callable[[object], None]], None],
        rows: Sequence[journal.EntryRow],
    ) -> None:
        with self._lock:
            lines = self._lines
            fresh = lines is None or lines.taken
            if fresh:
                lines = self._lines = _Lines(self._lock)
            assert lines is not None
            lines.rows.extend(rows)
        if fresh:
            submit(lines.write, lines.finish)
        await lines.done.wait()
        if lines.error is not None:
            raise lines.error


class _Backend(Protocol):
    """What ``StoreQueries`` needs from the machinery under it."""

    line_queue: LineQueue

    def write(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...

    def read(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...

    def submit(
        self, fn: Callable[[Connection], T], on_done: Callable[[T | BaseException], None]
    ) -> None: ...


class StoreQueries(AuditQueries, OutboxQueries):
    """The contract's methods (``engine.store.contract.Store``), over a backend's machinery.

    Mixed into ``SqliteStore`` and ``PostgresStore``, each of which provides ``write``, ``read``,
    ``submit`` and a ``line_queue``. Every ``async`` write returns only after its COMMIT.
    """

    # -- tickets ------------------------------------------------------------------------------

    async def save_ticket(self: _Backend, ticket: Ticket) -> Ticket:
        """Store a new ticket and return it with its id; ``TicketExists`` if the chat has one."""
        check_new(ticket)
        return await self.write(lambda conn: store_ticket(conn, ticket))

    async def ticket(self: _Backend, ticket_id: int) -> Ticket:
        """The ticket with that id; ``NotFound`` if there is none."""
        return await self.read(lambda conn: one_ticket(conn, "id", ticket_id))

    async def ticket_for_chat(self: _Backend, chat_id: str) -> Ticket:
        """The ticket of that chat; ``NotFound`` if there is none."""
        return await self.read(lambda conn: one_ticket(conn, "chat_id", chat_id))

    async def tickets(
        self: _Backend,
        *,
        kind: TicketKind | None = None,
        department: str | None = None,
        agent: str | None = None,
        visitor_email: str | None = None,
        visitor_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        handled: bool | None = None,
        limit: int = 20,
        offset: int = 0,
        tag: str | None = None,
    ) -> list[Ticket]:
        """One page of the tickets that match every filter given, newest (by ``ended_at``) first.

        ``agent`` matches anyone who handled the chat; ``visitor_email`` ignores case; the period
        is ``since <= ended_at < until``. ``limit`` is at most ``MAX_PAGE``.
        """
        check_page(limit, offset)
        clauses, params = period(since, until)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind.value)
        if department is not None:
            clauses.append("department = ?")
            params.append(department)
        if agent is not None:
            clauses.append("id IN (SELECT ticket_id FROM ticket_agents WHERE agent = ?)")
            params.append(agent)
        if visitor_email is not None:
            clauses.append("visitor_email_lower = ?")
            params.append(visitor_email.lower())
        if visitor_id is not None:
            clauses.append("visitor_id = ?")
            params.append(visitor_id)
        if handled is not None:
            clauses.append("handled = ?")
            params.append(int(handled))
        if tag is not None:
            clauses.append("id IN (SELECT ticket_id FROM ticket_tags WHERE tag = ?)")
            params.append(tag)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        where += " ORDER BY ended_at DESC, id DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        return await self.read(lambda conn: select_tickets(conn, where, params))

    async def mark_handled(self: _Backend, ticket_id: int) -> Ticket:
        """Mark a ticket as followed up (idempotent) and return it; ``NotFound`` if none."""

        def mark(conn: Connection) -> Ticket:
            conn.execute("UPDATE tickets SET handled = 1 WHERE id = ?", (ticket_id,))
            return one_ticket(conn, "id", ticket_id)

        return await self.write(mark)

    async def rate(
        self: _Backend,
        chat_id: str,
        rating: Rating,
        comment: str = "",
        score: int | None = None,
        *,
        at: float | None = None,
    ) -> Ticket:
        """Record the visitor's rating (and score) once; then ``AlreadyRated``. ``NotFound`` if
        no ticket.

        Its ``rating.given`` webhook event (at ``at``, default now) is queued in the same write.
        """
        when = time.time() if at is None else at

        def rate(conn: Connection) -> Ticket:
            cursor = conn.execute(
                "UPDATE tickets SET rating = ?, rating_comment = ?, score = ?"
                " WHERE chat_id = ? AND rating IS NULL",
                (rating.value, comment, score, chat_id),
            )
            ticket = one_ticket(conn, "chat_id", chat_id)
            if cursor.rowcount == 0:
                raise AlreadyRated(f"chat {chat_id!r} was already rated")
            enqueue(conn, (rating_event(ticket, when),))
            return ticket

        return await self.write(rate)

    async def rating_report(
        self: _Backend, *, since: float | None = None, until: float | None = None
    ) -> RatingReport:
        """Counts of good / neutral / bad ratings per owning agent and per department.

        Only rated tickets that ended in ``since <= ended_at < until`` count; a ticket counts for
        its ``owner`` (if any) and for its department.
        """
        clauses, params = period(since, until)
        where = " AND ".join(["rating IS NOT NULL", *clauses])

        def report(conn: Connection) -> RatingReport:
            result: RatingReport = {"agents": {}, "departments": {}}
            for key, column in (("agents", "owner"), ("departments", "department")):
                for name, rating, count, scored, score_sum in conn.execute(
                    f"SELECT {column}, rating, count(*), count(score), coalesce(sum(score), 0)"
                    f" FROM tickets WHERE {where} AND {column} != '' GROUP BY {column}, rating",
                    params,
                ):
                    counts = result[key].setdefault(
                        name, {**{r.value: 0 for r in Rating}, "scored": 0, "score_sum": 0}
                    )
                    counts[rating] = int(count)
                    counts["scored"] += int(scored)
                    counts["score_sum"] += int(score_sum)
            return result

        return await self.read(report)

    # -- the journal of live chats ------------------------------------------------------------

    async def append_entries(self: _Backend, chat_id: str, entries: Sequence[Entry]) -> None:
        """Store a live chat's new lines; returns once committed (see ``LineQueue``)."""
        rows = [(chat_id, e.seq, e.at, e.kind, e.author, e.text, e.client_msg_id) for e in entries]
        await self.line_queue.append(self.submit, rows)

    def submit_journal(
        self: _Backend, batch: journal.JournalBatch, on_done: Callable[[object], None]
    ) -> None:
        """Hand the router's batch over without waiting; ``on_done`` gets None or the error."""
        self.submit(lambda conn: _write_router_batch(conn, batch), on_done)

    async def live_state(self: _Backend) -> journal.LiveState:
        """Every live chat the journal holds, with its lines, and the running agent graces."""
        return await self.read(journal.load)

    # -- departments and agents ---------------------------------------------------------------

    async def save_department(self: _Backend, d: Department) -> None:
        """Insert or replace a department's settings."""
        await self.write(
            lambda conn: conn.execute(
                "INSERT INTO departments (id, name, chat_enabled, routing, offer_window,"
                " queue_timeout, queue_limit, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " chat_enabled = excluded.chat_enabled, routing = excluded.routing,"
                " offer_window = excluded.offer_window, queue_timeout = excluded.queue_timeout,"
                " queue_limit = excluded.queue_limit, options = excluded.options",
                (
                    d.id,
                    d.name,
                    int(d.chat_enabled),
                    d.routing.value,
                    d.offer_window,
                    d.queue_timeout,
                    d.queue_limit,
                    rr.options_json(d),
                ),
            )
        )

    async def departments(self: _Backend) -> list[Department]:
        """Every department, by id."""

        def select(conn: Connection) -> list[Department]:
            rows = conn.execute(
                "SELECT id, name, chat_enabled, routing, offer_window, queue_timeout, queue_limit,"
                " options FROM departments ORDER BY id"
            )
            return [
                rr.with_options(
                    Department(
                        id=row[0],
                        name=row[1],
                        chat_enabled=bool(row[2]),
                        routing=RoutingMode(row[3]),
                        offer_window=row[4],
                        queue_timeout=row[5],
                        queue_limit=row[6],
                    ),
                    row[7],
                )
                for row in rows
            ]

        return await self.read(select)

    async def save_agent(self: _Backend, a: Agent) -> None:
        """Insert or replace an agent's settings, departments, status and ringtone."""
        await self.write(lambda conn: _upsert_agent(conn, a))

    async def agents(self: _Backend) -> list[Agent]:
        """Every agent, by id."""
        return await self.read(_select_agents)

    async def remove_agent(self: _Backend, agent_id: str) -> None:
        """Delete an agent; ``NotFound`` if there is none."""
        await self.write(lambda conn: _delete(conn, "agents", agent_id, "agent"))

    # -- access tokens (hashes only) ----------------------------------------------------------

    async def save_token(
        self: _Backend,
        *,
        token_hash: str,
        role: str,
        subject: str,
        created_at: float,
        departments: Sequence[str] = (),
    ) -> None:
        """Store a token's hash with its role, subject and departments (a supervisor's scope);
        ``StoreError`` if the hash exists."""

        def insert(conn: Connection) -> None:
            cursor = conn.execute(
                "INSERT INTO tokens (token_hash, role, subject, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (token_hash) DO NOTHING",
                (token_hash, role, subject, created_at),
            )
            if cursor.rowcount == 0:
                raise StoreError("that token is already stored", code="token_exists")
            conn.executemany(
                "INSERT INTO token_departments (token_hash, department) VALUES (?, ?)",
                [(token_hash, d) for d in dict.fromkeys(departments)],
            )

        await self.write(insert)

    async def token_departments(self: _Backend, token_hash: str) -> tuple[str, ...]:
        """The departments stored with the token with that hash, by id (none: empty)."""

        def select(conn: Connection) -> tuple[str, ...]:
            rows = conn.execute(
                "SELECT department FROM token_departments WHERE token_hash = ? ORDER BY department",
                (token_hash,),
            )
            return tuple(row[0] for row in rows)

        return await self.read(select)

    async def token(self: _Backend, token_hash: str) -> tuple[str, str] | None:
        """``(role, subject)`` of the token with that hash, or None."""

        def select(conn: Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT role, subject FROM tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            return None if row is None else (row[0], row[1])

        return await self.read(select)

    async def revoke_tokens(self: _Backend, *, subject: str) -> int:
        """Delete every token of ``subject``; returns how many there were."""
        return await self.write(
            lambda conn: conn.execute("DELETE FROM tokens WHERE subject = ?", (subject,)).rowcount
        )

    async def count_tokens(self: _Backend, *, role: str) -> int:
        """How many tokens have that role."""

        def count(conn: Connection) -> int:
            (n,) = conn.execute("SELECT count(*) FROM tokens WHERE role = ?", (role,)).fetchone()
            return int(n)

        return await self.read(count)

    # -- changes made outside the daemon -------------------------------------------------------

    async def note_config_change(self: _Backend) -> None:
        """Bump the configuration counter, committed (see ``config_version``)."""

        def bump(conn: Connection) -> None:
            conn.execute("UPDATE config_changes SET version = version + 1 WHERE id = 1")

        await self.write(bump)

    async def config_version(self: _Backend) -> int:
        """A counter that grows whenever a command changed departments, agents or canned messages
        in the store directly; a running daemon compares it to reload what changed."""

        def read(conn: Connection) -> int:
            (version,) = conn.execute("SELECT version FROM config_changes WHERE id = 1").fetchone()
            return int(version)

        return await self.read(read)


class SqliteStore(StoreQueries, Database):
    """Tickets, departments, agents and tokens in SQLite; get one from ``open_store``.

    ``write``, ``submit`` and ``read`` (from ``Database``) are the generic mechanism; the queries
    come from ``StoreQueries``. Every ``async`` write returns only after its COMMIT.
    """

    def __init__(
        self, conn: sqlite3.Connection, *, versions: tuple[int, int], **kwargs: Any
    ) -> None:
        super().__init__(conn, **kwargs)
        self.line_queue = LineQueue()
        self.migrated_from, self.schema_version = versions


@asynccontextmanager
async def open_store(
    path: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    busy_timeout: float = 5.0,
    batch_max: int = 256,
    max_pending: int = 10_000,
) -> AsyncIterator[SqliteStore]:
    """Open (creating if needed) the store at ``path`` for the duration of the block.

    Migrations the file lacks are applied first, in one transaction; a file written by a newer
    helpline is refused (``StoreError("schema_too_new")``). On exit, writes already handed over
    finish and are delivered before the writer stops. ``synchronous`` is SQLite's pragma (OFF,
    NORMAL, FULL or EXTRA); ``batch_max`` bounds a group commit; ``max_pending`` bounds the
    writes queued at once.
    """
    if synchronous.upper() not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
    path_str = os.fspath(path)
    versions: list[tuple[int, int]] = []
    conn = await trio.to_thread.run_sync(
        lambda: connect_writer(
            path_str,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            setup=lambda c: versions.append(migrate(c, "sqlite")),
        )
    )
    try:
        store = SqliteStore(
            conn,
            versions=versions[0],
            path=path_str,
            busy_timeout=busy_timeout,
            batch_max=batch_max,
            max_pending=max_pending,
        )
    except BaseException:
        conn.close()
        raise
    store.start()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.hold.run)
        try:
            yield store
        finally:
            await store.aclose()
            nursery.cancel_scope.cancel()
