"""The live chats' lines on their way to the journal: many chats' lines share one write job.

``append_entries`` of the store contract puts a chat's new lines here; the first line of a group
submits one job to the writer, and every line that arrives before the writer thread takes that job
joins it. Each caller returns once the job's transaction is committed (or raises its error).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import trio

from . import journal
from .contract import Connection

__all__ = ["LineQueue"]


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
