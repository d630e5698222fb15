"""The SQLite machinery under the store: a writer thread with group commit, and reader connections.

Theory of operation
===================

Rule 1: one connection writes, and it lives in one plain ``threading.Thread``. Trio code never
touches it. A write is a *job*: a function ``fn(connection) -> result`` and a callback. Jobs go
into a ``queue.SimpleQueue``; putting a job there never blocks, so even the router, which must never
await the store, can hand writes over.

Rule 2: group commit. The writer thread blocks for one job, then drains whatever else is already
queued (at most ``batch_max`` jobs in all) and runs the lot in ONE transaction::

    BEGIN IMMEDIATE
      SAVEPOINT job; fn1(conn); RELEASE job
      SAVEPOINT job; fn2(conn) raises -> ROLLBACK TO job; RELEASE job   (only fn2 is undone)
      SAVEPOINT job; fn3(conn); RELEASE job
    COMMIT                                                              (one fsync for all three)

Each job runs under its own savepoint, so a job that raises undoes only its own changes and gets its
own exception, while the other jobs of the batch still commit. If the COMMIT fails, every job whose
function had succeeded gets a ``StoreError`` instead of its result (a job that had already failed
keeps its own exception). If SQLite aborts the whole transaction under a job (disk full, I/O error),
the jobs run so far in that transaction fail and the rest of the batch continues in a new one. Under
load many writers share one fsync; when idle a batch is one job and a write costs one commit.

Rule 3: nothing is acknowledged before COMMIT returns. Only after it does the writer thread hand the
outcomes back to trio, with ``TrioToken.run_sync_soon`` (the token is captured when the store
opens). That callback runs in the trio thread, outside any task, and calls each job's callback:

* ``submit(fn, on_done)`` calls ``on_done(result_or_exception)`` there. It never blocks and never
  awaits; even a refusal (store closed, too many pending jobs) is reported through ``on_done`` on a
  later tick, never by raising into the caller or calling back re-entrantly.
* ``await write(fn)`` parks on a ``trio.Event`` that the callback sets, then returns the result or
  raises the exception. If the awaiting task is cancelled the job still runs; only its answer is
  lost.

Rule 4: memory is bounded. At most ``max_pending`` jobs are queued or running. ``write`` waits for
room (backpressure flows upward); ``submit`` fails that one job with ``StoreBusy`` instead.

Rule 5: reads use their own connections. ``await read(fn)`` runs ``fn`` in a trio worker thread on a
pooled, ``query_only`` connection inside one read transaction, so a read sees one committed snapshot
(WAL lets it run while the writer writes). A write that ``write`` acknowledged is visible to every
read that starts afterwards.

Rule 6: an in-memory store (path ``":memory:"``, a throwaway such as a replay's) has no file
for other connections to share, so it has no threads either: the same jobs, batches and
callbacks, but each batch runs in the trio thread from a ``run_sync_soon`` callback (still on a
later tick, never re-entrantly), and a read runs at once on the one connection, inside one read
transaction with ``query_only`` on. Nothing then waits for another thread to be scheduled.

Closing puts a stop marker behind the pending jobs; the writer finishes them, delivers their
outcomes, closes its connection and exits, and ``aclose`` waits for that, shielded from
cancellation.

Errors that SQLite raises inside a job or a read reach the caller as ``StoreError`` (code
``"store_failed"``) with the ``sqlite3.Error`` as ``__cause__``; other exceptions pass unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, TypeVar, cast

import structlog
import trio
import trio.lowlevel

T = TypeVar("T")

_log = structlog.get_logger(__name__)

SYNCHRONOUS_MODES: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
_IDLE_READERS: Final = 8
MEMORY: Final = ":memory:"  # the path of a throwaway in-memory store (Rule 6)

_Outcome = tuple[bool, object]  # (succeeded, result or exception)


class StoreError(Exception):
    """The store could not do what was asked: a wire error ``code`` and a human ``message``."""

    code: str = "store_failed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class StoreClosed(StoreError):
    """The store was closed before the request could be handed to it."""

    code = "store_closed"


class StoreBusy(StoreError):
    """Too many writes are pending; ``submit`` refuses rather than queue without bound."""

    code = "store_busy"


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], object]
    on_done: Callable[[bool, object], None]  # called in the trio thread


_STOP: Final = None  # queued behind the last job when the store closes


def _wrap(exc: BaseException) -> BaseException:
    """Turn a raw sqlite3 error into a StoreError the caller can report; leave others alone."""
    if isinstance(exc, sqlite3.Error):
        error = StoreError(f"database error: {exc}")
        error.__cause__ = exc
        return error
    return exc


def connect_writer(
    path: str,
    *,
    synchronous: str,
    busy_timeout: float,
    setup: Callable[[sqlite3.Connection], None],
) -> sqlite3.Connection:
    """Open the writer connection (WAL, foreign keys) and run ``setup`` in one transaction.

    Blocking: call it from a worker thread. The connection may then move to the writer thread.
    """
    mode = synchronous.upper()
    if mode not in SYNCHRONOUS_MODES:
        allowed = sorted(SYNCHRONOUS_MODES)
        raise ValueError(f"synchronous must be one of {allowed}, not {synchronous!r}")
    _private_file(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        (journal,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(journal).lower() != ("memory" if path == MEMORY else "wal"):
            raise StoreError(f"{path!r} cannot use WAL journaling (got {journal!r})")
        conn.execute(f"PRAGMA synchronous = {mode}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            setup(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def _private_file(path: str) -> None:
    """Create the database file readable and writable by its owner only (0600), or narrow an
    existing one to that; SQLite gives the -wal and -shm files it creates the database's mode."""
    if path == ":memory:" or path.startswith("file:"):
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(os.stat(path + suffix).st_mode) & 0o077:
                os.chmod(path + suffix, 0o600)


def _connect_reader(path: str, busy_timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _run_job(conn: sqlite3.Connection, job: _Job) -> _Outcome:
    """Run one job under its own savepoint; a failure undoes only this job."""
    try:
        conn.execute("SAVEPOINT job")
    except sqlite3.Error as exc:
        return False, _wrap(exc)
    try:
        result = job.fn(conn)
        conn.execute("RELEASE job")
    except BaseException as exc:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            except sqlite3.Error:
                _log.exception("store_savepoint_rollback_failed")
        return False, _wrap(exc)
    return True, result


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            _log.exception("store_rollback_failed")


def _failed(
    outcomes: list[_Outcome], start: int, message: str, cause: BaseException | None
) -> None:
    """Replace the successful outcomes from ``start`` on with a StoreError (caused by ``cause``)."""
    for i in range(start, len(outcomes)):
        if outcomes[i][0]:
            error = StoreError(message if cause is None else f"{message}: {cause}")
            error.__cause__ = cause
            outcomes[i] = (False, error)


def run_batch(conn: sqlite3.Connection, jobs: list[_Job]) -> list[_Outcome]:
    """Run ``jobs`` in one transaction (a new one if SQLite aborts it) and commit; never raises."""
    outcomes: list[_Outcome] = []
    start = 0  # first job of the current transaction
    begun = False
    for job in jobs:
        if not begun:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                outcomes.append((False, _wrap(exc)))
                start = len(outcomes)
                continue
            begun = True
        outcomes.append(_run_job(conn, job))
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back (or the job ended it): nothing since BEGIN
            # is durable, so no job of it may report success.
            _failed(outcomes, start, "the transaction was rolled back", None)
            start = len(outcomes)
            begun = False
    if begun:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback_quietly(conn)
            _failed(outcomes, start, "commit failed", exc)
    return outcomes


_HOLD_CLOCK: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "helpline_hold_clock", default=False
)


@contextlib.contextmanager
def hold_clock_for_store() -> Iterator[None]:
    """Stores opened inside this block hold a jumping clock still while they work (``ClockHold``).

    For a trio run on a clock that jumps to the next deadline as soon as every task is blocked,
    such as ``trio.testing.MockClock(autojump_threshold=0)``: enter it around ``trio.run`` (the run
    inherits the setting) or in the task that opens the store. Tests do it in their
    ``autojump_clock`` fixture. On a real clock it is not needed: it would only spin a task while
    a store operation is in flight.
    """
    token = _HOLD_CLOCK.set(True)
    try:
        yield
    finally:
        _HOLD_CLOCK.reset(token)


class ClockHold:
    """Keeps a jumping clock from jumping while the store works in another thread.

    Under a clock that jumps as soon as every task is blocked (trio.testing's autojump
    ``MockClock``), a task waiting for the writer or a reader thread counts as blocked, so virtual
    time would leap to the next deadline in the middle of a commit. While a store operation is in
    flight, ``run`` keeps one task runnable so the clock holds still. It is active only for a store
    opened inside ``hold_clock_for_store``; otherwise ``run`` returns at once and costs nothing.
    """

    def __init__(self) -> None:
        self.count = 0
        self._wake = trio.Event()
        self.active = _HOLD_CLOCK.get()

    def enter(self) -> None:
        self.count += 1
        self._wake.set()

    def leave(self) -> None:
        self.count -= 1

    async def run(self) -> None:
        if not self.active:
            return
        while True:
            if self.count == 0:
                self._wake = trio.Event()
                await self._wake.wait()
            await trio.lowlevel.checkpoint()


class Database:
    """A SQLite file with one writer thread (group commit) and pooled reader connections.

    Create it with an already set-up writer connection (see ``connect_writer``) inside a trio run,
    call ``start()``, and ``await aclose()`` when done. ``open_store`` does all of that.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: str,
        busy_timeout: float = 5.0,
        batch_max: int = 256,
        max_pending: int = 10_000,
    ) -> None:
        if batch_max < 1 or max_pending < 1:
            raise ValueError("batch_max and max_pending must be at least 1")
        self.path = path
        self.batch_max = batch_max
        #: Transactions the writer thread has run, and jobs it has run: a debugging aid.
        self.batch_count = 0
        self.job_count = 0
        #: Called in the trio thread after each group commit with (seconds, jobs): for metrics.
        self.on_commit: Callable[[float, int], None] | None = None
        self._conn = conn
        self._busy_timeout = busy_timeout
        self._token = trio.lowlevel.current_trio_token()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._slots = trio.Semaphore(max_pending)
        self._closed = False
        self._readers: list[sqlite3.Connection] = []
        self._thread = threading.Thread(
            target=self._writer_main, name=f"helpline-store-writer:{path}", daemon=True
        )
        #: Rule 6: no threads, every batch runs in the trio thread.
        self.inline = path == MEMORY
        self._drain_due = False
        self.hold = ClockHold()

    # -- writes -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread, which owns the writer connection from now on."""
        if not self.inline:
            self._thread.start()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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
        self._put(_Job(fn, on_done))
        await done.wait()
        ok, value = box[0]
        if ok:
            return cast(T, value)
        raise cast(BaseException, value)

    def submit(
        self,
        fn: Callable[[sqlite3.Connection], T],
        on_done: Callable[[T | BaseException], None],
    ) -> None:
        """Hand ``fn`` to the writer without waiting; ``on_done`` later gets result or exception.

        ``on_done`` runs in the trio thread, outside any task (it must not await), after COMMIT.
        Call this from the trio thread only.
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
        self._put(_Job(fn, deliver))

    def _put(self, job: _Job) -> None:
        self._jobs.put(job)
        if self.inline and not self._drain_due:
            self._drain_due = True
            self._token.run_sync_soon(self._drain)

    def _drain(self) -> None:
        """In the trio thread (Rule 6): run the queued jobs as one batch and deliver them."""
        self._drain_due = False
        batch: list[_Job] = []
        while len(batch) < self.batch_max:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                batch.append(job)
        if batch:
            started = time.perf_counter()
            outcomes = run_batch(self._conn, batch)
            self.batch_count += 1
            self.job_count += len(batch)
            self._deliver(batch, outcomes, time.perf_counter() - started)
        if not self._jobs.empty() and not self._drain_due:
            self._drain_due = True
            self._token.run_sync_soon(self._drain)

    @staticmethod
    def _refuse(deliver: Callable[[bool, object], None], error: StoreError) -> None:
        try:
            deliver(False, error)
        except Exception:
            _log.exception("store_callback_failed")

    def _deliver(self, jobs: list[_Job], outcomes: list[_Outcome], seconds: float) -> None:
        """In the trio thread: free the slots and call back, one job after another."""
        if self.on_commit is not None:
            self.on_commit(seconds, len(jobs))
        for job, (ok, value) in zip(jobs, outcomes, strict=True):
            self._slots.release()
            try:
                job.on_done(ok, value)
            except Exception:
                _log.exception("store_callback_failed")

    def _writer_main(self) -> None:
        conn = self._conn
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
                outcomes = run_batch(conn, batch)
                seconds = time.perf_counter() - started
                self.batch_count += 1
                self.job_count += len(batch)
                try:
                    self._token.run_sync_soon(self._deliver, batch, outcomes, seconds)
                except trio.RunFinishedError:
                    _log.error("store_results_dropped", jobs=len(batch))
        finally:
            conn.close()

    # -- reads --------------------------------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a reader connection in a worker thread, inside one read transaction (in
        memory, Rule 6: at once, on the one connection)."""
        if self._closed:
            raise StoreClosed("the store is closed")
        if self.inline:
            await trio.lowlevel.checkpoint()
            ok, value = self._read_inline(fn)
            if ok:
                return cast(T, value)
            raise cast(BaseException, value)
        conn = self._readers.pop() if self._readers else None
        self.hold.enter()
        try:
            conn, ok, value = await trio.to_thread.run_sync(self._read_in_thread, conn, fn)
        finally:
            self.hold.leave()
        if conn is not None:
            if self._closed or len(self._readers) >= _IDLE_READERS:
                await trio.to_thread.run_sync(conn.close)
            else:
                self._readers.append(conn)
        if ok:
            return cast(T, value)
        raise cast(BaseException, value)

    def _read_in_thread(
        self, conn: sqlite3.Connection | None, fn: Callable[[sqlite3.Connection], object]
    ) -> tuple[sqlite3.Connection | None, bool, object]:
        try:
            if conn is None:
                conn = _connect_reader(self.path, self._busy_timeout)
            conn.execute("BEGIN")
            try:
                return conn, True, fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            # The connection may be unusable now: do not pool it.
            if conn is not None:
                conn.close()
            return None, False, _wrap(exc)
        except BaseException as exc:
            return conn, False, exc

    def _read_inline(self, fn: Callable[[sqlite3.Connection], object]) -> tuple[bool, object]:
        """Rule 6: ``fn`` on the one connection, in one read transaction, query only."""
        conn = self._conn
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")
            try:
                return True, fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.execute("PRAGMA query_only = OFF")
        except BaseException as exc:
            return False, _wrap(exc)

    # -- closing ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Let pending writes finish and be delivered, stop the writer, close every connection."""
        if not self._closed:
            self._closed = True
            self._jobs.put(_STOP)
        with trio.CancelScope(shield=True):
            if self.inline:
                while not self._jobs.empty():
                    self._drain()
                self._conn.close()
            if self._thread.is_alive():
                await trio.to_thread.run_sync(self._thread.join)
            readers, self._readers = self._readers, []
            for conn in readers:
                await trio.to_thread.run_sync(conn.close)
