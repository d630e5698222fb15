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

from .conftest import CONFIG, OUTPUT, Desk, Tab, admin_requests, running_desk
from .test_pages import (
    accept_offer,
    agent_says,
    open_widget_chat,
    set_online,
    sign_in,
    visitor_says,
)

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
        tab.accept = True
        failed.first.locator("button:has-text('Discard')").click()
        expect(failed).to_have_count(1)
        expect(hooks.locator("tr[data-webhook] .pill")).to_have_text("1 failed")
        hooks.locator("tr[data-webhook] button:has-text('Remove')").click()
        expect(hooks.locator("tr[data-webhook]")).to_have_count(0)
        expect(failed).to_have_count(0)  # its deliveries went with it
        assert [] == tab.errors


def supervisor_token(desk: Desk, name: str, *departments: str) -> str:
    request = {"role": "supervisor", "name": name, "departments": list(departments)}
    [reply] = admin_requests(desk.daemon.url, desk.admin_token, ("token_issue", request))
    return str(reply["token"])


class TestSupervisor:
    def test_monitor_and_whisper(self, ops_desk: Desk, open_tab: Callable[..., Tab]) -> None:
        """A supervisor sees the live chats pushed to its desk, listens in to one and whispers:
        the agent sees the whisper marked internal, the visitor's widget nothing of it."""
        desk = ops_desk
        ann_tab, sue_tab, visitor_tab = open_tab(), open_tab(1440, 860), open_tab(1100, 760)
        ann = sign_in(ann_tab, desk, "ann")
        set_online(ann)
        sue = sue_tab.page
        sue.goto(f"{desk.base}/console")
        sue.fill("#token", supervisor_token(desk, "Sue Summers", "support", "sales"))
        sue.click("button:has-text('Sign in')")
        expect(sue.locator(".supervisor-pill")).to_have_text("Supervisor")
        expect(sue.locator(".desk-empty")).to_be_visible()

        visitor = open_widget_chat(
            visitor_tab, f"{desk.base}/demo", "Mina", "Where is my parcel?", "mina@example.com"
        )
        row = sue.locator(".desk-row", has_text="Where is my parcel?")
        expect(row).to_be_visible()  # pushed: the page never asks again
        expect(row.locator(".pill")).to_have_text(re.compile("new|queued|offered"))
        accept_offer(ann, "Where is my parcel?")
        expect(row.locator(".pill")).to_have_text("active")
        expect(row).to_contain_text("Ann Archer")
        visitor_says(visitor, "It was due on Monday.")
        agent_says(ann, "Let me look it up for you.")
        waiting = open_widget_chat(
            open_tab(), f"{desk.base}/demo", "Kenji", "Do you sell gift cards?"
        )
        expect(sue.locator(".desk-row.waiting", has_text="gift cards")).to_be_visible()
        del waiting

        row.click()
        transcript = sue.locator(".monitor-pane .transcript")
        expect(transcript).to_contain_text("It was due on Monday.")
        expect(transcript).to_contain_text("Let me look it up for you.")
        expect(sue.locator(".bar.monitoring")).to_contain_text("nobody in the chat is told")
        sue.fill(".supervisor-composer textarea", "Offer free shipping on the next order.")
        sue.press(".supervisor-composer textarea", "Enter")
        expect(transcript.locator(".entry.whisper")).to_contain_text("Offer free shipping")
        visitor_says(visitor, "Any news?")
        expect(transcript).to_contain_text("Any news?")  # new lines arrive as they are written

        whisper = ann.locator(".transcript .entry.whisper")
        expect(whisper).to_contain_text("Offer free shipping on the next order.")
        expect(whisper).to_contain_text("Whisper from Sue Summers")
        expect(whisper.locator(".chip.internal")).to_have_text("internal")
        agent_says(ann, "It ships today, and the next delivery is on us.")
        expect(visitor.locator(".line", has_text="next delivery is on us")).to_be_visible()
        expect(visitor.locator(".line", has_text="free shipping")).to_have_count(0)
        expect(visitor.locator("text=Sue")).to_have_count(0)

        sue.click("button:has-text('Routing trace')")
        trace = sue.locator("dialog .trace")
        expect(trace).to_contain_text("accepted")
        expect(trace.locator(".candidates").first).to_contain_text("ann")
        sue_tab.shot("supervisor-trace")
        sue.locator("dialog button:has-text('Close')").click()
        expect(sue.locator(".desk-row.selected .chip.listening")).to_be_visible()
        sue_tab.shot("supervisor")
        ann_tab.shot("console-whisper")
        visitor_tab.shot("widget-no-whisper")

        sue.click("button:has-text('Reassign…')")
        expect(sue.locator("dialog select[name=department]")).to_be_visible()
        sue_tab.shot("supervisor-reassign")
        sue.locator("dialog button:has-text('Cancel')").click()

        # barging in: now the visitor is told, and sees what the supervisor writes
        sue.click("button:has-text('Barge in')")
        expect(sue.locator(".bar.barged")).to_be_visible()
        expect(
            visitor.locator(".line.system", has_text="Sue Summers joined the chat")
        ).to_be_visible()
        expect(
            ann.locator(".entry.system", has_text="Sue Summers (supervisor) joined")
        ).to_be_visible()
        sue.fill(".supervisor-composer textarea", "Hello Mina, I am Ann's team lead.")
        sue.click("button:has-text('Send to chat')")
        expect(transcript.locator(".entry.mine")).to_contain_text("team lead")
        expect(visitor.locator(".line", has_text="team lead")).to_be_visible()
        expect(ann.locator(".transcript .entry", has_text="team lead")).to_be_visible()
        assert [] == ann_tab.errors + sue_tab.errors + visitor_tab.errors
