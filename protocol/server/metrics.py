"""The daemon's metrics: what the engine and the gateway count, in the Prometheus text format.

Theory of operation
-------------------
Counting and formatting are kept apart. On the message path the engine (``engine.Stats``) and the
gateway (:class:`ServerStats`, one per gateway) only add to plain integers and fixed-bucket
histograms: no lock, no await, nothing allocated. A scrape of ``GET /metrics`` is the only moment
anything is formatted: :func:`render` asks the router for one consistent picture (chats by state,
queues, agents), reads the counters, and lets ``prometheus_client`` write the exposition format from
metric families built for this one scrape. (``prometheus_client``'s own metric objects take a lock
on every update, which the message path must not pay.)

Names follow Prometheus conventions: a ``helpline_`` prefix, ``_total`` for counters, base units
(``_seconds``). ``docs/ops/`` holds alert rules and a dashboard built on these names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from engine import Engine, Histogram, RouterView

from .http import NO_STORE, HttpReply, HttpRequest, Routes
from .registry import Registry

__all__ = ["CONTENT_TYPE", "ServerStats", "metrics_route", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DELIVERY_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


@dataclass(slots=True, eq=False)
class ServerStats:
    """What the gateway counts; written by connection tasks in trio's thread only."""

    #: error replies sent, by error code
    errors: Counter[str] = field(default_factory=Counter)
    #: connections closed by the server, by close code (4000 is a slow consumer)
    closes: Counter[int] = field(default_factory=Counter)
    #: seconds from a chat line being numbered to its frame being queued for an agent
    delivery: Histogram = field(default_factory=lambda: Histogram(_DELIVERY_SECONDS))


async def render(
    engine: Engine,
    server: ServerStats,
    roles: Iterable[str],
    started_at: Callable[[str], float | None] = lambda chat_id: None,
) -> bytes:
    """One scrape: the exposition text of every metric, as of now.

    `roles` has one item per open connection (its role); `started_at` tells when a chat was
    requested (wall-clock seconds), for the wait of each queue's oldest chat.
    """
    view = await engine.inspect()
    now = engine.now()
    waits = {}
    for department, queue in view.queues.items():
        since = started_at(queue[0]) if queue else None
        waits[department] = 0.0 if since is None else max(0.0, now - since)
    scrape = _Scrape(engine, server, view, Counter(roles), waits)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(scrape))
    return generate_latest(registry)


@dataclass(frozen=True, slots=True)
class _Scrape:
    engine: Engine
    server: ServerStats
    view: RouterView
    roles: Counter[str]
    waits: dict[str, float]


class _Collector(Collector):
    def __init__(self, scrape: _Scrape) -> None:
        self._scrape = scrape

    def collect(self) -> Iterable[Metric]:
        yield from _live(self._scrape)
        yield from _counted(self._scrape)


def _gauge(
    name: str, doc: str, labels: list[str], values: Iterable[tuple[list[str], float]]
) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family


def _counter(
    name: str, doc: str, labels: list[str], values: Iterable[tuple[list[str], float]]
) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family


def _histogram(name: str, doc: str, h: Histogram) -> Metric:
    family = HistogramMetricFamily(name, doc)
    buckets = [("+Inf" if b == float("inf") else repr(b), n) for b, n in h.cumulative()]
    family.add_metric([], buckets, h.sum)
    return family


def _live(scrape: _Scrape) -> Iterator[Metric]:
    view = scrape.view
    yield _gauge(
        "helpline_connections",
        "Open client connections by role.",
        ["role"],
        (([role], n) for role, n in sorted(scrape.roles.items())),
    )
    by_state: Counter[tuple[str, str]] = Counter(
        (c.state, c.department) for c in view.chats.values()
    )
    yield _gauge(
        "helpline_chats",
        "Live chats by state and department.",
        ["state", "department"],
        (([s, d], n) for (s, d), n in sorted(by_state.items())),
    )
    yield _gauge(
        "helpline_queue_length",
        "Chats waiting in a department's queue.",
        ["department"],
        (([d], len(q)) for d, q in sorted(view.queues.items())),
    )
    yield _gauge(
        "helpline_queue_oldest_wait_seconds",
        "How long the oldest chat in a department's queue has waited (0 when empty).",
        ["department"],
        (([d], scrape.waits.get(d, 0.0)) for d in sorted(view.queues)),
    )
    online: Counter[str] = Counter()
    for agent in view.agents.values():
        if agent.status == "online" and agent.connected:
            online.update(agent.departments)
    departments = sorted(
        {d for a in view.agents.values() for d in a.departments} | set(view.queues)
    )
    yield _gauge(
        "helpline_agents_online",
        "Agents online and connected, by department.",
        ["department"],
        (([d], online[d]) for d in departments),
    )
    yield _gauge(
        "helpline_mailbox_deepest",
        "Messages waiting in the deepest mailbox of each kind of actor.",
        ["actor"],
        (([k], n) for k, n in sorted(scrape.engine.mailbox_depths().items())),
    )


def _counted(scrape: _Scrape) -> Iterator[Metric]:
    stats, server = scrape.engine.stats, scrape.server
    yield _counter(
        "helpline_offers",
        "Offers to agents (one per agent offered) by event: made, accepted, declined, expired,"
        " withdrawn.",
        ["event"],
        (([e], stats.offers[e]) for e in ("made", "accepted", "declined", "expired", "withdrawn")),
    )
    yield _counter(
        "helpline_tickets",
        "Chats ended, by the kind of ticket they became.",
        ["kind"],
        (([k], stats.tickets[k]) for k in ("transcript", "missed", "failed")),
    )
    yield _counter(
        "helpline_error_replies",
        "Error replies sent to clients, by error code.",
        ["code"],
        (([code], n) for code, n in sorted(server.errors.items())),
    )
    yield _counter(
        "helpline_slow_consumer_closes",
        "Connections closed because they did not read their events fast enough (close 4000).",
        [],
        [([], server.closes[4000])],
    )
    yield _counter(
        "helpline_router_loop_turns",
        "Iterations of the router's loop; flat under load means a stalled router.",
        [],
        [([], stats.loop_turns)],
    )
    yield _histogram(
        "helpline_accept_wait_seconds",
        "Seconds from a visitor's request to an agent's accept.",
        stats.accept_wait,
    )
    yield _histogram(
        "helpline_delivery_seconds",
        "Seconds from a chat line being numbered to its frame being queued for an agent.",
        server.delivery,
    )
    yield _histogram(
        "helpline_journal_commit_seconds",
        "Seconds one group commit of the store took.",
        stats.commit_seconds,
    )
    yield _histogram(
        "helpline_journal_commit_batch_jobs",
        "Writes carried by one group commit of the store.",
        stats.commit_batch,
    )


def metrics_route(routes: Routes, engine: Engine, registry: Registry, server: ServerStats) -> None:
    """Serve ``GET /metrics`` from ``routes``."""

    def started_at(chat_id: str) -> float | None:
        facts = registry.chat(chat_id)
        return None if facts is None else facts.started_at

    async def metrics(request: HttpRequest) -> HttpReply:
        roles = [role.value for c in registry.connections if (role := getattr(c, "role", None))]
        body = await render(engine, server, roles, started_at)
        return HttpReply(status=200, body=body, content_type=CONTENT_TYPE, cache=NO_STORE)

    routes.add("/metrics", metrics)
