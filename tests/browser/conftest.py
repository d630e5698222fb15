"""Browser tests: Debian's Chromium, driven by Playwright, against a real ``helpline serve``.

The daemon serves the built pages (web/dist) on the same port as its WebSocket. The suite builds
web/dist when it is missing (``npm ci`` and ``npm run build`` in web/). Playwright never
downloads a browser here: it starts /usr/bin/chromium (or ``HELPLINE_CHROMIUM``).

Without Chromium, Playwright, npm or the built pages the tests skip and say how to enable them;
with ``HELPLINE_REQUIRE_BROWSER=1`` in the environment a skip is a failure instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio

from bench._daemonproc import Daemon, start_daemon
from protocol import connect

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
DIST = WEB / "dist"
OUTPUT = ROOT / "test-output"
CHROMIUM = Path(os.environ.get("HELPLINE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOW_TO_ENABLE = (
    "install Chromium (apt-get install chromium), the dev extra (pip install -e '.[dev]'), "
    "and node/npm to build web/dist (make web)"
)

CONFIG = """
[engine]
handoff_timeout = 30
visitor_grace = 20
agent_grace = 3

[[departments]]
id = "support"
name = "Support"
offer_window = 30

[[departments]]
id = "sales"
name = "Sales"

[[departments]]
id = "billing"
name = "Billing"

[[agents]]
id = "ann"
name = "Ann Archer"
departments = ["support", "sales"]

[[agents]]
id = "bob"
name = "Bob Baker"
departments = ["support"]
skills = ["de"]

[[agents]]
id = "dee"
name = "Dee Dunn"
departments = ["billing"]

[[canned]]
id = "thanks"
text = "Thanks for waiting, {visitor.name}!"
category = "greetings"

[[canned]]
id = "orei"
text = "ご連絡ありがとうございます。"
category = "greetings"
department = "support"
title = "お礼"
reading = "おれい"
shortcut = "ty"

[[canned]]
id = "shipping"
text = "We ship to Japan within five working days."
category = "shipping"
department = "support"
"""


def unavailable(reason: str) -> None:
    """Skip with how to enable the tests, or fail when they are required."""
    if os.environ.get("HELPLINE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (HELPLINE_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"browser tests skipped: {reason}; to run them, {HOW_TO_ENABLE}")


def _dist_is_built() -> bool:
    return all((DIST / name).is_file() for name in ("console.html", "demo.html", "widget.js"))


@pytest.fixture(scope="session")
def web_dist() -> Path:
    """web/dist, built first when missing."""
    if not _dist_is_built():
        npm = shutil.which("npm")
        if npm is None:
            unavailable("web/dist is not built and npm is not installed")
        for step in (["ci"], ["run", "build"]):
            done = subprocess.run(
                [npm or "npm", *step], cwd=WEB, capture_output=True, text=True, timeout=600
            )
            if done.returncode != 0:
                unavailable(f"`npm {' '.join(step)}` failed in web/:\n{done.stderr[-2000:]}")
    return DIST


@pytest.fixture(scope="session")
def browser(web_dist: Path) -> Iterator[Any]:
    """Debian's Chromium, headless, started by Playwright (which downloads nothing)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} does not exist")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed")
    # What a page waits for crosses a daemon and a browser on a busy 2-core machine: give each
    # expectation 15 s (Playwright's default is 5) before it fails.
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Desk:
    """A running daemon with its pages, and sign-in tokens for its agents and its admin."""

    daemon: Daemon
    base: str  # http://127.0.0.1:PORT
    tokens: dict[str, str]
    admin_token: str


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, web_dist: Path) -> Iterator[Desk]:
    yield from running_desk(tmp_path_factory.mktemp("browser"), CONFIG)


def running_desk(root: Path, config_text: str) -> Iterator[Desk]:
    """A daemon started with ``config_text`` under ``root``, with tokens for its agents."""
    config = root / "helpline.toml"
    config.write_text(config_text)
    daemon = start_daemon(root, "--config", str(config))
    try:
        assert daemon.admin_token is not None
        replies = admin_requests(
            daemon.url,
            daemon.admin_token,
            *[("token_issue", {"agent_id": agent}) for agent in ("ann", "bob", "dee")],
        )
        tokens = {str(reply["agent_id"]): str(reply["token"]) for reply in replies}
        base = daemon.url.replace("ws://", "http://").rstrip("/")
        yield Desk(daemon=daemon, base=base, tokens=tokens, admin_token=daemon.admin_token)
    finally:
        daemon.kill()


def admin_requests(
    url: str, admin_token: str, *requests: tuple[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The replies to `requests` (type, fields), made in turn on one admin connection (tokens
    this way cost no `helpline token` process per agent; tests/test_cli.py covers that command)."""

    async def ask() -> list[dict[str, Any]]:
        async with connect(url, role="admin", token=admin_token) as admin:
            return [await admin.request(kind, **fields) for kind, fields in requests]

    return trio.run(ask)


@dataclass
class Tab:
    """One browser context and its page, with what the page did that it should not have."""

    page: Any
    dialogs: list[str]
    errors: list[str]
    accept: bool = False  # answer the page's questions (confirm) with yes; else no
    # what the page logged and its WebSocket frames, for the post-mortem of a failed test
    journal: list[str] = field(default_factory=list)

    def shot(self, name: str) -> Path:
        OUTPUT.mkdir(exist_ok=True)
        path = OUTPUT / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, Any]:
    """Keep each phase's report on the test, so a fixture's teardown knows if the test failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def _failed(item: pytest.Item) -> bool:
    return any(r.failed for r in item.stash.get(REPORTS, {}).values())


def _frame(payload: str | bytes) -> str:
    """A WebSocket frame as text (the protocol's frames are MessagePack)."""
    if isinstance(payload, str):
        return payload[:500]
    try:
        return repr(msgpack.unpackb(payload))[:500]
    except Exception:
        return f"<{len(payload)} bytes>"


def _post_mortem(item: pytest.Item, tabs: list[Tab], logs: dict[Path, int]) -> Path:
    """Write what each page logged, its frames and a screenshot, and the daemon's log lines of
    the test, under test-output/; returns the report's path."""
    OUTPUT.mkdir(exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", item.nodeid.split("::", 1)[-1])
    report = OUTPUT / f"failed-{name}.txt"
    with report.open("w") as out:
        for index, tab in enumerate(tabs):
            out.write(f"== tab {index}: {tab.page.url}\n")
            out.writelines(f"{line}\n" for line in tab.journal)
            try:
                tab.page.screenshot(path=str(OUTPUT / f"failed-{name}-tab{index}.png"))
            except Exception as exc:
                out.write(f"(no screenshot: {exc})\n")
        for log, start in logs.items():
            out.write(f"== daemon log {log.name} (this test's lines)\n")
            with log.open() as lines:
                lines.seek(start)
                out.write(lines.read())
    return report


@pytest.fixture
def open_tab(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Tab]]:
    """Opens a fresh browser context (its own sessionStorage) and records dialogs and errors.

    When the test fails, each page's console, errors and WebSocket frames, a screenshot of each,
    and the daemon's log lines of the test are written to test-output/failed-TEST.txt (and .png).
    """
    contexts: list[Any] = []
    tabs: list[Tab] = []
    desks = [d for d in request.node.funcargs.values() if isinstance(d, Desk)]
    logs = {d.daemon.log: d.daemon.log.stat().st_size for d in desks if d.daemon.log.exists()}
    started = time.monotonic()

    def opener(width: int = 1360, height: int = 820) -> Tab:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        tab = Tab(page=page, dialogs=[], errors=[])
        tabs.append(tab)

        def note(what: str) -> None:
            tab.journal.append(f"{time.monotonic() - started:8.3f} {what}")

        def on_websocket(ws: Any) -> None:
            note(f"websocket open {ws.url}")
            ws.on("framesent", lambda payload: note(f"  sent {_frame(payload)}"))
            ws.on("framereceived", lambda payload: note(f"  recv {_frame(payload)}"))
            ws.on("close", lambda _: note("websocket closed"))

        page.on("console", lambda message: note(f"console.{message.type}: {message.text}"))
        page.on("pageerror", lambda error: note(f"pageerror: {error}"))
        page.on("framenavigated", lambda frame: note(f"navigated {frame.url}"))
        page.on("websocket", on_websocket)

        def on_dialog(dialog: Any) -> None:
            tab.dialogs.append(dialog.message)
            if tab.accept:
                dialog.accept()
            else:
                dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: tab.errors.append(str(error)))
        return tab

    yield opener
    if _failed(request.node):
        report = _post_mortem(request.node, tabs, logs)
        print(f"post-mortem: {report}")
    for context in contexts:
        context.close()
