"""What the router holds back until the journal has the change that caused it.

Theory of operation:

Rule 1. Nothing the router decides is seen outside it before it is durable. While the router
        handles a message (and the timers and queue moves that follow), every push into an outbox,
        tell to a session and answer to an ask is collected here instead of done.
Rule 2. At the end of the loop iteration the collected effects become one batch. If the iteration
        changed a journaled record, the batch waits for that write's commit; if not, it waits only
        for the batches before it. Batches are released strictly in order (the store's writer
        commits jobs in order too), so every participant sees events in the order they were
        decided, and an agent never hears an answer before the session was told what it needs.
Rule 3. The commit's outcome arrives in a store callback (in the trio thread, outside any task);
        the callback only records it and wakes the router, which releases the batch in its own
        loop, where a release may safely change the router's state.
Rule 4. A batch whose write failed is released all the same (the router keeps what it decided),
        except that an ask answered by a handler that changed a journaled record gets
        `EngineError("store_unavailable")` instead of its value, and its `on_fail` runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

from ..model.errors import EngineError
from . import messages as m

_PENDING = object()  # a batch's outcome while its write is in flight


@dataclass(slots=True, eq=False)
class _Answer:
    reply: m.Reply
    value: object
    durable: bool = False  # the value reports a change that must be committed first
    on_fail: Callable[[], None] | None = None
    then: Callable[[Callable[[], None]], None] | None = None  # hands the answering on (success)


@dataclass(slots=True, eq=False)
class Batch:
    """One loop iteration's effects, and the outcome of the write they wait for."""

    effects: list[Callable[[], None] | _Answer]
    job: object = None  # what the write covered, for the router to retry after a failure
    outcome: object = None  # None: committed (or nothing to wait for); an exception: failed

    @property
    def failed(self) -> bool:
        return isinstance(self.outcome, BaseException)


@dataclass(slots=True, eq=False)
class Effects:
    """The open list of held-back effects and the queue of batches waiting for their commit."""

    wake: Callable[[], None] = lambda: None
    _open: list[Callable[[], None] | _Answer] = field(default_factory=list)
    _queue: deque[Batch] = field(default_factory=deque)

    def do(self, action: Callable[[], None]) -> None:
        """Hold back an action (a push or a tell) until this iteration is durable."""
        self._open.append(action)

    def answer(
        self,
        reply: m.Reply,
        value: object,
        on_fail: Callable[[], None] | None = None,
        then: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """Hold back the answer to an ask.

        `then`, if given, is handed the answering when the batch is released and decides when to
        do it (the router uses it to answer only after tells still waiting for a mailbox).
        """
        self._open.append(_Answer(reply, value, on_fail=on_fail, then=then))

    def mark(self) -> int:
        return len(self._open)

    def durable_since(self, mark: int) -> None:
        """The answers collected since `mark` report a change: they fail if its write fails."""
        for effect in self._open[mark:]:
            if isinstance(effect, _Answer):
                effect.durable = True

    @property
    def waiting(self) -> int:
        """How many batches are not released yet."""
        return len(self._queue)

    def seal(self, job: object = None) -> Batch | None:
        """End of an iteration: make the open effects a batch; `job` is the write it waits for.

        Returns the batch when it waits for a write (the caller submits the write and calls
        `committed` from its callback), else None.
        """
        if job is None and not self._open:
            return None
        batch = Batch(self._open, job=job, outcome=_PENDING if job is not None else None)
        self._open = []
        self._queue.append(batch)
        return batch if job is not None else None

    def committed(self, batch: Batch, outcome: object) -> None:
        """The store's callback: record the outcome and wake the router."""
        batch.outcome = outcome
        self.wake()

    def ready(self) -> bool:
        """Whether the oldest batch can be released now."""
        return bool(self._queue) and self._queue[0].outcome is not _PENDING

    def due(self) -> Iterator[Batch]:
        """Take the batches that can be released, oldest first."""
        while self.ready():
            yield self._queue.popleft()

    @staticmethod
    def release(batch: Batch) -> None:
        """Carry out a batch's effects, in the order they were collected."""
        for effect in batch.effects:
            if not isinstance(effect, _Answer):
                effect()
            elif batch.failed and effect.durable and not isinstance(effect.value, EngineError):
                m.answer(
                    effect.reply,
                    EngineError(
                        "store_unavailable",
                        "the change could not be saved (the database is failing); it may not"
                        " survive a restart: check the chat and try again",
                    ),
                )
                if effect.on_fail is not None:
                    effect.on_fail()
            elif effect.then is not None:
                effect.then(partial(m.answer, effect.reply, effect.value))
            else:
                m.answer(effect.reply, effect.value)
