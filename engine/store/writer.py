"""The writer both stores share: one thread that group-commits the jobs trio hands it.

Theory of operation
===================

A store writes through ONE connection owned by ONE plain ``threading.Thread``; trio code never
touches it. A write is a *job*: a function ``fn(connection) -> result`` and a callback. Jobs go into
a ``queue.SimpleQueue``; putting a job there never blocks, so even the router, which must never
await the store, can hand writes over.

The writer thread blocks for one job, then drains whatever else is already queued (at most
``batch_max`` jobs in all) and hands the lot to the backend's ``run_batch``, which runs them in one
transaction (each job under its own savepoint, unless it is alone) and commits once. Under load many
writers share one commit; when idle a batch is one job.

Nothing is acknowledged before COMMIT returns. Only after it does the writer thread hand the
outcomes back to trio with ``TrioToken.run_sync_soon`` (the token is captured when the store
opens). That callback runs in the trio thread, outside any task: it calls ``on_commit`` (metrics)
once for the batch, then each job's callback in order.

* ``submit(fn, on_done)`` calls ``on_done(result_or_exception)`` there. It never blocks and never
  awaits; even a refusal (store closed, too many pending jobs) is reported through ``on_done`` on a
  later tick, never by raising into the caller or calling back re-entrantly.
* ``await write(fn)`` parks on a ``trio.Event`` that the callback sets, then returns the result or
  raises the exception. If the awaiting task is cancelled the job still runs; only its answer is
  lost.

Memory is bounded: at most ``max_pending`` jobs are queued or running. ``write`` waits for room
(backpressure flows upward); ``submit`` fails that one job with ``StoreBusy`` instead.

Closing puts a stop marker behind the pending jobs; the writer finishes them, delivers their
outcomes, closes its connection and exits, and ``stop_writer`` waits for that.

A backend subclasses ``GroupWriter`` and provides ``run_batch`` (one transaction for a batch, never
raising) and ``close_writer``. Inside each transaction, after the batch's jobs and just before its
COMMIT, ``run_batch`` calls ``before_commit(conn)``: a store that must check something in the same
transaction as the writes it guards overrides it and raises to refuse the transaction; the backend
then rolls it back and every job of it fails with a ``StoreError`` caused by that exception. Here it
does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Generic, TypeVar, cast

import structlog
import trio
import trio.lowlevel

__all__ = [
    "ClockHold",
    "GroupWriter",
    "Job",
    "Outcome",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "fail_from",
    "hold_clock_for_store",
]

T = TypeVar("T")
C = TypeVar("C")  # the backend's connection type

_log = structlog.get_logger(__name__)

Outcome = tuple[bool, object]  # (succeeded, result or exception)


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
class Job(Generic[C]):
    fn: Callable[[C], object]
    on_done: Callable[[bool, object], None]  # called in the trio thread


_STOP: Final = None  # queued behind the last job when the store closes


def fail_from(
    outcomes: list[Outcome], start: int, message: str, cause: BaseException | None
) -> None:
    """Replace the successful outcomes from ``start`` on with a StoreError (caused by ``cause``,
    and with its code when it is a StoreError: a refusal says why)."""
    code = cause.code if isinstance(cause, StoreError) else None
    for i in range(start, len(outcomes)):
        if outcomes[i][0]:
            error = StoreError(message if cause is None else f"{message}: {cause}", code=code)
            error.__cause__ = cause
            outcomes[i] = (False, error)


_HELD_SWITCH_INTERVAL: Final = 0.0002  # seconds; see hold_clock_for_store

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
    # The held clock spins a task while the store's thread works; with the interpreter's default
    # switch interval (5 ms) that thread waits up to that long for the GIL at every step, and a
    # test that makes thousands of writes crawls. Hand the GIL over sooner while held.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, _HELD_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
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


class GroupWriter(Generic[C]):
    """The writer thread, its job queue and the delivery of outcomes into trio.

    Construct it inside a trio run, ``start()`` it, and ``await stop_writer()`` when done. A
    backend overrides ``run_batch`` and ``close_writer`` (and may override ``before_commit``).
    """

    def __init__(self, *, name: str, batch_max: int = 256, max_pending: int = 10_000) -> None:
        if batch_max < 1 or max_pending < 1:
            raise ValueError("batch_max and max_pending must be at least 1")
        self.batch_max = batch_max
        #: Transactions the writer thread has run, and jobs it has run: a debugging aid.
        self.batch_count = 0
        self.job_count = 0
        #: Called in the trio thread after each group commit with (seconds, jobs): for metrics.
        self.on_commit: Callable[[float, int], None] | None = None
        self.hold = ClockHold()
        self._token = trio.lowlevel.current_trio_token()
        self._jobs: queue.SimpleQueue[Job[C] | None] = queue.SimpleQueue()
        self._slots = trio.Semaphore(max_pending)
        self._closed = False
        self._thread = threading.Thread(target=self._writer_main, name=name, daemon=True)
        #: No thread: every batch runs in the trio thread (a backend sets it before ``start``).
        self.inline = False
        self._drain_due = False

    # -- what a backend provides ---------------------------------------------------------------

    def run_batch(self, batch: list[Job[C]]) -> list[Outcome]:
        """In the writer thread: run ``batch`` in one transaction (calling ``before_commit`` just
        before its COMMIT) and commit; one outcome per job, in order. Never raises."""
        raise NotImplementedError

    def before_commit(self, conn: C) -> None:
        """In the writer thread, inside a batch's transaction, after its jobs, before COMMIT.

        Raise to refuse the transaction: it is rolled back and each of its jobs fails with a
        ``StoreError`` caused by the exception. The default checks nothing.
        """

    def close_writer(self) -> None:
        """In the writer thread, as it exits: close the writer connection."""
        raise NotImplementedError

    # -- writes -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread, which owns the writer connection from now on."""
        if not self.inline:
            self._thread.start()

    async def write(self, fn: Callable[[C], T]) -> T:
        """Run ``fn`` in the writer thread inside a batch transaction; return once committed."""
        if self._closed:
            raise StoreClosed("the store is closed")
        await self._slots.acquire()
        if self._closed:
            self._slots.release()
            raise StoreClosed("the store is closed")
        done = trio.Event()
        box: list[Outcome] = []

        def on_done(ok: bool, value: object) -> None:
            self.hold.leave()
            box.append((ok, value))
            done.set()

        self.hold.enter()
        self._put(Job(fn, on_done))
        await done.wait()
        ok, value = box[0]
        if ok:
            return cast(T, value)
        raise cast(BaseException, value)

    def submit(
        self,
        fn: Callable[[C], T],
        on_done: Callable[[T | BaseException], None],
    ) -> None:
        """Hand ``fn`` to the writer without waiting; ``on_done`` later gets result or exception.

        ``on_done`` runs in the trio thread, outside any task (it must not await), after COMMIT;
        never re-entrantly. Call this from the trio thread only.
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
        self._put(Job(fn, deliver))

    def _put(self, job: Job[C]) -> None:
        self._jobs.put(job)
        if self.inline and not self._drain_due:
            self._drain_due = True
            self._token.run_sync_soon(self._drain)

    def _drain(self) -> None:
        """Inline, in the trio thread: run the queued jobs as one batch and deliver them (on a
        later tick than the one that queued them, never re-entrantly)."""
        self._drain_due = False
        batch: list[Job[C]] = []
        while len(batch) < self.batch_max:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                batch.append(job)
        if batch:
            started = time.perf_counter()
            outcomes = self.run_batch(batch)
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

    def _deliver(self, jobs: list[Job[C]], outcomes: list[Outcome], seconds: float) -> None:
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
                outcomes = self.run_batch(batch)
                seconds = time.perf_counter() - started
                self.batch_count += 1
                self.job_count += len(batch)
                try:
                    self._token.run_sync_soon(self._deliver, batch, outcomes, seconds)
                except trio.RunFinishedError:
                    _log.error("store_results_dropped", jobs=len(batch))
        finally:
            self.close_writer()

    # -- closing ------------------------------------------------------------------------------

    async def stop_writer(self) -> None:
        """Let pending writes finish and be delivered, then stop the writer thread (shielded)."""
        if self.inline:
            if not self._closed:
                self._closed = True
                while not self._jobs.empty():
                    self._drain()
                self.close_writer()
            return
        if not self._closed:
            self._closed = True
            self._jobs.put(_STOP)
        with trio.CancelScope(shield=True):
            if self._thread.is_alive():
                await trio.to_thread.run_sync(self._thread.join)
