"""Several nodes in Chromium: a console served by the node that holds the desk, that node killed,
and the console reconnecting through the other node (it learnt it from ``/nodes``).

Real ``helpline serve --node`` processes on PostgreSQL (a short lease, as in tests/test_nodes.py);
skips without HELPLINE_TEST_POSTGRES.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from bench._cluster import Cluster
from protocol import connect

from ..postgres import fresh_schema
from .conftest import CONFIG, Tab
from .test_pages import set_online

pytest.importorskip("playwright", reason="the playwright package is not installed")
from playwright.sync_api import expect


@pytest.fixture
def cluster(tmp_path: Path, web_dist: Path) -> Iterator[Cluster]:
    with fresh_schema() as store:
        nodes = Cluster(tmp_path, store, config=CONFIG)
        try:
            yield nodes
        finally:
            nodes.kill_all()


def test_a_console_reconnects_through_another_node(
    cluster: Cluster, open_tab: Callable[..., Tab]
) -> None:
    """The console's node dies; the console reconnects through the other node, which took the
    desk over, and still gets offers."""
    cluster.start_many(["n0", "n1"])
    first = cluster.wait_holder()
    other = "n1" if first == "n0" else "n0"
    token = cluster.token("ann")
    tab = open_tab()
    page = tab.page
    with page.expect_response(lambda r: r.url.endswith("/nodes")) as listed:
        page.goto(cluster.url(first).replace("ws://", "http://") + "/console")
    assert listed.value.json() == {"urls": [cluster.url(first), cluster.url(other)]}
    page.fill("#token", token)
    page.click("button:has-text('Sign in')")
    expect(page.locator(".topbar")).to_be_visible()
    set_online(page)

    with page.expect_websocket(lambda socket: socket.url.rstrip("/") == cluster.url(other)):
        cluster.kill(first)  # the console tries the other node, which it learnt from /nodes
    assert cluster.wait_holder(other_than=first) == other
    expect(page.locator(".topbar .connection")).to_be_hidden()  # back, through the other node
    set_online(page)  # whatever the desk made of her absence

    seen = threading.Event()  # the visitor stays until the console has shown the offer

    async def visitor_asks() -> None:
        async with connect(cluster.url(other), role="visitor") as visitor:
            await visitor.request(
                "open_chat", department="support", name="Nia", question="Still there?"
            )
            await trio.to_thread.run_sync(seen.wait, 60)

    visitor = threading.Thread(target=trio.run, args=(visitor_asks,))
    visitor.start()
    try:
        expect(page.locator(".offer", has_text="Still there?")).to_contain_text("Nia")
    finally:
        seen.set()
        visitor.join()
    assert tab.errors == []
