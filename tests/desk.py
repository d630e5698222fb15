"""A help desk to drive an engine with, one line per step, so that a test reads as a specification.

In the manner of h11's ``ConnectionPair``: ``open_desk`` starts an engine on a temporary SQLite
file under the test's autojump clock (the store holds the clock still while it works), and the
``Desk`` it yields signs agents in, opens visitors' chats and drives the handshakes (offer, accept,
decline, transfer, invite, end) by name::

    async with open_desk(config) as desk:
        await desk.sign_in("ann", "bob")
        chat = await desk.chat("ann")                      # opened, offered and accepted by ann
        await desk.transfer("ann", chat, to_agent="bob")
        await desk.accept("bob", chat)
        assert (await desk.chat_view(chat)).owner == "bob"
        assert of_type(await desk.events("ann"), ChatRemoved)

A participant is named by its agent id, or by its chat id for the chat's visitor. What each one is
sent is collected as it arrives: ``events(who)`` returns what came since the last read of ``who``
(``offer`` reads too), and ``seen[who]`` keeps everything in order. Everything goes through the
public API: the handles are there (``agent(id)``, ``visitor(chat)``) for any call the desk has no
line for.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TypeVar

import trio
import trio.testing
from trio.testing import MockClock

from engine import (
    AgentConnection,
    AgentStatus,
    ChatView,
    Engine,
    EngineConfig,
    Event,
    Offer,
    RouterView,
    Visitor,
    VisitorChat,
    hold_clock_for_store,
    open_engine,
)

from .helpers import check_invariants, of_type

__all__ = ["VISITOR", "Desk", "of_type", "open_desk"]

E = TypeVar("E")

VISITOR = Visitor(name="Vera", email="vera@example.com")


class Desk:
    """An engine with agents and visitors driven by name; get one from ``open_desk``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: Every event each participant was sent, in order, by agent id or chat id.
        self.seen: dict[str, list[Event]] = {}
        self._unread: dict[str, list[Event]] = {}
        self._agents: dict[str, AgentConnection] = {}
        self._visitors: dict[str, VisitorChat] = {}
        self._exits: dict[str, contextlib.AsyncExitStack] = {}

    # -- participants ---------------------------------------------------------------------------

    def agent(self, agent_id: str) -> AgentConnection:
        """The connection of a signed-in agent."""
        return self._agents[agent_id]

    def visitor(self, chat_id: str) -> VisitorChat:
        """The visitor's handle of a chat the desk opened."""
        return self._visitors[chat_id]

    async def sign_in(
        self, *agent_ids: str, status: AgentStatus | str | None = "online"
    ) -> list[AgentConnection]:
        """Connect the named agents and set their status (online unless told otherwise; None
        leaves it as it is)."""
        connections = []
        for agent_id in agent_ids:
            exits = contextlib.AsyncExitStack()
            connection = await exits.enter_async_context(self.engine.connect_agent(agent_id))
            self._agents[agent_id], self._exits[agent_id] = connection, exits
            if status is not None:
                await connection.set_status(status)
            connections.append(connection)
        return connections

    async def sign_out(self, agent_id: str) -> None:
        """Close the agent's connection (a disconnect: its grace starts). What it had not read is
        kept in ``seen`` only."""
        await self._collect(agent_id)
        self._unread.pop(agent_id, None)
        del self._agents[agent_id]
        await self._exits.pop(agent_id).aclose()

    async def open_chat(
        self,
        department: str = "sales",
        question: str = "Help",
        visitor: Visitor = VISITOR,
        *,
        skills: Sequence[str] = (),
    ) -> str:
        """A visitor opens a chat; returns its id (which names the visitor from now on)."""
        exits = contextlib.AsyncExitStack()
        chat = await exits.enter_async_context(
            self.engine.open_chat(
                department=department, question=question, visitor=visitor, skills=skills
            )
        )
        self._visitors[chat.chat_id], self._exits[chat.chat_id] = chat, exits
        return chat.chat_id

    async def resume(self, chat_id: str, last_seq: int = 0) -> VisitorChat:
        """The visitor of ``chat_id`` comes back (after ``close_visitor``), from ``last_seq``."""
        exits = contextlib.AsyncExitStack()
        chat = await exits.enter_async_context(self.engine.resume_chat(chat_id, last_seq=last_seq))
        self._visitors[chat_id], self._exits[chat_id] = chat, exits
        return chat

    async def close_visitor(self, chat_id: str) -> None:
        """The visitor's connection goes away without leaving the chat. What it had not read is
        kept in ``seen`` only."""
        await self._collect(chat_id)
        self._unread.pop(chat_id, None)
        del self._visitors[chat_id]
        await self._exits.pop(chat_id).aclose()

    async def aclose(self) -> None:
        for exits in reversed(list(self._exits.values())):
            await exits.aclose()
        self._exits.clear()

    # -- handshakes -----------------------------------------------------------------------------

    async def offer(self, agent_id: str, chat_id: str = "") -> Offer:
        """The newest offer the agent was sent (for ``chat_id`` if given); reads its events."""
        offers = of_type(await self.events(agent_id), Offer)
        offers = [o for o in offers if not chat_id or o.chat_id == chat_id]
        assert offers, f"{agent_id} got no offer{f' for {chat_id}' if chat_id else ''}"
        return offers[-1]

    async def accept(self, agent_id: str, chat_id: str) -> str:
        """The agent accepts its newest offer for the chat (reading its events); returns the chat
        id the engine answered."""
        offer = await self._newest_offer(agent_id, chat_id)
        return await self.agent(agent_id).accept(offer.offer_id)

    async def decline(self, agent_id: str, chat_id: str) -> None:
        """The agent declines its newest offer for the chat (reading its events)."""
        offer = await self._newest_offer(agent_id, chat_id)
        await self.agent(agent_id).decline(offer.offer_id)

    async def chat(
        self,
        agent_id: str,
        department: str = "sales",
        question: str = "Help",
        visitor: Visitor = VISITOR,
    ) -> str:
        """A chat opened by a visitor and accepted by ``agent_id``; returns its id."""
        chat_id = await self.open_chat(department, question, visitor)
        await self.accept(agent_id, chat_id)
        return chat_id

    async def transfer(
        self,
        agent_id: str,
        chat_id: str,
        *,
        to_agent: str = "",
        to_department: str = "",
        note: str = "",
    ) -> str:
        """The owner asks to transfer the chat; returns the handoff's id."""
        return await self.agent(agent_id).transfer(
            chat_id, to_agent=to_agent, to_department=to_department, note=note
        )

    async def invite(self, agent_id: str, chat_id: str, *, to_agent: str, note: str = "") -> str:
        """A member invites another agent into the chat; returns the handoff's id."""
        return await self.agent(agent_id).invite(chat_id, to_agent=to_agent, note=note)

    async def end(self, agent_id: str, chat_id: str, *, delay: float = 0.0) -> int | None:
        """The owner ends the chat (after ``delay`` seconds); returns the ticket id if it ended."""
        return await self.agent(agent_id).end_chat(chat_id, delay=delay)

    # -- what happened --------------------------------------------------------------------------

    async def events(self, who: str) -> list[Event]:
        """What ``who`` (an agent id, or a chat id for its visitor) was sent since the last read,
        once every actor has done what it can without the clock moving."""
        await self._collect(who)
        unread, self._unread[who] = self._unread.get(who, []), []
        return unread

    async def view(self) -> RouterView:
        """The router's whole picture once every actor has done what it can without the clock
        moving, checked against the invariants of DESIGN.md."""
        await trio.testing.wait_all_tasks_blocked()
        view = await self.engine.inspect()
        check_invariants(view)
        return view

    async def chat_view(self, chat_id: str) -> ChatView | None:
        """One chat as the router sees it once every actor has done what it can."""
        await trio.testing.wait_all_tasks_blocked()
        return await self.engine.chat_view(chat_id)

    async def _newest_offer(self, agent_id: str, chat_id: str) -> Offer:
        await self.events(agent_id)
        offers = [o for o in of_type(self.seen.get(agent_id, []), Offer) if o.chat_id == chat_id]
        assert offers, f"{agent_id} got no offer for {chat_id}"
        return offers[-1]

    async def _collect(self, who: str) -> None:
        await trio.testing.wait_all_tasks_blocked()
        handle: AgentConnection | VisitorChat | None = self._agents.get(who) or self._visitors.get(
            who
        )
        if handle is None:
            return
        events = handle.pending_events()
        self.seen.setdefault(who, []).extend(events)
        self._unread.setdefault(who, []).extend(events)


@contextlib.asynccontextmanager
async def open_desk(config: EngineConfig, *, db: Path | None = None) -> AsyncIterator[Desk]:
    """A desk on an engine over a SQLite file (a temporary one unless ``db``), for a test that runs
    under trio's autojump ``MockClock``."""
    assert isinstance(trio.lowlevel.current_clock(), MockClock), "add autojump_clock to the test"
    with hold_clock_for_store(), tempfile.TemporaryDirectory() as tmp:
        path = db if db is not None else Path(tmp) / "desk.db"
        async with open_engine(config, db=path, synchronous="NORMAL") as engine:
            desk = Desk(engine)
            try:
                yield desk
            finally:
                await desk.aclose()
