"""The store on PostgreSQL: the same queries and promises as SQLite, on psycopg 3.

Theory of operation
===================

psycopg's async API runs only on asyncio, so this store drives synchronous connections from
threads, the way the SQLite store keeps the event loop free (``engine.store.sqlite``):

Rule 1: one connection writes, owned by one plain ``threading.Thread``. A write is a job, a
function ``fn(connection) -> result`` with a callback, put on a ``queue.SimpleQueue`` (which never
blocks, so the router can hand writes over).

Rule 2: group commit. The writer takes one job, then whatever else is queued (at most
``batch_max``), and runs the lot in ONE transaction, each job under its own savepoint::

    BEGIN; SAVEPOINT job; fn1; RELEASE SAVEPOINT job; SAVEPOINT job; fn2 fails;
    ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job; ...; COMMIT

A job that fails undoes only itself. If the COMMIT fails, every job that had succeeded gets a
``StoreError`` instead. A ``fence`` (several nodes: ``engine.store.lease``) runs first in every
transaction and refuses it whole by raising a ``StoreError``. If the connection breaks, the jobs
of that transaction fail and the next batch opens a new connection, so a database restart costs
the writes in flight, no more.

Rule 3: nothing is acknowledged before COMMIT returns (with ``synchronous_commit`` on, PostgreSQL's
default, that is after the WAL reached the disk). Outcomes go back to trio through
``TrioToken.run_sync_soon``, and callbacks run there, outside any task.

Rule 4: at most ``max_pending`` jobs are queued or running: ``write`` waits for room, ``submit``
fails that one job with ``StoreBusy``.

Rule 5: reads run in trio worker threads (``trio.to_thread.run_sync`` under a capacity limiter as
large as the pool) on connections of a small ``psycopg_pool.ConnectionPool``, each read inside one
``REPEATABLE READ READ ONLY`` transaction: one committed snapshot, which includes every write
acknowledged before the read began.

The SQL comes from ``engine.store.sqlite_store`` and ``engine.store.journal``, written with ``?``
placeholders; ``PgConnection`` turns them into psycopg's ``%s``. Opening the store applies the
migrations of ``engine/store/migrations/postgresql`` under an advisory lock, so several daemons
starting at once on one database migrate it once. psycopg errors reach callers as ``StoreError``
(code ``"store_failed"``) with the psycopg error as ``__cause__``.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, TypeVar, cast

import psycopg
import structlog
import trio
import trio.lowlevel
from psycopg_pool import ConnectionPool

from .migrate import migrate
from .sqlite import ClockHold, StoreBusy, StoreClosed, StoreError
from .sqlite_store import LineQueue, StoreQueries

__all__ = ["PgConnection", "PostgresStore", "open_store"]

T = TypeVar("T")

_log = structlog.get_logger(__name__)

MIGRATION_LOCK: Final = 0x68656C706C696E65  # pg_advisory_xact_lock key: "helpline" in ASCII
CONNECT_TIMEOUT: Final = 10  # seconds

_Outcome = tuple[bool, object]  # (succeeded, result or exception)
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


def _failed(outcomes: list[_Outcome], start: int, message: str, cause: BaseException) -> None:
    """Replace the successful outcomes from ``start`` on with a StoreError caused by ``cause``."""
    for i in range(start, len(outcomes)):
        if outcomes[i][0]:
            error = StoreError(f"{message}: {cause}")
            error.__cause__ = cause
            outcomes[i] = (False, error)


@dataclass(slots=True)
class _Job:
    fn: Callable[[PgConnection], object]
    on_done: Callable[[bool, object], None]  # called in the trio thread


_STOP: Final = None

Fence = Callable[[_RawConnection], None]
"""A check run first in every write transaction (``engine.store.lease.fence``)."""


def run_batch(
    raw: _RawConnection, jobs: Sequence[_Job], fence: Fence | None = None
) -> tuple[list[_Outcome], bool]:
    """Run ``jobs`` in one transaction and commit; returns the outcomes and whether the connection
    is still usable. Never raises. ``fence`` runs first in the transaction; if it raises a
    StoreError, the transaction is rolled back and every job fails with that error."""
    conn = PgConnection(raw)
    outcomes: list[_Outcome] = []
    try:
        raw.execute("BEGIN")
        if fence is not None:
            try:
                fence(raw)
            except StoreError as refused:
                raw.execute("ROLLBACK")
                return [(False, refused) for _ in jobs], True
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
        raw.execute("COMMIT")
    except psycopg.Error as exc:
        # The transaction is lost (the connection broke, or COMMIT failed): nothing of it is
        # durable, so no job may report success; the jobs not run yet fail the same way.
        _failed(outcomes, 0, "the transaction was not committed", exc)
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


class PostgresStore(StoreQueries):
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
        if batch_max < 1 or max_pending < 1:
            raise ValueError("batch_max and max_pending must be at least 1")
        self.migrated_from, self.schema_version = versions
        self.batch_max = batch_max
        #: Transactions the writer thread has run, and jobs it has run: a debugging aid.
        self.batch_count = 0
        #: Called in the trio thread after each group commit with (seconds, jobs): for metrics.
        self.on_commit: Callable[[float, int], None] | None = None
        self.job_count = 0
        self.line_queue = LineQueue()
        self.hold = ClockHold()
        self._url = url
        self._synchronous_commit = synchronous_commit
        self._writer: _RawConnection | None = writer
        self._pool = pool
        self._readers = trio.CapacityLimiter(pool.max_size)
        self._token = trio.lowlevel.current_trio_token()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._slots = trio.Semaphore(max_pending)
        self._closed = False
        #: Run first in every write transaction, in the writer thread; a StoreError it raises
        #: refuses the whole transaction (several nodes: the routing lease's epoch check).
        self.fence: Fence | None = None
        self._thread = threading.Thread(
            target=self._writer_main, name="helpline-store-writer:postgresql", daemon=True
        )

    # -- writes -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread, which owns the writer connection from now on."""
        self._thread.start()

    async def write(self, fn: Callable[[PgConnection], T]) -> T:
        """Run ``fn`` in the writer thread inside a batch transaction; return once committed."""
        if self._closed:
            raise StoreClosed("the store is closed")
        await self._slots.acquire()
        if self._closed:
            self._slots.release()
            raise StoreClosed("the store is closed")
        done = trio.Event()
        box: list[_Outcome] = []

        def on_done(ok: bool, value: object) -> None:
            self.hold.leave()
            box.append((ok, value))
            done.set()

        self.hold.enter()
        self._jobs.put(_Job(fn, on_done))
        await done.wait()
        ok, value = box[0]
        if ok:
            return cast(T, value)
        raise cast(BaseException, value)

    def submit(
        self,
        fn: Callable[[PgConnection], T],
        on_done: Callable[[T | BaseException], None],
    ) -> None:
        """Hand ``fn`` to the writer without waiting; ``on_done`` later gets result or exception.

        ``on_done`` runs in the trio thread, outside any task, after COMMIT; never re-entrantly.
        """

        def deliver(_ok: bool, value: object) -> None:
            self.hold.leave()
            on_done(cast("T | BaseException", value))

        self.hold.enter()
        if self._closed:
            self._token.run_sync_soon(self._refuse, deliver, StoreClosed("the store is closed"))
            return
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            error = StoreBusy("too many store writes are pending")
            self._token.run_sync_soon(self._refuse, deliver, error)
            return
        self._jobs.put(_Job(fn, deliver))

    @staticmethod
    def _refuse(deliver: Callable[[bool, object], None], error: StoreError) -> None:
        try:
            deliver(False, error)
        except Exception:
            _log.exception("store_callback_failed")

    def _deliver(self, jobs: list[_Job], outcomes: list[_Outcome], seconds: float) -> None:
        if self.on_commit is not None:
            self.on_commit(seconds, len(jobs))
        for job, (ok, value) in zip(jobs, outcomes, strict=True):
            self._slots.release()
            try:
                job.on_done(ok, value)
            except Exception:
                _log.exception("store_callback_failed")

    def _run(self, batch: list[_Job]) -> list[_Outcome]:
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
        outcomes, usable = run_batch(self._writer, batch, self.fence)
        if not usable:
            _log.warning("store_writer_reconnects")
            self._writer.close()
            self._writer = None
        return outcomes

    def _writer_main(self) -> None:
        try:
            stopping = False
            while not stopping:
                first = self._jobs.get()
                if first is _STOP:
                    break
                batch = [first]
                while len(batch) < self.batch_max:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stopping = True
                        break
                    batch.append(job)
                started = time.perf_counter()
                outcomes = self._run(batch)
                seconds = time.perf_counter() - started
                self.batch_count += 1
                self.job_count += len(batch)
                try:
                    self._token.run_sync_soon(self._deliver, batch, outcomes, seconds)
                except trio.RunFinishedError:
                    _log.error("store_results_dropped", jobs=len(batch))
        finally:
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

    def _read_in_thread(self, fn: Callable[[PgConnection], object]) -> _Outcome:
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
        if not self._closed:
            self._closed = True
            self._jobs.put(_STOP)
        with trio.CancelScope(shield=True):
            if self._thread.is_alive():
                await trio.to_thread.run_sync(self._thread.join)
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
