"""The SQLite machinery under the store: a writer thread with group commit, and reader connections.

Theory of operation
===================

The writer thread, its job queue, the delivery of outcomes into trio and the bound on pending
jobs are ``engine.store.writer.GroupWriter``'s (read its theory of operation first). This module
adds what is SQLite's:

Rule 1: the group commit's transaction. ``commit_batch`` runs a batch in ONE transaction::

    BEGIN IMMEDIATE
      SAVEPOINT job; fn1(conn); RELEASE job
      SAVEPOINT job; fn2(conn) raises -> ROLLBACK TO job; RELEASE job   (only fn2 is undone)
      SAVEPOINT job; fn3(conn); RELEASE job
      before_commit(conn)                                               (a store's check)
    COMMIT                                                              (one fsync for all three)

Each job runs under its own savepoint, so a job that raises undoes only its own changes and gets its
own exception, while the other jobs of the batch still commit. A job alone in its batch needs no
savepoint (two statements fewer): if it raises, the transaction is rolled back instead. If the
COMMIT fails (or ``before_commit`` raises, and the transaction is rolled back), every job whose
function had succeeded gets a ``StoreError`` instead of its result (a job that had already failed
keeps its own exception). If SQLite aborts the whole transaction under a job (disk full, I/O error),
the jobs run so far in that transaction fail and the rest of the batch continues in a new one.

Rule 2: reads use their own connections. ``await read(fn)`` runs ``fn`` in a trio worker thread on a
pooled, ``query_only`` connection inside one read transaction, so a read sees one committed snapshot
(WAL lets it run while the writer writes). A write that ``write`` acknowledged is visible to every
read that starts afterwards.

Rule 6: an in-memory store (path ``":memory:"``, a throwaway such as a replay's) has no file
for other connections to share, so it has no threads either; nor has a file store opened with
``threads=False`` (for a run on a virtual clock, such as a test's, where a commit in another
thread would otherwise have to hold the clock still). The same jobs, batches and callbacks, but
each batch runs in the trio thread from a ``run_sync_soon`` callback (still on a later tick, never
re-entrantly), and a read runs at once on the one connection, inside one read transaction with
``query_only`` on. Nothing then waits for another thread to be scheduled.

Closing stops the writer (pending writes finish and are delivered first), then closes the
readers, shielded from cancellation.

Errors that SQLite raises inside a job or a read reach the caller as ``StoreError`` (code
``"store_failed"``) with the ``sqlite3.Error`` as ``__cause__``; other exceptions pass unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Callable
from typing import Final, TypeVar, cast

import structlog
import trio

from .writer import GroupWriter, Job, Outcome, StoreClosed, StoreError, fail_from

T = TypeVar("T")

_log = structlog.get_logger(__name__)

SYNCHRONOUS_MODES: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
_IDLE_READERS: Final = 8
MEMORY: Final = ":memory:"  # the path of a throwaway in-memory store (Rule 6)

_Job = Job[sqlite3.Connection]


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


def _run_job(conn: sqlite3.Connection, job: _Job, alone: bool) -> Outcome:
    """Run one job under its own savepoint; a failure undoes only this job. A job `alone` in its
    transaction needs no savepoint: its failure rolls the transaction back."""
    if alone:
        try:
            return True, job.fn(conn)
        except BaseException as exc:
            _rollback_quietly(conn)
            return False, _wrap(exc)
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


def commit_batch(
    conn: sqlite3.Connection,
    jobs: list[_Job],
    before_commit: Callable[[sqlite3.Connection], None] | None = None,
) -> list[Outcome]:
    """Run ``jobs`` in one transaction (a new one if SQLite aborts it) and commit; never raises.

    ``before_commit`` runs inside the transaction that is about to commit, after its jobs; if it
    raises, that transaction is rolled back and its jobs fail instead.
    """
    outcomes: list[Outcome] = []
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
        outcomes.append(_run_job(conn, job, alone=len(jobs) == 1))
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back (or the job ended it): nothing since BEGIN
            # is durable, so no job of it may report success.
            fail_from(outcomes, start, "the transaction was rolled back", None)
            start = len(outcomes)
            begun = False
    if begun and before_commit is not None:
        try:
            before_commit(conn)
        except BaseException as exc:
            _rollback_quietly(conn)
            fail_from(outcomes, start, "the transaction was refused", exc)
            begun = False
    if begun:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback_quietly(conn)
            fail_from(outcomes, start, "commit failed", exc)
    return outcomes


class Database(GroupWriter[sqlite3.Connection]):
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
        threads: bool = True,
    ) -> None:
        super().__init__(
            name=f"helpline-store-writer:{path}", batch_max=batch_max, max_pending=max_pending
        )
        self.path = path
        self._conn = conn
        self._busy_timeout = busy_timeout
        self._readers: list[sqlite3.Connection] = []
        #: Rule 6: no threads, every batch runs in the trio thread.
        self.inline = path == MEMORY or not threads

    def run_batch(self, batch: list[_Job]) -> list[Outcome]:
        return commit_batch(self._conn, batch, self.before_commit)

    def close_writer(self) -> None:
        self._conn.close()

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
        await self.stop_writer()
        with trio.CancelScope(shield=True):
            readers, self._readers = self._readers, []
            for conn in readers:
                await trio.to_thread.run_sync(conn.close)
