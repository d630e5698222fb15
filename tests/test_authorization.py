"""Who may see what: every request of every role, against its own data and another's.

One table, `RULES`, says for each (role, request, whose data) what the answer is; the test runs
each row over the wire, through the in-memory gateway, against a fresh desk of two departments, and
SPEC.md's section "Who may see what" must hold the same table.

Whose data: for an agent and an admin, ``own`` is the sales department's (the agent works in sales
only) and ``other`` is the support department's; for a visitor, ``own`` is its own chat and
``other`` another visitor's. ``-`` is a request about no one's data.

Outcomes: ``ok`` (answered, and what was asked for is in the answer), ``hidden`` (answered, but
the other department's data is left out as if it did not exist), or the error code of the refusal.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from engine import Agent, Department, Engine, EngineConfig, Visitor
from engine.model.desk_events import Webhook
from protocol import Client, ClientError, ServerSettings
from protocol.wire.frames import REQUESTS

from .gateway_harness import Harness, open_gateway

SPEC = Path(__file__).parent.parent / "protocol" / "SPEC.md"
SECRET = "site-secret"

RULES: tuple[tuple[str, str, str, str], ...] = (
    # A visitor: one chat of its own, never named in its requests.
    ("visitor", "open_chat", "-", "ok"),
    ("visitor", "send", "own", "ok"),
    ("visitor", "typing", "own", "ok"),
    ("visitor", "leave", "own", "ok"),
    ("visitor", "rate", "own", "ok"),
    ("visitor", "hello (resume)", "own", "ok"),
    ("visitor", "hello (resume)", "other", "unauthorized"),
    ("visitor", "visitor_panel", "own", "forbidden"),
    ("visitor", "canned_suggest", "-", "forbidden"),
    ("visitor", "tickets (department)", "own", "forbidden"),
    ("visitor", "ticket", "own", "forbidden"),
    ("visitor", "agent_list", "-", "forbidden"),
    ("visitor", "departments", "-", "ok"),
    ("visitor", "agent_update", "-", "forbidden"),
    ("visitor", "supervise_start", "-", "forbidden"),
    ("visitor", "monitor", "own", "forbidden"),
    ("visitor", "whisper", "own", "forbidden"),
    ("visitor", "barge", "own", "forbidden"),
    ("visitor", "reassign", "own", "forbidden"),
    ("visitor", "audit_list", "-", "forbidden"),
    # An agent of sales.
    ("agent", "set_status", "-", "ok"),
    ("agent", "set_ringtone", "-", "ok"),
    ("agent", "send", "own", "ok"),
    ("agent", "send", "other", "not_in_chat"),
    ("agent", "typing", "own", "ok"),
    ("agent", "typing", "other", "not_in_chat"),
    ("agent", "accept", "own", "ok"),
    ("agent", "accept", "other", "not_your_offer"),
    ("agent", "decline", "own", "ok"),
    ("agent", "decline", "other", "not_your_offer"),
    ("agent", "transfer", "own", "ok"),
    ("agent", "transfer", "other", "not_in_chat"),
    ("agent", "cancel_transfer", "own", "no_handoff"),
    ("agent", "cancel_transfer", "other", "not_in_chat"),
    ("agent", "invite", "own", "ok"),
    ("agent", "invite", "other", "not_in_chat"),
    ("agent", "cancel_invite", "own", "no_handoff"),
    ("agent", "cancel_invite", "other", "not_in_chat"),
    ("agent", "leave_chat", "other", "not_in_chat"),
    ("agent", "end_chat", "own", "ok"),
    ("agent", "end_chat", "other", "not_in_chat"),
    ("agent", "cancel_end", "other", "not_in_chat"),
    ("agent", "tag", "own", "ok"),
    ("agent", "tag", "other", "not_in_chat"),
    ("agent", "available_agents", "own", "ok"),
    ("agent", "available_agents", "other", "ok"),
    ("agent", "visitor_panel", "own", "ok"),
    ("agent", "visitor_panel", "other", "not_in_chat"),
    ("agent", "visitor_panel (history)", "own", "ok"),
    ("agent", "visitor_panel (history)", "other", "hidden"),
    ("agent", "canned_suggest", "own", "ok"),
    ("agent", "canned_suggest", "other", "hidden"),
    ("agent", "canned_pick", "own", "ok"),
    ("agent", "canned_pick", "other", "not_found"),
    ("agent", "tickets (department)", "own", "ok"),
    ("agent", "tickets (department)", "other", "forbidden"),
    ("agent", "tickets (missed)", "own", "ok"),
    ("agent", "tickets (missed)", "other", "hidden"),
    ("agent", "tickets (visitor)", "own", "ok"),
    ("agent", "tickets (visitor)", "other", "hidden"),
    ("agent", "ticket", "own", "ok"),
    ("agent", "ticket", "other", "not_found"),
    ("agent", "mark_handled", "own", "ok"),
    ("agent", "mark_handled", "other", "not_found"),
    ("agent", "open_chat", "-", "forbidden"),
    ("agent", "department_list", "-", "forbidden"),
    ("agent", "agent_list", "-", "forbidden"),
    ("agent", "token_issue", "-", "forbidden"),
    ("agent", "rating_report", "-", "forbidden"),
    ("agent", "routing_trace", "own", "forbidden"),
    ("agent", "canned_list", "own", "forbidden"),
    ("agent", "department_add", "-", "forbidden"),
    ("agent", "department_update", "own", "forbidden"),
    ("agent", "agent_add", "own", "forbidden"),
    ("agent", "agent_remove", "other", "forbidden"),
    ("agent", "canned_category_add", "-", "forbidden"),
    ("agent", "canned_category_rename", "-", "forbidden"),
    ("agent", "canned_category_delete", "-", "forbidden"),
    ("agent", "canned_add", "own", "forbidden"),
    ("agent", "canned_edit", "own", "forbidden"),
    ("agent", "canned_delete", "own", "forbidden"),
    ("agent", "departments", "-", "ok"),
    ("agent", "agent_update", "own", "forbidden"),
    ("agent", "supervise_start", "-", "forbidden"),
    ("agent", "supervise_stop", "-", "forbidden"),
    ("agent", "monitor", "own", "forbidden"),
    ("agent", "unmonitor", "own", "forbidden"),
    ("agent", "whisper", "own", "forbidden"),
    ("agent", "barge", "own", "forbidden"),
    ("agent", "reassign", "own", "forbidden"),
    ("agent", "audit_list", "-", "forbidden"),
    ("agent", "webhook_add", "-", "forbidden"),
    ("agent", "webhook_list", "-", "forbidden"),
    ("agent", "webhook_remove", "-", "forbidden"),
    ("agent", "webhook_failures", "-", "forbidden"),
    ("agent", "webhook_replay", "-", "forbidden"),
    ("agent", "webhook_discard", "-", "forbidden"),
    # A supervisor of sales.
    ("supervisor", "supervise_start", "own", "ok"),
    ("supervisor", "supervise_start", "other", "hidden"),
    ("supervisor", "supervise_stop", "-", "ok"),
    ("supervisor", "monitor", "own", "ok"),
    ("supervisor", "monitor", "other", "not_found"),
    ("supervisor", "unmonitor", "own", "ok"),
    ("supervisor", "unmonitor", "other", "not_found"),
    ("supervisor", "whisper", "own", "ok"),
    ("supervisor", "whisper", "other", "not_found"),
    ("supervisor", "barge", "own", "ok"),
    ("supervisor", "barge", "other", "not_found"),
    ("supervisor", "reassign", "own", "ok"),
    ("supervisor", "reassign", "other", "not_found"),
    ("supervisor", "routing_trace", "own", "ok"),
    ("supervisor", "routing_trace", "other", "not_found"),
    ("supervisor", "send (barged)", "own", "ok"),
    ("supervisor", "send", "own", "not_in_chat"),
    ("supervisor", "send", "other", "not_in_chat"),
    ("supervisor", "typing", "own", "not_in_chat"),
    ("supervisor", "leave_chat", "own", "not_in_chat"),
    ("supervisor", "available_agents", "other", "ok"),
    ("supervisor", "tickets (department)", "own", "ok"),
    ("supervisor", "tickets (department)", "other", "forbidden"),
    ("supervisor", "tickets (missed)", "other", "hidden"),
    ("supervisor", "ticket", "own", "ok"),
    ("supervisor", "ticket", "other", "not_found"),
    ("supervisor", "open_chat", "-", "forbidden"),
    ("supervisor", "accept", "own", "forbidden"),
    ("supervisor", "decline", "own", "forbidden"),
    ("supervisor", "transfer", "own", "forbidden"),
    ("supervisor", "end_chat", "own", "forbidden"),
    ("supervisor", "set_status", "-", "forbidden"),
    ("supervisor", "visitor_panel", "own", "forbidden"),
    ("supervisor", "canned_suggest", "-", "forbidden"),
    ("supervisor", "mark_handled", "own", "forbidden"),
    ("supervisor", "department_update", "own", "forbidden"),
    ("supervisor", "agent_list", "-", "forbidden"),
    ("supervisor", "token_issue", "-", "forbidden"),
    ("supervisor", "canned_list", "own", "forbidden"),
    ("supervisor", "audit_list", "-", "forbidden"),
    ("supervisor", "departments", "-", "ok"),
    ("supervisor", "agent_update", "-", "forbidden"),
    # An admin: every department, and no chats.
    ("admin", "tickets (department)", "own", "ok"),
    ("admin", "tickets (department)", "other", "ok"),
    ("admin", "tickets (missed)", "other", "ok"),
    ("admin", "tickets (visitor)", "other", "ok"),
    ("admin", "ticket", "own", "ok"),
    ("admin", "ticket", "other", "ok"),
    ("admin", "mark_handled", "other", "ok"),
    ("admin", "canned_list", "own", "ok"),
    ("admin", "canned_list", "other", "ok"),
    ("admin", "department_list", "-", "ok"),
    ("admin", "department_add", "-", "ok"),
    ("admin", "department_update", "other", "ok"),
    ("admin", "agent_add", "other", "ok"),
    ("admin", "agent_remove", "other", "ok"),
    ("admin", "canned_category_add", "-", "ok"),
    ("admin", "canned_category_rename", "-", "ok"),
    ("admin", "canned_category_delete", "-", "ok"),
    ("admin", "canned_add", "other", "ok"),
    ("admin", "canned_edit", "other", "ok"),
    ("admin", "canned_delete", "other", "ok"),
    ("admin", "agent_list", "-", "ok"),
    ("admin", "token_issue", "-", "ok"),
    ("admin", "rating_report", "-", "ok"),
    ("admin", "routing_trace", "other", "ok"),
    ("admin", "available_agents", "other", "ok"),
    ("admin", "webhook_add", "-", "ok"),
    ("admin", "webhook_list", "-", "ok"),
    ("admin", "webhook_remove", "-", "ok"),
    ("admin", "webhook_failures", "-", "ok"),
    ("admin", "webhook_replay", "-", "ok"),
    ("admin", "webhook_discard", "-", "ok"),
    ("admin", "open_chat", "-", "forbidden"),
    ("admin", "send", "own", "forbidden"),
    ("admin", "accept", "own", "forbidden"),
    ("admin", "visitor_panel", "own", "forbidden"),
    ("admin", "canned_suggest", "-", "forbidden"),
    ("admin", "canned_pick", "own", "forbidden"),
    ("admin", "departments", "-", "ok"),
    ("admin", "agent_update", "other", "ok"),
    ("admin", "supervise_start", "own", "ok"),
    ("admin", "supervise_start", "other", "ok"),
    ("admin", "supervise_stop", "-", "ok"),
    ("admin", "monitor", "other", "ok"),
    ("admin", "unmonitor", "other", "ok"),
    ("admin", "whisper", "other", "ok"),
    ("admin", "reassign", "other", "ok"),
    ("admin", "barge", "own", "forbidden"),
    ("admin", "token_issue (supervisor)", "-", "ok"),
    ("admin", "audit_list", "-", "ok"),
)

DEPARTMENT = {"own": "sales", "other": "support"}
ELSEWHERE = {"own": "support", "other": "sales"}  # where a chat of ``whose`` is reassigned to


@pytest.fixture
def config() -> EngineConfig:
    """Two departments, each with one agent of its own."""
    return EngineConfig(
        departments=(
            Department(id="sales", name="Sales"),
            Department(id="support", name="Support"),
        ),
        agents=(
            Agent(id="ann", name="Ann", departments=("sales",), capacity=5),
            Agent(id="cy", name="Cy", departments=("support",), capacity=5),
        ),
        visitor_grace=15,
    )


def _signed(visitor_id: str) -> dict[str, str]:
    signature = hmac.new(SECRET.encode(), visitor_id.encode(), hashlib.sha256).hexdigest()
    return {"visitor_id": visitor_id, "visitor_signature": signature}


@dataclass
class Desk:
    """Two departments' data: a live chat, an open offer, a missed-chat ticket and a canned
    message each (the keys are ``own`` and ``other``), and the connections that made them."""

    gw: Harness
    ann: Client  # the agent of sales
    cy: Client  # the agent of support
    visitors: dict[str, Client] = field(default_factory=dict)
    chats: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    offers: dict[str, str] = field(default_factory=dict)
    tickets: dict[str, int] = field(default_factory=dict)
    canned: dict[str, str] = field(default_factory=dict)
    category: str = ""


async def _missed_ticket(engine: Engine, department: str) -> int:
    """A chat of the verified visitor v-1 that nobody was online to take."""
    visitor = Visitor(name="Vera", email="vera@example.com", visitor_id="v-1")
    async with engine.open_chat(department=department, question="earlier", visitor=visitor) as c:
        chat_id = c.chat_id
    await trio.testing.wait_all_tasks_blocked()
    ticket = await engine.ticket_for_chat(chat_id)
    assert ticket.id is not None
    return ticket.id


@pytest.fixture
async def desk(engine: Engine) -> AsyncIterator[Desk]:
    general = await engine.canned.add_category("General")
    canned = {
        whose: (
            await engine.canned.add_message(f"{d} answer", category=general.id, department=d)
        ).id
        for whose, d in DEPARTMENT.items()
    }
    tickets = {whose: await _missed_ticket(engine, d) for whose, d in DEPARTMENT.items()}
    settings = ServerSettings(identity_secret=SECRET)
    async with open_gateway(engine, settings) as gw, AsyncExitStack() as stack:
        ann = await stack.enter_async_context(gw.agent("ann"))
        cy = await stack.enter_async_context(gw.agent("cy"))
        world = Desk(gw=gw, ann=ann, cy=cy, tickets=tickets, canned=canned, category=general.id)
        for whose, agent in (("own", ann), ("other", cy)):
            visitor = await stack.enter_async_context(gw.visitor())
            reply = await visitor.request(
                "open_chat",
                department=DEPARTMENT[whose],
                name="Vera",
                email="vera@example.com",
                question="now",
                **_signed("v-1"),
            )
            chat_id = str(reply["chat_id"])
            offer = await agent.wait_for("offer", chat_id=chat_id)
            await agent.request("accept", offer_id=offer.fields["offer_id"])
            world.visitors[whose], world.chats[whose] = visitor, chat_id
            world.tokens[whose] = str(reply["resume_token"])
            waiting = await stack.enter_async_context(gw.visitor())
            reply = await waiting.request(
                "open_chat", department=DEPARTMENT[whose], name="Wes", question="waiting"
            )
            offer = await agent.wait_for("offer", chat_id=reply["chat_id"])
            world.offers[whose] = str(offer.fields["offer_id"])
        yield world


Reply = Mapping[str, Any]
Step = Callable[[Desk, str, Client], Awaitable["Reply | bool"]]


def _ids(items: object, key: str) -> list[object]:
    assert isinstance(items, list | tuple)
    return [item[key] for item in items]


async def _rate(desk: Desk, whose: str, me: Client) -> Reply:
    await desk.ann.request("end_chat", chat_id=desk.chats[whose])
    await me.wait_for("ended")
    return await me.request("rate", rating="good")


async def _resume(desk: Desk, whose: str, me: Client) -> bool:
    """Resume the own chat's token, naming the chat of ``whose``."""
    hello = {"resume_token": desk.tokens["own"], "chat_id": desk.chats[whose]}
    async with desk.gw.visitor(**hello) as again:
        return again.hello["resumed"] is True


async def _tickets(desk: Desk, whose: str, me: Client, view: str) -> bool:
    fields: dict[str, object] = {"view": view}
    if view == "department":
        fields["department"] = DEPARTMENT[whose]
    if view == "visitor":
        fields["visitor_email"] = "vera@example.com"
    reply = await me.request("tickets", **fields)
    return desk.tickets[whose] in _ids(reply["tickets"], "id")


async def _open_chat(desk: Desk, whose: str, me: Client) -> Reply:
    if me is desk.visitors["own"]:  # a visitor opens its chats one at a time
        async with desk.gw.visitor() as fresh:
            return await _open_chat(desk, whose, fresh)
    return await me.request("open_chat", department="sales", name="Ny", question="new")


async def _webhook_remove(desk: Desk, whose: str, me: Client) -> Reply:
    hook = Webhook(id="old", url="https://crm.example.com/old", secret="0123456789abcdef")
    await desk.gw.engine.store.save_webhook(hook)
    return await me.request("webhook_remove", id="old")


STEPS: dict[str, Step] = {
    "open_chat": _open_chat,
    "send": lambda d, w, me: me.request("send", chat_id=d.chats[w], text="hello"),
    "typing": lambda d, w, me: me.request("typing", chat_id=d.chats[w], on=True),
    "leave": lambda d, w, me: me.request("leave"),
    "rate": _rate,
    "hello (resume)": _resume,
    "set_status": lambda d, w, me: me.request("set_status", status="online"),
    "set_ringtone": lambda d, w, me: me.request("set_ringtone", on=False),
    "accept": lambda d, w, me: me.request("accept", offer_id=d.offers[w]),
    "decline": lambda d, w, me: me.request("decline", offer_id=d.offers[w]),
    "transfer": lambda d, w, me: me.request("transfer", chat_id=d.chats[w], to_agent="cy"),
    "cancel_transfer": lambda d, w, me: me.request("cancel_transfer", chat_id=d.chats[w]),
    "invite": lambda d, w, me: me.request("invite", chat_id=d.chats[w], to_agent="cy"),
    "cancel_invite": lambda d, w, me: me.request("cancel_invite", chat_id=d.chats[w]),
    "leave_chat": lambda d, w, me: me.request("leave_chat", chat_id=d.chats[w]),
    "end_chat": lambda d, w, me: me.request("end_chat", chat_id=d.chats[w]),
    "cancel_end": lambda d, w, me: me.request("cancel_end", chat_id=d.chats[w]),
    "available_agents": lambda d, w, me: me.request("available_agents", department=DEPARTMENT[w]),
    "visitor_panel": lambda d, w, me: me.request("visitor_panel", chat_id=d.chats[w]),
    "canned_pick": lambda d, w, me: me.request(
        "canned_pick", message_id=d.canned[w], chat_id=d.chats["own"]
    ),
    "tickets (department)": lambda d, w, me: _tickets(d, w, me, "department"),
    "tickets (missed)": lambda d, w, me: _tickets(d, w, me, "missed"),
    "tickets (visitor)": lambda d, w, me: _tickets(d, w, me, "visitor"),
    "ticket": lambda d, w, me: me.request("ticket", ticket_id=d.tickets[w]),
    "mark_handled": lambda d, w, me: me.request("mark_handled", ticket_id=d.tickets[w]),
    "department_list": lambda d, w, me: me.request("department_list"),
    "agent_list": lambda d, w, me: me.request("agent_list"),
    "token_issue": lambda d, w, me: me.request("token_issue", agent_id="cy"),
    "rating_report": lambda d, w, me: me.request("rating_report"),
    "tag": lambda d, w, me: me.request("tag", chat_id=d.chats[w], tags=["vip"]),
    "routing_trace": lambda d, w, me: me.request("routing_trace", chat_id=d.chats[w]),
    "department_add": lambda d, w, me: me.request("department_add", id="billing", name="Billing"),
    "department_update": lambda d, w, me: me.request(
        "department_update", id=DEPARTMENT[w], name="Renamed"
    ),
    "agent_add": lambda d, w, me: me.request(
        "agent_add", id="dan", name="Dan", departments=[DEPARTMENT[w]]
    ),
    "agent_update": lambda d, w, me: me.request(
        "agent_update", id={"own": "ann", "other": "cy"}[w], capacity=4
    ),
    "agent_remove": lambda d, w, me: me.request(
        "agent_remove", id={"own": "ann", "other": "cy"}[w]
    ),
    "canned_category_add": lambda d, w, me: me.request("canned_category_add", name="More"),
    "canned_category_rename": lambda d, w, me: me.request(
        "canned_category_rename", id=d.category, name="Common"
    ),
    "canned_category_delete": lambda d, w, me: me.request(
        "canned_category_delete", id=d.category, messages="delete"
    ),
    "canned_add": lambda d, w, me: me.request(
        "canned_add", text="new", category=d.category, department=DEPARTMENT[w]
    ),
    "canned_edit": lambda d, w, me: me.request("canned_edit", id=d.canned[w], text="changed"),
    "canned_delete": lambda d, w, me: me.request("canned_delete", id=d.canned[w]),
    "webhook_add": lambda d, w, me: me.request(
        "webhook_add", url="https://crm.example.com/hook", secret="0123456789abcdef", id="crm"
    ),
    "webhook_list": lambda d, w, me: me.request("webhook_list"),
    "webhook_remove": _webhook_remove,
    "webhook_failures": lambda d, w, me: me.request("webhook_failures"),
    "webhook_replay": lambda d, w, me: me.request("webhook_replay"),
    "webhook_discard": lambda d, w, me: me.request("webhook_discard"),
}


async def _panel_history(desk: Desk, whose: str, me: Client) -> bool:
    """The panel of the agent's own chat, whose verified visitor has a ticket in each
    department: is the ticket of ``whose`` listed?"""
    reply = await me.request("visitor_panel", chat_id=desk.chats["own"])
    ticket = await desk.gw.engine.ticket(desk.tickets[whose])
    return ticket.chat_id in _ids(reply["previous_tickets"], "chat_id")


async def _suggest(desk: Desk, whose: str, me: Client) -> bool:
    reply = await me.request("canned_suggest", draft="#answer")
    return desk.canned[whose] in _ids(reply["suggestions"], "message_id")


async def _canned_list(desk: Desk, whose: str, me: Client) -> bool:
    reply = await me.request("canned_list", department=DEPARTMENT[whose])
    return desk.canned[whose] in _ids(reply["messages"], "id")


async def _supervise_start(desk: Desk, whose: str, me: Client) -> bool:
    reply = await me.request("supervise_start")
    return desk.chats[whose] in _ids(reply["chats"], "chat_id")


async def _unmonitor(desk: Desk, whose: str, me: Client) -> Reply:
    chat_id = desk.chats[whose]
    try:
        await me.request("monitor", chat_id=chat_id)
    except ClientError as exc:
        if exc.code != "not_found":
            raise
    return await me.request("unmonitor", chat_id=chat_id)


async def _send_barged(desk: Desk, whose: str, me: Client) -> Reply:
    await me.request("barge", chat_id=desk.chats[whose])
    return await me.request("send", chat_id=desk.chats[whose], text="supervisor here")


async def _audit_list(desk: Desk, whose: str, me: Client) -> Reply:
    reply = await me.request("audit_list")
    assert isinstance(reply["entries"], list | tuple)
    return reply


STEPS["supervise_start"] = _supervise_start
STEPS["supervise_stop"] = lambda d, w, me: me.request("supervise_stop")
STEPS["monitor"] = lambda d, w, me: me.request("monitor", chat_id=d.chats[w])
STEPS["unmonitor"] = _unmonitor
STEPS["whisper"] = lambda d, w, me: me.request("whisper", chat_id=d.chats[w], text="psst")
STEPS["barge"] = lambda d, w, me: me.request("barge", chat_id=d.chats[w])
STEPS["reassign"] = lambda d, w, me: me.request(
    "reassign", chat_id=d.chats[w], to_department=ELSEWHERE[w]
)
STEPS["send (barged)"] = _send_barged
STEPS["audit_list"] = _audit_list
STEPS["token_issue (supervisor)"] = lambda d, w, me: me.request(
    "token_issue", role="supervisor", name="sue", departments=["sales"]
)
STEPS["visitor_panel (history)"] = _panel_history
STEPS["canned_suggest"] = _suggest
STEPS["canned_list"] = _canned_list


async def _departments(desk: Desk, whose: str, me: Client) -> bool:
    reply = await me.request("departments")
    return sorted(DEPARTMENT.values()) == sorted(_ids(reply["departments"], "id"))


STEPS["departments"] = _departments


async def outcome(desk: Desk, role: str, request: str, whose: str) -> str:
    """What ``role`` gets for ``request`` about the data of ``whose``."""
    me = {"agent": desk.ann, "visitor": desk.visitors["own"]}.get(role)
    async with AsyncExitStack() as stack:
        if role == "supervisor":
            me = await stack.enter_async_context(desk.gw.supervisor("sue", "sales"))
        elif me is None:
            me = await stack.enter_async_context(desk.gw.admin())
        try:
            result = await STEPS[request](desk, "own" if whose == "-" else whose, me)
        except ClientError as exc:
            return exc.code
    return "hidden" if result is False else "ok"


@pytest.mark.parametrize(("role", "request_", "whose", "expected"), RULES)
async def test_who_may_see_what(
    desk: Desk, autojump_clock: MockClock, role: str, request_: str, whose: str, expected: str
) -> None:
    """Each row of the table, over the wire."""
    assert expected == await outcome(desk, role, request_, whose)


def _spec_rows() -> list[tuple[str, str, str, str]]:
    text = SPEC.read_text(encoding="utf-8")
    section = text.split("### Who may see what", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.replace("`", "").strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in ("visitor", "agent", "supervisor", "admin"):
            rows.append((cells[0], cells[1], cells[2], cells[3]))
    return rows


def test_spec_has_the_same_table() -> None:
    """SPEC.md's "Who may see what" table is this table, row for row."""
    assert list(RULES) == _spec_rows()


def test_every_request_is_walked() -> None:
    """Every request type of every role appears in the table at least once."""
    walked = {re.sub(r" \(.*\)$", "", request) for _, request, _, _ in RULES}
    missing = {t for t in REQUESTS if t not in ("hello", "ping")} - walked
    assert not missing, f"not in the table: {sorted(missing)}"
