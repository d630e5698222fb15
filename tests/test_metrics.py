"""Metrics: what a scrape of the daemon reports follows what happened in the engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio.testing import MockClock

from engine import Engine, Histogram, Visitor
from protocol import ClientError, ServerStats, render_metrics
from protocol.server.settings import ConfigError, parse_config

from .gateway_harness import accept, open_chat, open_gateway
from .helpers import offer_for
from .test_http import get

VISITOR = Visitor(name="Vera", email="vera@example.com")


async def scrape(
    engine: Engine, server: ServerStats | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = await render_metrics(engine, server or ServerStats(), ["agent", "visitor"])
    samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


class TestScrape:
    async def test_counts_follow_a_chat(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Offers made and accepted, the wait to accept, chats by state and commits are counted."""
        async with engine.connect_agent("ann") as ann, engine.connect_agent("bob") as bob:
            await ann.set_status("online")
            await bob.set_status("online")
            async with engine.open_chat(department="sales", question="?", visitor=VISITOR) as v:
                offer = await offer_for(ann, v.chat_id)
                await trio.sleep(7)
                await ann.accept(offer.offer_id)
                got = await scrape(engine)
                assert got[("helpline_offers_total", (("event", "made"),))] == 2
                assert got[("helpline_offers_total", (("event", "accepted"),))] == 1
                assert got[("helpline_offers_total", (("event", "withdrawn"),))] == 1
                assert got[("helpline_chats", (("department", "sales"), ("state", "active")))] == 1
                assert got[("helpline_agents_online", (("department", "sales"),))] == 2
                assert got[("helpline_connections", (("role", "agent"),))] == 1
                assert got[("helpline_accept_wait_seconds_count", ())] == 1
                assert got[("helpline_accept_wait_seconds_bucket", (("le", "5.0"),))] == 0
                assert got[("helpline_accept_wait_seconds_bucket", (("le", "10.0"),))] == 1
                assert got[("helpline_journal_commit_seconds_count", ())] >= 1
                await ann.end_chat(v.chat_id)
        got = await scrape(engine)
        assert got[("helpline_tickets_total", (("kind", "transcript"),))] == 1
        assert got[("helpline_tickets_total", (("kind", "missed"),))] == 0

    async def test_missed_and_declined(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A declined offer and a chat nobody could take show as declined and as a missed ticket."""
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            async with engine.open_chat(department="sales", question="?", visitor=VISITOR) as v:
                offer = await offer_for(ann, v.chat_id)
                await ann.decline(offer.offer_id)
                await trio.sleep(200)
        got = await scrape(engine)
        assert got[("helpline_offers_total", (("event", "declined"),))] == 1
        assert got[("helpline_tickets_total", (("kind", "missed"),))] == 1

    async def test_server_counts(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Error replies by code and slow-consumer closes come from the gateway's counters."""
        server = ServerStats()
        server.errors["rate_limited"] += 3
        server.closes[4000] += 2
        server.delivery.observe(0.0002)
        got = await scrape(engine, server)
        assert got[("helpline_error_replies_total", (("code", "rate_limited"),))] == 3
        assert got[("helpline_slow_consumer_closes_total", ())] == 2
        assert got[("helpline_delivery_seconds_count", ())] == 1


def test_histogram_buckets_are_cumulative() -> None:
    """Each bucket counts every observation at or below its bound; +Inf counts them all."""
    h = Histogram((1.0, 2.0))
    for value in (0.5, 1.0, 1.5, 9.0):
        h.observe(value)
    assert h.cumulative() == [(1.0, 2), (2.0, 3), (float("inf"), 4)]
    assert (h.count, h.sum) == (4, 12.0)


async def test_ops_docs_name_only_real_metrics(engine: Engine, autojump_clock: MockClock) -> None:
    """Every metric the alert rules and the dashboard in docs/ops use is one a scrape exports."""
    text = await render_metrics(engine, ServerStats(), [])
    exported = set()
    for family in text_string_to_metric_families(text.decode()):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        exported |= {family.name + s for s in suffixes.get(family.type, [""])}
    docs = Path(__file__).parent.parent / "docs" / "ops"
    used = set()
    for path in (docs / "alerts.yml", docs / "grafana-dashboard.json"):
        used |= set(re.findall(r"\bhelpline_[a-z_]+", path.read_text()))
    assert used, "docs/ops names no metric"
    assert used - exported == set()


async def test_metrics_over_http(engine: Engine, autojump_clock: MockClock) -> None:
    """GET /metrics on the daemon's port answers the exposition format, with the connections by
    role and the oldest queued chat's wait, and counts the error replies the gateway sent."""
    async with (
        open_gateway(engine) as gw,
        gw.agent("cy", online=False) as cy,
        gw.connect(role="visitor") as visitor,
    ):
        await cy.request("set_status", status="online")
        await visitor.request("open_chat", department="support", name="V", question="one")
        async with gw.connect(role="visitor") as other:
            await other.request("open_chat", department="support", name="W", question="two")
            await trio.sleep(9)
            with pytest.raises(ClientError):
                await other.request("accept", offer_id="not-yours")
            status, headers, body = await get(gw, "/metrics")
    assert 200 == status
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    got = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert got[("helpline_connections", (("role", "agent"),))] == 1
    assert got[("helpline_connections", (("role", "visitor"),))] == 2
    assert got[("helpline_queue_length", (("department", "support"),))] == 1
    assert 9 <= got[("helpline_queue_oldest_wait_seconds", (("department", "support"),))] < 10
    assert sum(v for (name, _), v in got.items() if name == "helpline_error_replies_total") == 1


async def test_metrics_switched_off(engine: Engine, autojump_clock: MockClock) -> None:
    """`[metrics] enabled = false`: /metrics is 404, and neither the visitor's lines to the
    agents nor the store's commits are timed."""
    settings = parse_config({"metrics": {"enabled": False}}).server
    assert settings.metrics is False
    async with open_gateway(engine, settings) as gw, gw.agent("cy") as cy, gw.visitor() as vera:
        chat_id = await open_chat(vera, department="support")
        await accept(cy, chat_id)
        commits = engine.stats.commit_batch.count
        await vera.request("send", text="hello")
        await cy.wait_for("message")
        status, _, _ = await get(gw, "/metrics")
        assert 404 == status
        assert 0 == gw.gateway.stats.delivery.count
        assert commits == engine.stats.commit_batch.count
    with pytest.raises(ConfigError):
        parse_config({"metrics": {"enabled": "no"}})
    with pytest.raises(ConfigError):
        parse_config({"metrics": {"on": True}})
