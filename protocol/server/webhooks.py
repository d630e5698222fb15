"""The webhook deliverer: posts the store's outbox to the webhooks, signed, in order per chat.

Theory of operation
-------------------
The engine queues desk events in the store's outbox in the same transactions that decide them
(``engine.store.outbox``). The :class:`Deliverer` is one task of the daemon that empties it:

Rule 1. It asks the store what is due (``outbox_due``): of each (webhook, chat) only the oldest
        pending row, so a chat's next event waits until the previous one is delivered or given
        up. Each due row is posted by a task of its own, at most ``parallel`` at once, and never
        two of the same (webhook, chat) at once.
Rule 2. A delivery is one HTTP POST of the row's JSON body with the headers of SPEC.md
        ("Webhooks"): ``X-Helpline-Event``, ``X-Helpline-Delivery`` (the same on every attempt, to
        deduplicate) and ``X-Helpline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
        "<t>.<body>" under the webhook's secret>``. Any 2xx answer within ``timeout`` is
        delivered; anything else (another status, a refused connection, a timeout) fails it.
Rule 3. A failed attempt is tried again after an exponential backoff with jitter: the n-th
        failure waits a random time between half and all of ``min(max_delay, base_delay *
        2**(n-1))``. Once ``max_age`` has passed since the row was queued it is given up: marked
        failed with its last error, for an admin to see and replay (``webhook_failures``,
        ``webhook_replay``). The last attempt is made at the end of ``max_age``, not skipped.
Rule 4. Every outcome is committed to the store before the chat's next event is due, and the
        store is the truth: after a restart the deliverer picks up where the outbox stands. A
        post whose answer was lost (the process stopped in between) is sent again: delivery is at
        least once, and the delivery id makes it exactly once for a receiver that deduplicates.

The deliverer wakes when a post finishes and otherwise looks every ``poll_interval`` seconds (a
small read); new events are found at the next look.

Rule 5. Delivered rows are deleted once they are ``retention`` seconds old (7 days by default),
        by the deliverer: it purges when it starts and then every ``_PURGE_EVERY`` seconds (or
        a quarter of ``retention``, if shorter). Failed rows are not purged: they wait for an
        admin.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import httpx
import structlog
import trio

from engine import Engine, Store, StoreError
from engine.model.desk_events import Delivery, DeliveryState

__all__ = ["Deliverer", "DeliveryPolicy", "backoff", "run_deliverer", "sign", "verify"]

log = structlog.get_logger("helpline.webhooks")

USER_AGENT: Final = "helpline-webhooks/1"
_JITTER: Final = random.Random()
_PURGE_EVERY: Final = 3600.0  # seconds between two purges of delivered rows (at most)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPolicy:
    """How webhooks are delivered: timeouts, parallelism, retry backoff and when to give up."""

    timeout: float = 10.0  # seconds for one POST, connect to answer
    parallel: int = 8  # posts in flight at once (different chats or webhooks)
    base_delay: float = 1.0  # seconds before the first retry (at most; jitter halves it at worst)
    max_delay: float = 600.0  # the backoff stops growing here
    max_age: float = 86_400.0  # seconds after queueing when a delivery is given up
    poll_interval: float = 1.0  # seconds between two looks at the outbox
    retention: float = 7 * 86_400.0  # seconds a delivered event is kept in the outbox

    def __post_init__(self) -> None:
        for name in ("timeout", "base_delay", "max_delay", "max_age", "poll_interval", "retention"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < float("inf")):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.parallel < 1:
            raise ValueError(f"parallel must be at least 1, not {self.parallel}")


def backoff(attempts: int, policy: DeliveryPolicy, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (Rule 3)."""
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** max(attempts - 1, 0))
    return ceiling / 2 + (rng or _JITTER).uniform(0, ceiling / 2)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Helpline-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance: float = 300.0) -> bool:
    """What a receiver does: check the signature, and that it is recent (against replays)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Deliverer:
    """Posts due outbox rows until cancelled (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        client: httpx.AsyncClient,
        *,
        now: Callable[[], float],
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._now = now
        self.policy = policy or DeliveryPolicy()
        self._busy: set[tuple[str, str]] = set()  # (webhook, chat) pairs being posted
        self._settled: set[int] = set()  # rows recorded while the outbox was being read
        self._wake = trio.Event()
        self._next_purge = trio.current_time()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                self._wake = trio.Event()
                try:
                    await self._purge()
                    self._start_due(nursery, await self._due())
                except StoreError as exc:  # looked at again at the next tick
                    log.warning("webhook_outbox_unreadable", error=str(exc))
                with trio.move_on_after(self.policy.poll_interval):
                    await self._wake.wait()

    async def _purge(self) -> None:
        """Delete the delivered rows older than the retention, when a purge is due (Rule 5)."""
        if trio.current_time() < self._next_purge:
            return
        retention = self.policy.retention
        self._next_purge = trio.current_time() + min(_PURGE_EVERY, retention / 4)
        purged = await self._store.outbox_purge(delivered_before=self._now() - retention)
        if purged:
            log.info("webhook_outbox_purged", delivered=purged)

    async def _due(self) -> list[Delivery]:
        room = self.policy.parallel - len(self._busy)
        if room <= 0:
            return []
        # A row settled while this read runs may still look pending in its snapshot.
        self._settled = set()
        return await self._store.outbox_due(self._now(), limit=room + len(self._busy))

    def _start_due(self, nursery: trio.Nursery, due: list[Delivery]) -> None:
        for delivery in due:
            key = (delivery.webhook_id, delivery.chat_id)
            if delivery.id in self._settled or key in self._busy:
                continue
            if len(self._busy) >= self.policy.parallel:
                continue
            self._busy.add(key)
            nursery.start_soon(self._deliver, delivery, key)

    async def _deliver(self, delivery: Delivery, key: tuple[str, str]) -> None:
        try:
            error = await self._post(delivery)
            await self._record(delivery, error)
            self._settled.add(delivery.id)
        except StoreError as exc:  # not recorded: still pending, posted again (Rule 4)
            log.warning("webhook_outcome_not_stored", delivery=delivery.delivery_id, error=str(exc))
        finally:
            self._busy.discard(key)
            self._wake.set()

    async def _post(self, delivery: Delivery) -> str:
        """Post once; returns "" when delivered, else what went wrong."""
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Helpline-Event": delivery.kind.value,
            "X-Helpline-Delivery": delivery.delivery_id,
            "X-Helpline-Signature": sign(delivery.secret, int(self._now()), body),
        }
        try:
            response = await self._client.post(
                delivery.url, content=body, headers=headers, timeout=self.policy.timeout
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return ""
        return f"HTTP {response.status_code}"

    async def _record(self, delivery: Delivery, error: str) -> None:
        now = self._now()
        attempts = delivery.attempts + 1
        if not error:
            state, next_attempt = DeliveryState.DELIVERED, now
        else:
            give_up_at = delivery.queued_at + self.policy.max_age
            if now >= give_up_at:
                state, next_attempt = DeliveryState.FAILED, now
            else:
                state = DeliveryState.PENDING
                next_attempt = min(now + backoff(attempts, self.policy), give_up_at)
        await self._store.outbox_mark(
            delivery.id,
            state=state,
            attempts=attempts,
            next_attempt=next_attempt,
            error=error,
            now=now,
        )
        log.info(
            "webhook_delivery",
            delivery=delivery.delivery_id,
            webhook=delivery.webhook_id,
            chat_id=delivery.chat_id,
            kind=delivery.kind.value,
            attempts=attempts,
            state=state.value,
            error=error,
        )


async def run_deliverer(
    engine: Engine,
    policy: DeliveryPolicy,
    *,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Deliver ``engine``'s outbox until the scope handed to ``task_status`` is cancelled."""
    with trio.CancelScope() as scope:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            deliverer = Deliverer(engine.store, client, now=engine.now, policy=policy)
            task_status.started(scope)
            await deliverer.run()
