"""The agent console, the visitor widget and the admin page, driven in Chromium.

Each test opens its own browser contexts (a visitor on /demo, agents on /console) against one
daemon for the module, and saves a screenshot under test-output/.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgpack
import pytest
import trio

from protocol import connect

from .conftest import Desk, Tab

pytest.importorskip("playwright", reason="the playwright package is not installed")
from playwright.sync_api import expect

XSS = "<img src=x onerror=alert(1)>"


# -- the agent's side -------------------------------------------------------------------------


def sign_in(tab: Tab, desk: Desk, agent: str) -> Any:
    page = tab.page
    page.goto(f"{desk.base}/console")
    page.fill("#token", desk.tokens[agent])
    page.click("button:has-text('Sign in')")
    expect(page.locator(".topbar")).to_be_visible()
    return page


def set_online(page: Any, online: bool = True) -> None:
    switch = page.locator("#status-switch")
    expect(switch).to_be_enabled()
    if switch.is_checked() != online:
        page.click("label[for=status-switch]")
    expect(switch).to_be_checked(checked=online)
    # the box is ticked at the click; the switch is "on" once the server said so
    confirmed = page.locator(".switch:has(#status-switch)")
    if online:
        expect(confirmed).to_have_class(re.compile(r"\bon\b"))
    else:
        expect(confirmed).not_to_have_class(re.compile(r"\bon\b"))


def accept_offer(page: Any, text: str) -> None:
    offer = page.locator(".offer", has_text=text)
    expect(offer).to_be_visible()
    offer.locator("button:has-text('Accept')").click()
    expect(offer).to_have_count(0)


def agent_says(page: Any, text: str) -> None:
    page.fill(".composer-input", text)
    page.press(".composer-input", "Enter")
    expect(page.locator(".transcript .entry.mine", has_text=text)).to_be_visible()


# -- the visitor's side -----------------------------------------------------------------------


def open_widget_chat(tab: Tab, url: str, name: str, question: str, email: str = "") -> Any:
    page = tab.page
    page.goto(url)
    page.click(".launcher")
    page.fill("input[name=name]", name)
    if email:
        page.fill("input[name=email]", email)
    page.fill("textarea[name=question]", question)
    # "Start chat", or "Send message" while the widget believes nobody is online: its list of
    # departments is refreshed every 10 s and may be up to a second old (an agent who just went
    # online may not be in it yet). Either button opens the chat; the server routes it.
    page.click(".prechat button[type=submit]")
    return page


def visitor_says(page: Any, text: str) -> None:
    page.fill(".composer textarea", text)
    page.press(".composer textarea", "Enter")
    expect(page.locator(".line.mine[data-seq]", has_text=text).last).to_be_visible()


class TestAChat:
    def test_from_offer_to_rating_and_ticket(
        self, desk: Desk, open_tab: Callable[..., Tab]
    ) -> None:
        """Offer, accept, typing and messages both ways, a canned reply, a transfer, the end,
        a rating, and the ticket with all of it."""
        ann_tab, bob_tab, visitor_tab = open_tab(), open_tab(), open_tab(1100, 760)
        ann = sign_in(ann_tab, desk, "ann")
        bob = sign_in(bob_tab, desk, "bob")
        set_online(ann)
        set_online(bob)

        visitor = open_widget_chat(
            visitor_tab, f"{desk.base}/demo", "Mina", "Do you ship to Osaka?", "mina@example.com"
        )
        expect(visitor.locator(".status-line")).to_contain_text("Waiting")
        expect(ann.locator(".offer", has_text="Do you ship to Osaka?")).to_contain_text("Mina")
        expect(ann.locator(".offer .countdown")).to_have_text(re.compile(r"\d+ s"))
        ann_tab.shot("console-offer")
        accept_offer(ann, "Do you ship to Osaka?")
        expect(bob.locator(".offer")).to_have_count(0)  # withdrawn: ann took it

        # the visitor panel
        panel = ann.locator(".visitor-panel")
        expect(panel).to_contain_text("mina@example.com")
        expect(panel).to_contain_text("Chrome")
        expect(panel).to_contain_text("Linux")
        expect(visitor.locator("header .title")).to_have_text("Ann Archer")

        # typing, both ways, then messages both ways
        visitor.locator(".composer textarea").press_sequentially("Hel")
        expect(ann.locator(".typing-line")).to_contain_text("Mina is typing")
        visitor_says(visitor, "Hello, is anyone there?")
        expect(
            ann.locator(".transcript .entry.theirs", has_text="Hello, is anyone there?")
        ).to_be_visible()
        ann.locator(".composer-input").press_sequentially("Hi")
        expect(visitor.locator(".typing")).to_contain_text("Ann Archer is typing")
        ann.fill(".composer-input", "")
        agent_says(ann, "Hi Mina, let me check.")
        expect(visitor.locator(".line.theirs", has_text="Hi Mina, let me check.")).to_be_visible()

        # a canned reply: # opens the suggestions, arrows move, Enter inserts with Mina's name
        ann.locator(".composer-input").press_sequentially("#than")
        expect(ann.locator(".canned li", has_text="Thanks for waiting")).to_be_visible()
        ann_tab.shot("console-canned")
        ann.press(".composer-input", "Enter")
        expect(ann.locator(".composer-input")).to_have_value("Thanks for waiting, Mina!")
        ann.locator(".composer-input").press_sequentially("#ship")
        expect(ann.locator(".canned li")).to_have_count(1)
        ann.press(".composer-input", "Escape")
        expect(ann.locator(".canned")).to_be_hidden()
        # the kana reading finds the message titled お礼; the list shows category and department
        ann.fill(".composer-input", "")
        ann.locator(".composer-input").press_sequentially("#おれい")
        orei = ann.locator(".canned li", has_text="お礼")
        expect(orei).to_have_count(1)
        expect(orei.locator(".canned-shortcut")).to_have_text("#ty")
        expect(orei.locator(".chip.category")).to_have_text("greetings")
        expect(orei.locator(".chip.department")).to_have_text("Support")
        ann_tab.shot("console-canned-reading")
        ann.press(".composer-input", "Enter")
        expect(ann.locator(".composer-input")).to_have_value("ご連絡ありがとうございます。")
        ann.fill(".composer-input", "")
        ann.locator(".composer-input").press_sequentially("#than")
        shared = ann.locator(".canned li", has_text="Thanks for waiting")
        expect(shared.locator(".chip.department")).to_have_text("All departments")
        ann.press(".composer-input", "Escape")
        ann.fill(".composer-input", "Thanks for waiting, Mina!")
        ann.press(".composer-input", "Enter")
        expect(
            visitor.locator(".line.theirs", has_text="Thanks for waiting, Mina!")
        ).to_be_visible()
        ann_tab.shot("console-chat")
        visitor_tab.shot("widget-chat")

        # transfer to bob with a note; bob accepts
        ann.click(".chat-actions button:has-text('Transfer')")
        dialog = ann.locator("dialog.handoff-dialog")
        dialog.locator("select[name=agent]").select_option("bob")
        dialog.locator("textarea[name=note]").fill("Osaka shipping, over to you")
        dialog.locator("button[type=submit]").click()
        expect(ann.locator(".bar.handoff")).to_contain_text("waiting for an answer")
        offer = bob.locator(".offer-transfer")
        expect(offer).to_contain_text("Osaka shipping, over to you")
        expect(offer.locator(".offer-note strong")).to_have_text("From Ann Archer:")
        bob_tab.shot("console-transfer-offer")
        accept_offer(bob, "Do you ship to Osaka?")
        expect(ann.locator(".bar.handoff")).to_contain_text("accepted")
        expect(bob.locator(".transcript")).to_contain_text("Hello, is anyone there?")
        expect(visitor.locator("header .title")).to_have_text("Bob Baker")
        agent_says(bob, "Bob here: yes, we ship to Osaka.")
        expect(visitor.locator(".line.theirs", has_text="we ship to Osaka")).to_be_visible()

        # bob ends the chat; the visitor rates it
        bob.click("button:has-text('End now')")
        expect(bob.locator(".bar.ended")).to_contain_text("Ticket #")
        stars = visitor.locator(".stars .star")
        expect(stars).to_have_count(5)
        send = visitor.locator("button:has-text('Send rating')")
        expect(send).to_be_disabled()
        stars.nth(3).click()
        expect(visitor.locator(".star.lit")).to_have_count(4)
        expect(visitor.locator(".score-word")).to_have_text("Good")
        visitor.fill(".ended textarea", "Quick and kind.")
        visitor_tab.shot("widget-rating")
        send.click()
        expect(visitor.locator(".body")).to_contain_text("Thank you for your feedback")

        # the ticket in bob's tickets view, with its transcript and rating
        bob.click(".view-tab[data-view=tickets]")
        row = bob.locator("table.tickets tr", has_text="Do you ship to Osaka?")
        expect(row).to_be_visible()
        row.locator("button:has-text('Open')").click()
        modal = bob.locator("dialog.modal.wide")
        expect(modal).to_contain_text("Bob here: yes, we ship to Osaka.")
        expect(modal).to_contain_text("Quick and kind.")
        expect(modal.locator(".pill.rating-good")).to_contain_text("★★★★☆")
        expect(modal).to_contain_text("transfer from ann to bob: accepted")
        bob_tab.shot("console-ticket")
        assert [] == ann_tab.errors + bob_tab.errors + visitor_tab.errors

    def test_a_reload_resumes_with_nothing_lost(
        self, desk: Desk, open_tab: Callable[..., Tab]
    ) -> None:
        """The visitor reloads mid-chat; lines said meanwhile appear, none twice, and it goes on."""
        ann_tab, visitor_tab = open_tab(), open_tab(1100, 760)
        ann = sign_in(ann_tab, desk, "ann")
        set_online(ann)
        visitor = open_widget_chat(
            visitor_tab, f"{desk.base}/demo", "Ren", "Where is my order 1234?"
        )
        accept_offer(ann, "Where is my order 1234?")
        visitor_says(visitor, "It was due on Monday.")
        agent_says(ann, "Let me look it up.")
        expect(visitor.locator(".line.theirs", has_text="Let me look it up.")).to_be_visible()

        visitor.goto("about:blank")  # the visitor is away...
        agent_says(ann, "Found it: it left the warehouse today.")  # ...while ann answers
        agent_says(ann, "Tracking number 99-1234.")
        visitor.go_back()
        lines = visitor.locator(".lines .line.theirs")
        expect(lines).to_have_count(3)
        expect(lines.nth(1)).to_have_text(re.compile("Found it"))
        expect(lines.nth(2)).to_have_text(re.compile("Tracking number 99-1234"))
        expect(visitor.locator(".line.mine", has_text="It was due on Monday.")).to_have_count(1)
        expect(visitor.locator("header .title")).to_have_text("Ann Archer")
        visitor_says(visitor, "Thank you!")
        expect(ann.locator(".transcript .entry.theirs", has_text="Thank you!")).to_be_visible()
        visitor_tab.shot("widget-resumed")
        ann.click("button:has-text('End now')")
        expect(visitor.locator(".stars")).to_be_visible()

    def test_a_delayed_end_can_be_cancelled(self, desk: Desk, open_tab: Callable[..., Tab]) -> None:
        """End later shows a countdown to both sides; cancel keeps the chat open."""
        ann_tab, visitor_tab = open_tab(), open_tab(1100, 760)
        ann = sign_in(ann_tab, desk, "ann")
        set_online(ann)
        visitor = open_widget_chat(
            visitor_tab, f"{desk.base}/demo", "Kai", "Can I change my address?"
        )
        accept_offer(ann, "Can I change my address?")
        ann.select_option(".end-delay", "60")
        ann.click("button:has-text('End later')")
        expect(ann.locator(".bar.ending")).to_contain_text("This chat ends in")
        expect(visitor.locator(".line.system", has_text="will close in 60 seconds")).to_be_visible()
        ann_tab.shot("console-ending")
        ann.click("button:has-text('Cancel ending')")
        expect(ann.locator(".bar.ending")).to_have_count(0)
        expect(visitor.locator(".line.system", has_text="The chat stays open")).to_be_visible()
        ann.click("button:has-text('End now')")
        expect(visitor.locator(".stars")).to_be_visible()


class HeldReplies:
    """Sits between a page and the daemon (Playwright's WebSocket routing) and holds back what
    the daemon sends until `release()`; records the type of each frame the page sends."""

    def __init__(self, page: Any) -> None:
        self.holding = True
        self.held: list[str | bytes] = []
        self.sent: list[str] = []
        self._route: Any = None
        page.route_web_socket(re.compile(r"^ws://"), self._connect)

    def _connect(self, route: Any) -> None:
        server = route.connect_to_server()
        self._route = route

        def to_server(message: str | bytes) -> None:
            if isinstance(message, bytes):
                self.sent.append(str(msgpack.unpackb(message).get("type")))
            server.send(message)

        def to_page(message: str | bytes) -> None:
            if self.holding:
                self.held.append(message)
            else:
                route.send(message)

        route.on_message(to_server)
        server.on_message(to_page)

    def release(self) -> None:
        assert self._route is not None, "the page opened no WebSocket"
        self.holding = False
        for message in self.held:
            self._route.send(message)
        self.held.clear()

    def wait_until_sent(self, page: Any, frame_type: str) -> None:
        """Until the page sent a frame of `frame_type` (its frames reach us between page calls)."""
        for _ in range(300):
            if frame_type in self.sent:
                return
            page.wait_for_timeout(50)
        raise AssertionError(f"the page sent no {frame_type!r}; it sent {self.sent}")


class TestWidgetForm:
    def test_what_the_visitor_typed_survives_the_connection_opening(
        self, desk: Desk, open_tab: Callable[..., Tab]
    ) -> None:
        """The form shows while the widget still connects; when the connection opens after the
        visitor has typed (here: its hello's reply is held back until then), the form keeps what
        was typed and the chat opens with it."""
        ann_tab, visitor_tab = open_tab(), open_tab(1100, 760)
        ann = sign_in(ann_tab, desk, "ann")
        set_online(ann)
        visitor = visitor_tab.page
        daemon = HeldReplies(visitor)
        visitor.goto(f"{desk.base}/demo")
        visitor.click(".launcher")
        visitor.fill("input[name=name]", "Kim")
        visitor.fill("input[name=email]", "kim@example.com")
        visitor.fill("textarea[name=question]", "Is the Longtail in stock?")
        daemon.wait_until_sent(visitor, "hello")
        daemon.release()  # the hello's reply: the widget is connected now
        daemon.wait_until_sent(visitor, "departments")  # sent as the widget saw the reply
        expect(visitor.locator("input[name=name]")).to_have_value("Kim")
        expect(visitor.locator("input[name=email]")).to_have_value("kim@example.com")
        expect(visitor.locator("textarea[name=question]")).to_have_value(
            "Is the Longtail in stock?"
        )
        visitor.click(".prechat button[type=submit]")
        expect(visitor.locator(".status-line")).to_contain_text("Waiting")
        offer = ann.locator(".offer", has_text="Is the Longtail in stock?")
        expect(offer.locator(".offer-visitor")).to_have_text("Kim")
        accept_offer(ann, "Is the Longtail in stock?")
        ann.click("button:has-text('End now')")
        expect(visitor.locator(".stars")).to_be_visible()
        assert [] == ann_tab.errors + visitor_tab.errors

    def test_what_the_visitor_typed_survives_a_refused_chat(
        self, desk: Desk, open_tab: Callable[..., Tab]
    ) -> None:
        """When the server refuses to open the chat (here it is restarting: the reply to
        `open_chat` is replaced by that error), the form comes back with what the visitor typed
        and says why; sent again, the chat opens."""
        visitor_tab = open_tab(1100, 760)
        visitor = visitor_tab.page
        refused: list[int] = []

        def connect(route: Any) -> None:
            server = route.connect_to_server()

            def to_server(message: str | bytes) -> None:
                frame = msgpack.unpackb(message) if isinstance(message, bytes) else {}
                if frame.get("type") == "open_chat" and not refused:
                    refused.append(frame["ref"])
                    error = {"code": "shutting_down", "message": "The server is restarting."}
                    route.send(
                        msgpack.packb(
                            {"type": "reply", "ref": frame["ref"], "ok": False, "error": error}
                        )
                    )
                    return
                server.send(message)

            route.on_message(to_server)
            server.on_message(route.send)

        visitor.route_web_socket(re.compile(r"^ws://"), connect)
        visitor.goto(f"{desk.base}/demo")
        visitor.click(".launcher")
        visitor.fill("input[name=name]", "Kim")
        visitor.fill("input[name=email]", "kim@example.com")
        visitor.fill("textarea[name=question]", "Do you ship to Iceland?")
        visitor.click(".prechat button[type=submit]")
        expect(visitor.locator(".prechat .error")).to_contain_text("restarting")
        assert len(refused) == 1
        expect(visitor.locator("input[name=name]")).to_have_value("Kim")
        expect(visitor.locator("input[name=email]")).to_have_value("kim@example.com")
        expect(visitor.locator("textarea[name=question]")).to_have_value("Do you ship to Iceland?")
        visitor.click(".prechat button[type=submit]")
        expect(visitor.locator(".prechat")).to_have_count(0)  # the chat opened this time


@pytest.fixture
def other_site() -> Iterator[Callable[[str], str]]:
    """Serves one HTML page from another loopback origin; gives its URL."""
    servers: list[ThreadingHTTPServer] = []

    def serve(html: str) -> str:
        body = html.encode()

        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/shop"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def shop(desk: Desk, heading: str, attributes: str = "", title: str = "Shop") -> str:
    """A page of another site that embeds the widget with `attributes` (data-department, ...)."""
    return (
        f"<!doctype html><title>{title}</title><h1>{heading}</h1>"
        f'<script src="{desk.base}/widget.js"{attributes}'
        f' data-server="{desk.daemon.url}"></script>'
    )


class TestMissedChats:
    def test_no_agent_online_becomes_a_missed_chat(
        self, desk: Desk, open_tab: Callable[..., Tab], other_site: Callable[[str], str]
    ) -> None:
        """With nobody online the widget says so and keeps the question: a missed chat."""
        dee_tab, visitor_tab = open_tab(), open_tab(1100, 760)
        dee = sign_in(dee_tab, desk, "dee")
        set_online(dee, False)
        # another site, on another origin, embeds the widget with its attributes
        page = other_site(shop(desk, "Billing help", ' data-department="billing"'))
        visitor = visitor_tab.page
        visitor.goto(page)
        visitor.click(".launcher")
        expect(visitor.locator(".prechat .notice")).to_contain_text("No one is online right now")
        expect(visitor.locator("select[name=department]")).to_have_count(0)  # pinned by the page
        visitor_tab.shot("widget-no-one-online")
        visitor.fill("input[name=name]", "Noa")
        visitor.fill("input[name=email]", "noa@example.com")
        visitor.fill("textarea[name=question]", "Why was I charged twice?")
        visitor.click("button:has-text('Send message')")
        expect(visitor.locator(".offline")).to_contain_text("No one is online right now")
        expect(visitor.locator(".offline")).to_contain_text("Why was I charged twice?")
        visitor_tab.shot("widget-offline")

        dee.click(".view-tab[data-view=missed]")
        row = dee.locator("table.tickets tr", has_text="Why was I charged twice?")
        expect(row).to_contain_text("no agent online")
        expect(row).to_contain_text("noa@example.com")
        dee_tab.shot("console-missed")
        row.locator("button:has-text('Mark handled')").click()
        expect(row).to_have_count(0)  # handled ones are hidden unless asked for
        dee.click("label[for=show-handled]")
        expect(
            dee.locator("table.tickets tr", has_text="Why was I charged twice?")
        ).to_contain_text("handled")


class TestDepartmentPicker:
    def test_the_widget_lists_departments_and_who_is_online(
        self, desk: Desk, open_tab: Callable[..., Tab], other_site: Callable[[str], str]
    ) -> None:
        """Without data-department the widget offers the server's departments; one with no
        agent online is marked and gets the notice; the chat opens where the visitor chose."""
        bob_tab, dee_tab, visitor_tab = open_tab(), open_tab(), open_tab(1100, 760)
        bob = sign_in(bob_tab, desk, "bob")
        set_online(bob)
        set_online(sign_in(dee_tab, desk, "dee"), False)
        page = other_site(shop(desk, "Help"))
        visitor = visitor_tab.page
        visitor.goto(page)
        visitor.click(".launcher")
        picker = visitor.locator("select[name=department]")
        expect(picker.locator("option")).to_have_count(3)
        expect(picker.locator("option[value=billing]")).to_have_text("Billing (offline)")
        picker.select_option("billing")
        expect(visitor.locator(".prechat .notice")).to_contain_text("No one is online")
        picker.select_option("support")
        expect(visitor.locator(".prechat .notice")).to_be_hidden()
        visitor_tab.shot("widget-departments")
        visitor.fill("input[name=name]", "Ola")
        visitor.fill("textarea[name=question]", "Which saddle fits?")
        visitor.click("button:has-text('Start chat')")
        offer = bob.locator(".offer", has_text="Which saddle fits?")
        expect(offer.locator(".offer-dept")).to_have_text("Support")
        accept_offer(bob, "Which saddle fits?")
        bob.click("button:has-text('End now')")
        expect(visitor.locator(".stars")).to_be_visible()
        assert [] == bob_tab.errors + visitor_tab.errors


class TestRoutingAhead:
    def test_required_skills_and_tags(
        self, desk: Desk, open_tab: Callable[..., Tab], other_site: Callable[[str], str]
    ) -> None:
        """A page that embeds the widget with data-skills gets its chat offered only to an
        agent with the skill: it waits while only Ann (without it) is online, and goes to Bob
        when he comes online; Bob tags the chat in the console."""
        ann_tab, bob_tab, visitor_tab = open_tab(), open_tab(), open_tab(1100, 760)
        ann = sign_in(ann_tab, desk, "ann")
        bob = sign_in(bob_tab, desk, "bob")
        set_online(ann)
        set_online(bob, False)
        page = other_site(
            shop(desk, "Hilfe", ' data-department="support" data-skills="de"', title="Laden")
        )
        visitor = open_widget_chat(visitor_tab, page, "Uwe", "Wo ist mein Paket?")
        expect(visitor.locator(".status-line")).to_contain_text("in line")
        expect(ann.locator(".offer", has_text="Wo ist mein Paket?")).to_have_count(0)
        set_online(bob)
        accept_offer(bob, "Wo ist mein Paket?")
        bob.fill(".chat-tags .tag-input", "parcel, de")
        bob.press(".chat-tags .tag-input", "Enter")
        expect(bob.locator(".chat-tags .tag")).to_have_text(["parcel", "de"])
        bob_tab.shot("console-tags")
        bob.click("button:has-text('End now')")
        expect(visitor.locator(".stars")).to_be_visible()
        set_online(ann, False)
        set_online(bob, False)
        assert [] == ann_tab.errors + bob_tab.errors + visitor_tab.errors


def set_holidays(desk: Desk, department: str, holidays: list[str]) -> None:
    """Give a department business hours of every day, all day, except `holidays`."""

    async def update() -> None:
        async with connect(desk.daemon.url, role="admin", token=desk.admin_token) as admin:
            await admin.request(
                "department_update",
                id=department,
                hours_weekly=["mon-sun 00:00-24:00"] if holidays else [],
                hours_holidays=holidays,
            )

    trio.run(update)


class TestClosedHours:
    def test_the_widget_says_when_a_closed_department_opens(
        self, desk: Desk, open_tab: Callable[..., Tab], other_site: Callable[[str], str]
    ) -> None:
        """On a holiday the widget says the department is closed and when it opens, before the
        visitor writes and after: the question becomes a missed chat (closed_hours)."""
        today = dt.datetime.now(dt.UTC).date()
        set_holidays(desk, "billing", [today.isoformat()])
        try:
            visitor_tab = open_tab(1100, 760)
            page = other_site(shop(desk, "Billing help", ' data-department="billing"'))
            visitor = visitor_tab.page
            visitor.goto(page)
            visitor.click(".launcher")
            notice = visitor.locator(".prechat .notice")
            opens = re.compile(r"We open (today|tomorrow) at \d")  # midnight UTC, in local time
            expect(notice).to_contain_text("We are closed right now.")
            expect(notice).to_contain_text(opens)
            visitor_tab.shot("widget-closed")
            visitor.fill("input[name=name]", "Ines")
            visitor.fill("textarea[name=question]", "Can I pay by invoice?")
            visitor.click("button:has-text('Send message')")
            offline = visitor.locator(".offline")
            expect(offline).to_contain_text("We are closed right now.")
            expect(offline.locator(".opens")).to_contain_text(opens)
            assert [] == visitor_tab.errors
        finally:
            set_holidays(desk, "billing", [])


class TestSafety:
    def test_visitor_html_is_shown_as_text(self, desk: Desk, open_tab: Callable[..., Tab]) -> None:
        """A visitor's name, question and message of HTML show as text, and nothing runs."""
        ann_tab, visitor_tab = open_tab(), open_tab(1100, 760)
        ann = sign_in(ann_tab, desk, "ann")
        set_online(ann)
        visitor = open_widget_chat(visitor_tab, f"{desk.base}/demo", XSS, XSS, "x@example.com")
        offer = ann.locator(".offer", has_text=XSS)
        expect(offer.locator(".offer-visitor")).to_have_text(XSS)
        accept_offer(ann, XSS)
        visitor_says(visitor, XSS)
        expect(ann.locator(".transcript .entry.theirs p", has_text=XSS)).to_have_text(XSS)
        expect(ann.locator(".chat-tab .tab-name")).to_have_text(XSS)
        expect(ann.locator(".visitor-panel .panel-name")).to_have_text(XSS)
        agent_says(ann, XSS)
        expect(visitor.locator(".line.theirs p", has_text=XSS)).to_have_text(XSS)
        ann_tab.shot("console-xss")
        assert 0 == ann.locator("img[src=x]").count()
        assert 0 == visitor.locator("img[src=x]").count()
        ann.wait_for_timeout(300)
        assert [] == ann_tab.dialogs + visitor_tab.dialogs
        ann.click("button:has-text('End now')")


class TestAdmin:
    def test_manage_the_desk(self, desk: Desk, open_tab: Callable[..., Tab]) -> None:
        """Add a department, an agent (its token shown once), a canned message; the ratings."""
        tab = open_tab(1280, 1500)
        page = tab.page
        page.goto(f"{desk.base}/admin")
        page.fill("#token", desk.admin_token)
        page.click("button:has-text('Sign in')")
        expect(page.locator("#departments tr[data-department=support]")).to_be_visible()

        departments = page.locator("#departments")
        departments.locator("input[name=id]").fill("returns")
        departments.locator("input[name=name]").fill("Returns")
        departments.locator("button:has-text('Add department')").click()
        expect(page.locator("tr[data-department=returns]")).to_be_visible()
        row = page.locator("tr[data-department=returns]")
        row.locator("select").select_option("assigned")
        row.locator("button:has-text('Save')").click()
        expect(page.locator("tr[data-department=returns] select")).to_have_value("assigned")

        agents = page.locator("#agents")
        agents.locator("input[name=id]").fill("eve")
        agents.locator("input[name=name]").fill("Eve Evans")
        agents.locator("label:has-text('Returns') input").check()
        agents.locator("button:has-text('Add agent')").click()
        expect(page.locator("tr[data-agent=eve]")).to_contain_text("returns")
        expect(page.locator(".issued-token")).to_have_text(re.compile(r"^\S{20,}$"))
        page.locator("tr[data-agent=eve] button:has-text('Edit')").click()
        editor = page.locator("form[data-editing=eve]")
        editor.locator("input[name=name]").fill("Eve Evergreen")
        editor.locator("input[name=capacity]").fill("5")
        editor.locator("label:has-text('Support') input").check()
        editor.locator("button:has-text('Save agent')").click()
        row = page.locator("tr[data-agent=eve]")
        expect(row).to_contain_text("Eve Evergreen")
        expect(row).to_contain_text("returns, support")
        expect(row.locator("td").nth(3)).to_have_text("5")

        canned = page.locator("#canned")
        canned.locator("textarea[name=text]").fill("Returns are free within 30 days.")
        canned.locator("select[name=category]").select_option(label="shipping")
        canned.locator("select[name=department]").select_option("returns")
        canned.locator("input[name=title]").fill("返品")
        canned.locator("input[name=shortcut]").fill("ret")
        canned.locator("input[name=reading]").fill("へんぴん")
        canned.locator("button:has-text('Add message')").click()
        added = canned.locator("tr", has_text="Returns are free")
        expect(added).to_be_visible()
        expect(added.locator("input[aria-label=Shortcut]")).to_have_value("ret")
        expect(added.locator("input[aria-label=Reading]")).to_have_value("へんぴん")
        expect(page.locator("#ratings .stat.score .value")).to_be_visible()
        expect(page.locator("#ratings .stat.good .value")).to_have_text(re.compile(r"^\d+$"))
        tab.shot("admin")
        assert [] == tab.errors
