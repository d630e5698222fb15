"""A short embedded demo: simulated visitors and agents go through a day at the help desk.

Run it with ``make demo``, or ``python examples/demo.py [DATABASE FILE]``.

It runs the real engine over a real SQLite file and prints what happens: an accepted chat, a
transfer, an invite, a delayed ending, and a chat nobody could take, then the tickets those chats
became. `main` runs it on trio's simulated clock, so the half-minute delayed ending passes at once,
and sends only the engine's warnings and errors to standard error, so that standard output holds
the story alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import trio

from engine import (
    Agent,
    AgentConnection,
    Department,
    Engine,
    EngineConfig,
    Offer,
    RoutingMode,
    Ticket,
    Visitor,
    hold_clock_for_store,
    open_engine,
)
from protocol import configure_logging

DEMO_CONFIG = EngineConfig(
    departments=(
        Department(id="sales", name="Sales", offer_window=20),
        Department(id="support", name="Support", routing=RoutingMode.ASSIGNED),
        Department(id="billing", name="Billing"),
    ),
    agents=(
        Agent(id="aiko", name="Aiko", departments=("sales",), capacity=2),
        Agent(id="ben", name="Ben", departments=("sales", "support"), capacity=2),
        Agent(id="chloe", name="Chloe", departments=("support",), capacity=3),
    ),
)


async def run_demo(db: str | os.PathLike[str], say: Callable[[str], None] = print) -> list[Ticket]:
    """Play the demo against a fresh engine over `db`; returns the tickets it produced."""
    async with open_engine(DEMO_CONFIG, db=db) as engine:
        chat_ids = await _play(engine, say)
    async with open_engine(DEMO_CONFIG, db=db) as engine:
        tickets = [await engine.ticket_for_chat(c) for c in chat_ids]
    say("")
    say("Tickets:")
    for t in tickets:
        lines = sum(1 for e in t.entries if e.kind == "message")
        say(
            f"  #{t.id} {t.kind.value:<10} {t.department:<8} {t.end_reason.value:<16}"
            f" {lines} messages, handled by {', '.join(t.agents) or 'nobody'}: {t.question!r}"
        )
    return tickets


async def _play(engine: Engine, say: Callable[[str], None]) -> list[str]:
    chats: list[str] = []
    async with (
        engine.connect_agent("aiko") as aiko,
        engine.connect_agent("ben") as ben,
        engine.connect_agent("chloe") as chloe,
    ):
        for agent in (aiko, ben, chloe):
            await agent.set_status("online")
        say("Aiko, Ben and Chloe are online.")

        visitor = Visitor(name="Mina", email="mina@example.com", browser="Firefox", os="Linux")
        async with engine.open_chat(
            department="sales", question="Do you ship to Osaka?", visitor=visitor
        ) as mina:
            chats.append(mina.chat_id)
            offer = await _next_offer(aiko)
            say(f"Mina asks Sales: {offer.question!r}; offered to Aiko and Ben at once.")
            await aiko.accept(offer.offer_id)
            say("Aiko accepts; Ben's offer is withdrawn.")
            await mina.send("Hello! Do you ship to Osaka?")
            await aiko.send(mina.chat_id, "We do, within three days.")
            await mina.send("And can I pay by invoice?")
            await aiko.transfer(mina.chat_id, to_agent="ben", note="invoice question")
            offer = await _next_offer(ben, kind="transfer")
            say(f"Aiko transfers to Ben with a note: {offer.note!r}.")
            await ben.accept(offer.offer_id)
            say("Ben accepts and now holds the chat.")
            await ben.invite(mina.chat_id, to_agent="chloe", note="can you confirm the terms?")
            offer = await _next_offer(chloe, kind="invite")
            await chloe.accept(offer.offer_id)
            say("Ben invites Chloe; she joins and Ben stays.")
            await chloe.send(mina.chat_id, "Invoices are fine for orders over 100 EUR.")
            await ben.end_chat(mina.chat_id, delay=30)
            say("Ben ends the chat in 30 seconds...")
            await trio.sleep(31)
            say("...and it ends.")

        await aiko.set_status("offline")
        await ben.set_status("offline")
        say("Aiko and Ben go offline.")
        async with engine.open_chat(
            department="sales", question="Is the shop open on Sunday?", visitor=Visitor(name="Tom")
        ) as tom:
            chats.append(tom.chat_id)
            await trio.sleep(1)
        say("Tom asks Sales while nobody there is online: a missed chat.")
    return chats


async def _next_offer(agent: AgentConnection, kind: str = "chat") -> Offer:
    async for event in agent.events():
        if isinstance(event, Offer) and event.kind == kind:
            return event
    raise RuntimeError("the agent's connection closed before an offer came")


def main(db: str | os.PathLike[str] = "helpline-demo.db") -> None:
    """Run the demo on a simulated clock over a fresh database file; logs only warnings."""
    from trio.testing import MockClock

    configure_logging("console", level="warning")

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{db}{suffix}"):
            os.remove(f"{db}{suffix}")
    with hold_clock_for_store():
        trio.run(run_demo, db, clock=MockClock(autojump_threshold=0))


if __name__ == "__main__":
    main(*sys.argv[1:])
