"""Operating the desk in Chromium: the admin page's webhooks, and the console's supervisor view.

The daemon of this module gives up a webhook delivery after two seconds (``[webhooks] max_age``),
so that a failure shows up while the test watches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from protocol import connect

from .conftest import CONFIG, OUTPUT, Desk, Tab, running_desk

pytest.importorskip("playwright", reason="the playwright package is not installed")
from playwright.sync_api import expect

FAST_WEBHOOKS = (
    CONFIG
    + """
[webhooks]
max_age = 2
base_delay = 0.2
max_delay = 0.5
poll_interval = 0.2
timeout = 1
"""
)


@pytest.fixture(scope="module")
def ops_desk(tmp_path_factory: pytest.TempPathFactory, web_dist: Path) -> Iterator[Desk]:
    yield from running_desk(tmp_path_factory.mktemp("operations"), FAST_WEBHOOKS)


def open_missed_chat(desk: Desk, department: str = "billing") -> str:
    """A visitor opens a chat nobody can take (nobody of `department` is online): missed."""

    async def go() -> str:
        async with connect(desk.daemon.url, role="visitor") as visitor:
            reply = await visitor.request(
                "open_chat", department=department, name="Wes", question="Anyone?"
            )
            return str(reply["chat_id"])

    return trio.run(go)


def admin_page(tab: Tab, desk: Desk) -> object:
    page = tab.page
    page.goto(f"{desk.base}/admin")
    page.fill("#token", desk.admin_token)
    page.click("button:has-text('Sign in')")
    expect(page.locator("#webhooks h2")).to_have_text("Webhooks")
    return page


class TestWebhooks:
    def test_add_list_fail_replay_remove(
        self, ops_desk: Desk, open_tab: Callable[..., Tab]
    ) -> None:
        """An admin adds a webhook for one department and two events; it is listed; a receiver
        that does not answer makes a failed delivery, shown with its error, and replayable."""
        tab = open_tab(1280, 1400)
        page = admin_page(tab, ops_desk)
        hooks = page.locator("#webhooks")  # type: ignore[attr-defined]
        expect(hooks.locator(".empty-table").first).to_contain_text("No webhooks yet")
        hooks.locator("input[name=url]").fill("http://127.0.0.1:9/helpline")
        hooks.locator("select[name=department]").select_option("billing")
        secret = hooks.locator("input[name=secret]").input_value()
        assert re.fullmatch(r"[0-9a-f]{32}", secret)
        for kind in ("chat.accepted", "chat.transferred", "chat.ended", "rating.given"):
            hooks.locator(f"input[value='{kind}']").uncheck()
        hooks.locator("button:has-text('Add webhook')").click()
        row = hooks.locator("tr[data-webhook]")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("http://127.0.0.1:9/helpline")
        expect(row).to_contain_text("Billing")
        for kind in ("chat.opened", "chat.missed", "ticket.created"):
            expect(row).to_contain_text(kind)
        expect(row).not_to_contain_text("rating.given")
        expect(row.locator(".pill")).to_have_text("none")

        chat_id = open_missed_chat(ops_desk)
        failed = hooks.locator("table.failures tbody tr")
        for _ in range(40):  # the deliverer gives up after 2 s; the page shows what it reads
            page.reload()  # type: ignore[attr-defined]
            expect(hooks.locator("tr[data-webhook]")).to_have_count(1)
            if failed.count() >= 3:
                break
            page.wait_for_timeout(500)  # type: ignore[attr-defined]
        expect(failed).to_have_count(3)
        first = failed.first
        expect(first).to_contain_text("chat.opened")
        expect(first).to_contain_text(chat_id[:8])
        expect(first.locator("td.error-text")).to_contain_text("ConnectError")
        expect(hooks.locator("tr[data-webhook] .pill")).to_have_text("3 failed")
        OUTPUT.mkdir(exist_ok=True)
        hooks.screenshot(path=str(OUTPUT / "admin-webhooks.png"))

        first.locator("button:has-text('Replay')").click()
        expect(page.locator(".toast").last).to_contain_text("1 delivery")  # type: ignore[attr-defined]
        expect(failed).to_have_count(2)
        hooks.locator("tr[data-webhook] button:has-text('Remove')").click()
        expect(hooks.locator("tr[data-webhook]")).to_have_count(1)  # the question dismissed
        assert ["Remove the webhook"] == [d[:18] for d in tab.dialogs]
        assert [] == tab.errors
