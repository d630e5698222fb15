"""The store on PostgreSQL: the same queries and promises as SQLite, on psycopg 3.

Theory of operation
===================

psycopg's async API runs only on asyncio, so this store drives synchronous connections from
threads, the way the SQLite store keeps the event loop free. The writer thread, its job queue, the
delivery of outcomes into trio and the bound on pending jobs are
``engine.store.writer.GroupWriter``'s (read its theory of operation first); this module adds what
is PostgreSQL's:

Rule 1: the group commit's transaction. ``commit_batch`` runs a batch in ONE transaction, each job
under its own savepoint::

    BEGIN; SAVEPOINT job; fn1; RELEASE SAVEPOINT job; SAVEPOINT job; fn2 fails;
    ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job; ...; before_commit; COMMIT

A job that fails undoes only itself. A job alone in its batch runs without a savepoint (two round
trips fewer), and its failure rolls the transaction back instead. If the COMMIT fails, every job
that had succeeded gets a ``StoreError`` instead; if ``before_commit`` (a store's check) raises, the
transaction is rolled back and every job fails the same way. If the connection breaks, the jobs of
that transaction fail and the next batch opens a new connection, so a database restart costs the
writes in flight, no more.

Rule 2: nothing is acknowledged before COMMIT returns (with ``synchronous_commit`` on, PostgreSQL's
default, that is after the WAL reached the disk).

Rule 3: reads run in trio worker threads (``trio.to_thread.run_sync`` under a capacity limiter as
large as the pool) on connections of a small ``psycopg_pool.ConnectionPool``, each read inside one
``REPEATABLE READ READ ONLY`` transaction: one committed snapshot, which includes every write
acknowledged before the read began.

The SQL comes from ``engine.store.queries`` (and the modules it mixes in) and
``engine.store.journal``, written with ``?`` placeholders; ``PgConnection`` turns them into
psycopg's ``%s``. Opening the store applies the migrations of
``engine/store/migrations/postgresql`` under an advisory lock, so several daemons starting at once
on one database migrate it once. psycopg errors reach callers as ``StoreError`` (code
``"store_failed"``) with the psycopg error as ``__cause__``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import cache
from typing import Any, Final, TypeVar, cast

import psycopg
import structlog
import trio
import trio.lowlevel
from psycopg_pool import ConnectionPool

from .lines import LineQueue
from .migrate import migrate
from .queries import StoreQueries
from .writer import GroupWriter, Job, Outcome, StoreClosed, StoreError, fail_from

__all__ = ["PgConnection", "PostgresStore", "open_store"]

T = TypeVar("T")

_log = structlog.get_logger(__name__)

MIGRATION_LOCK: Final = 0x68656C706C696E65  # pg_advisory_xact_lock key: "helpline" in ASCII
CONNECT_TIMEOUT: Final = 10  # seconds

_RawConnection = psycopg.Connection[tuple[Any, ...]]

# A quoted string (left alone), a ``?`` placeholder, or a percent sign (escaped for psycopg).
_TOKENS: Final = re.compile(r"'(?:[^']|'')*'|\?|%")


@cache
def to_psycopg(sql: str) -> str:
    """``sql`` with ``?`` placeholders as psycopg's ``%s``, and literal ``%`` doubled."""

    def swap(match: re.Match[str]) -> str:
        token = match[0]
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%")

    return _TOKENS.sub(swap, sql)


class PgConnection:
    """A psycopg connection that speaks the store's SQL (``?`` placeholders)."""

    def __init__(self, raw: _RawConnection) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] | None = None, /) -> psycopg.Cursor[Any]:
        if parameters is None:
            return self.raw.execute(cast("Any", sql))
        return self.raw.execute(cast("Any", to_psycopg(sql)), parameters)

    def executemany(
        self, sql: str, seq_of_parameters: Sequence[Sequence[Any]], /
    ) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        if seq_of_parameters:
            cursor.executemany(cast("Any", to_psycopg(sql)), seq_of_parameters)
        return cursor


def _wrap(exc: BaseException) -> BaseException:
    """A psycopg error as a StoreError the caller can report; other exceptions unchanged."""
    if isinstance(exc, psycopg.Error):
        error = StoreError(f"database error: {exc}".strip())
        error.__cause__ = exc
        return error
    return exc


def _connect(url: str) -> _RawConnection:
    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)


def _connect_writer(url: str, synchronous_commit: str) -> tuple[_RawConnection, tuple[int, int]]:
    """Open the writer connection and migrate the schema; blocking (run it in a thread)."""
    raw = _connect(url)
    try:
        raw.execute(cast("Any", f"SET synchronous_commit = {synchronous_commit}"))
        conn = PgConnection(raw)
        with raw.transaction():
            raw.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            versions = migrate(conn, "postgresql")
    except BaseException:
        raw.close()
        raise
    return raw, versions


_Job = Job[PgConnection]


def commit_batch(
    raw: _RawConnection,
    jobs: Sequence[_Job],
    before_commit: Callable[[PgConnection], None] | None = None,
) -> tuple[list[Outcome], bool]:
    """Run ``jobs`` in one transaction and commit; returns the outcomes and whether the connection
    is still usable. Never raises.

    ``before_commit`` runs inside the transaction after its jobs; if it raises, the transaction is
    rolled back and every job fails instead.
    """
    conn = PgConnection(raw)
    outcomes: list[Outcome] = []
    try:
        raw.execute("BEGIN")
        if len(jobs) == 1:  # alone: no savepoint, a failure rolls the transaction back
            try:
                outcomes.append((True, jobs[0].fn(conn)))
            except Exception as exc:
                raw.execute("ROLLBACK")
                return [(False, _wrap(exc))], True
        else:
            for job in jobs:
                raw.execute("SAVEPOINT job")
                try:
                    result = job.fn(conn)
                except Exception as exc:
                    raw.execute("ROLLBACK TO SAVEPOINT job")
                    raw.execute("RELEASE SAVEPOINT job")
                    outcomes.append((False, _wrap(exc)))
                else:
                    raw.execute("RELEASE SAVEPOINT job")
                    outcomes.append((True, result))
        if before_commit is not None:
            try:
                before_commit(conn)
            except psycopg.Error:
                raise
            except Exception as exc:
                raw.execute("ROLLBACK")
                fail_from(outcomes, 0, "the transaction was refused", exc)
                return outcomes, True
        raw.execute("COMMIT")
    except psycopg.Error as exc:
        # The transaction is lost (the connection broke, or COMMIT failed): nothing of it is
        # durable, so no job may report success; the jobs not run yet fail the same way.
        fail_from(outcomes, 0, "the transaction was not committed", exc)
        error = StoreError(f"the transaction was not committed: {exc}")
        error.__cause__ = exc
        outcomes.extend((False, error) for _ in range(len(outcomes), len(jobs)))
        usable = not raw.broken and not raw.closed
        if usable:
            try:
                raw.execute("ROLLBACK")
            except psycopg.Error:
                usable = False
        return outcomes, usable
    return outcomes, True


class PostgresStore(StoreQueries, GroupWriter[PgConnection]):
    """Tickets, departments, agents, tokens and the journal in PostgreSQL; see ``open_store``."""

    def __init__(
        self,
        writer: _RawConnection,
        pool: ConnectionPool[_RawConnection],
        *,
        url: str,
        versions: tuple[int, int],
        synchronous_commit: str = "on",
        batch_max: int = 256,
        max_pending: int = 10_000,
    ) -> None:
        super().__init__(
            name="helpline-store-writer:postgresql", batch_max=batch_max, max_pending=max_pending
        )
        self.migrated_from, self.schema_version = versions
        self.line_queue = LineQueue()
        self._url = url
        self._synchronous_commit = synchronous_commit
        self._writer: _RawConnection | None = writer
        self._pool = pool
        self._readers = trio.CapacityLimiter(pool.max_size)
        #: Several nodes: a check of the routing lease's epoch (``engine.store.lease.fence``),
        #: run in every write transaction just before its COMMIT; when it raises a StoreError
        #: (``lease_lost``), the transaction is rolled back and its jobs fail with that code.
        self.fence: Callable[[PgConnection], None] | None = None

    # -- the writer thread ---------------------------------------------------------------------

    def before_commit(self, conn: PgConnection) -> None:
        if self.fence is not None:
            self.fence(conn)

    def run_batch(self, batch: list[_Job]) -> list[Outcome]:
        """In the writer thread: run one batch, (re)connecting first if the connection is gone."""
        if self._writer is None:
            try:
                self._writer = _connect(self._url)
                self._writer.execute(
                    cast("Any", f"SET synchronous_commit = {self._synchronous_commit}")
                )
            except psycopg.Error as exc:
                self._writer = None
                error = _wrap(exc)
                return [(False, error) for _ in batch]
        outcomes, usable = commit_batch(self._writer, batch, self.before_commit)
        if not usable:
            _log.warning("store_writer_reconnects")
            self._writer.close()
            self._writer = None
        return outcomes

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()

    # -- reads --------------------------------------------------------------------------------

    async def read(self, fn: Callable[[PgConnection], T]) -> T:
        """Run ``fn`` in a worker thread on a pooled connection, inside one read transaction."""
        if self._closed:
            raise StoreClosed("the store is closed")
        self.hold.enter()
        try:
            ok, value = await trio.to_thread.run_sync(
                self._read_in_thread, fn, limiter=self._readers
            )
        finally:
            self.hold.leave()
        if ok:
            return cast(T, value)
        raise cast(BaseException, value)

    def _read_in_thread(self, fn: Callable[[PgConnection], object]) -> Outcome:
        try:
            with self._pool.connection() as raw:
                raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    return True, fn(PgConnection(raw))
                finally:
                    if not raw.broken:
                        raw.execute("ROLLBACK")
        except Exception as exc:
            return False, _wrap(exc)

    # -- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Let pending writes finish and be delivered, stop the writer, close every connection."""
        await self.stop_writer()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._pool.close)


@asynccontextmanager
async def open_store(
    url: str,
    *,
    synchronous: str = "FULL",
    readers: int = 4,
    batch_max: int = 256,
    max_pending: int = 10_000,
) -> AsyncIterator[PostgresStore]:
    """Open the store in the PostgreSQL database at ``url`` for the duration of the block.

    Migrations the database lacks are applied first; a database of a newer helpline is refused
    (``StoreError("schema_too_new")``). ``synchronous="OFF"`` turns ``synchronous_commit`` off for
    the writer (a crash of the server may lose the last acknowledged writes, as SQLite's OFF
    may); any other value keeps PostgreSQL's durable default. ``readers`` sizes the read pool.
    """
    if readers < 1:
        raise ValueError("readers must be at least 1")
    synchronous_commit = "off" if synchronous.upper() == "OFF" else "on"
    try:
        writer, versions = await trio.to_thread.run_sync(_connect_writer, url, synchronous_commit)
    except psycopg.Error as exc:
        raise StoreError(f"cannot open the PostgreSQL store: {exc}") from exc
    pool: ConnectionPool[_RawConnection] = ConnectionPool(
        url,
        min_size=1,
        max_size=readers,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
        open=False,
        name="helpline-readers",
    )
    try:
        await trio.to_thread.run_sync(lambda: pool.open(wait=True, timeout=CONNECT_TIMEOUT))
        store = PostgresStore(
            writer,
            pool,
            url=url,
            versions=versions,
            synchronous_commit=synchronous_commit,
            batch_max=batch_max,
            max_pending=max_pending,
        )
    except BaseException:
        writer.close()
        pool.close()
        raise
    store.start()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.hold.run)
        try:
            yield store
        finally:
            await store.aclose()
            nursery.cancel_scope.cancel()
