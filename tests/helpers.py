"""Drivers for engine tests: read what a handle was sent, and check the invariants of DESIGN.md."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import trio
import trio.testing

from engine import AgentConnection, Engine, Event, Offer, RouterView, Visitor, VisitorChat

E = TypeVar("E")


async def settle() -> None:
    """Let every actor run until nothing more happens without the clock moving."""
    await trio.testing.wait_all_tasks_blocked()


async def drain(handle: AgentConnection | VisitorChat) -> list[Event]:
    """Everything delivered to `handle` so far."""
    await settle()
    return handle.pending_events()


def of_type(events: list[Event], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


async def offer_for(agent: AgentConnection, chat_id: str = "") -> Offer:
    """The newest open offer the agent received (for `chat_id` if given)."""
    offers = [o for o in of_type(await drain(agent), Offer) if not chat_id or o.chat_id == chat_id]
    assert offers, f"{agent.agent_id} got no offer"
    return offers[-1]


def check_invariants(view: RouterView) -> None:
    """Invariants 1 and 3 of DESIGN.md on one consistent picture of the router."""
    for chat in view.chats.values():
        assert len(set(chat.members)) == len(chat.members)
        if chat.owner:
            assert chat.owner in chat.members
        for agent_id in chat.members:
            assert chat.id in view.agents[agent_id].chats
    for agent in view.agents.values():
        assert agent.load <= agent.capacity, f"{agent.id} over capacity: {agent}"
        for chat_id in agent.chats:
            assert agent.id in view.chats[chat_id].members
        if agent.offers:
            assert agent.status == "online", f"{agent.id} offered while offline"
            # offers restored at start wait for their agent to connect; no other offer may
            assert agent.connected or agent.recovering, f"{agent.id} offered while disconnected"
    for chat in view.chats.values():
        for agent_id in chat.offer_agents:
            assert chat.department in view.agents[agent_id].departments


VISITOR = Visitor(name="Vera", email="vera@example.com")


@asynccontextmanager
async def agents(engine: Engine, *ids: str) -> AsyncIterator[list[AgentConnection]]:
    """Connect and bring online the named agents."""
    async with contextlib.AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(engine.connect_agent(i)) for i in ids]
        for c in conns:
            await c.set_status("online")
        yield conns


@asynccontextmanager
async def chat_with(
    engine: Engine, owner: AgentConnection, department: str = "sales"
) -> AsyncIterator[VisitorChat]:
    """A visitor's chat already accepted by `owner`."""
    async with engine.open_chat(department=department, question="Help", visitor=VISITOR) as v:
        await owner.accept((await offer_for(owner, v.chat_id)).offer_id)
        yield v
