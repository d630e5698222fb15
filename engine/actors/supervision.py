"""Supervision, and the two small actors: an agent's and a department's.

Every actor runs inside `supervise`: it catches `Exception` (never `Cancelled`), logs it, and always
tells the router in `finally` that the actor is down, so a crash in one chat never takes another
with it and nothing the crashed actor held is forgotten.

An agent actor serialises one agent's commands (its own bounded mailbox, so one agent flooding the
engine fills only its own queue), forwards them upward to the router, and counts the agent's open
connections: the first one opening and the last one closing are what the router hears about.

A department actor stores its department's settings and then tells the router; the router keeps the
department's queue, since taking a chat off it and reserving an agent must be one decision.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from ..model.errors import EngineError
from ..store.contract import Store
from . import messages as m
from .outbox import Outbox, Outlet

log = structlog.get_logger("helpline.actors")


async def supervise(
    kind: str,
    name: str,
    run: Callable[[], Awaitable[None]],
    router: trio.MemorySendChannel[m.ToRouter],
    snapshot: Callable[[], Any] | None = None,
    on_exit: Callable[[], None] | None = None,
) -> None:
    """Run one actor; whatever happens, tell the router it is down."""
    crashed = False
    try:
        await run()
    except Exception:
        crashed = True
        log.exception("actor_crashed", actor=kind, name=name)
    finally:
        if on_exit is not None:
            on_exit()
        down = m.ActorDown(
            kind=kind,
            name=name,
            crashed=crashed,
            snapshot=snapshot() if crashed and snapshot is not None else None,
        )
        with trio.move_on_after(5, shield=True):
            try:
                await router.send(down)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the engine is stopping


class AgentActor:
    """One agent's command queue and connection count."""

    def __init__(
        self,
        *,
        agent_id: str,
        inbox: trio.MemoryReceiveChannel[m.ToAgent],
        router: trio.MemorySendChannel[m.ToRouter],
        outbox: Outbox,
    ) -> None:
        self.agent_id = agent_id
        self.outbox = outbox
        self._inbox = inbox
        self._router = router
        self._plugged: set[Outlet] = set()  # open connections, including ones dropped as slow

    async def run(self) -> None:
        async with self._inbox:
            async for msg in self._inbox:
                if isinstance(msg, m.Plug):
                    self._plugged.add(msg.outlet)
                    self.outbox.add(msg.outlet)
                    first = len(self._plugged) == 1
                    await self._router.send(
                        m.Connected(agent_id=self.agent_id, outlet=msg.outlet, first=first)
                    )
                elif isinstance(msg, m.Unplug):
                    if msg.outlet not in self._plugged:
                        continue
                    self._plugged.discard(msg.outlet)
                    self.outbox.remove(msg.outlet)
                    if not self._plugged:
                        await self._router.send(m.Disconnected(agent_id=self.agent_id))
                else:
                    await self._router.send(msg)


class DepartmentActor:
    """One department's settings: stored first, then applied by the router."""

    def __init__(
        self,
        *,
        department_id: str,
        inbox: trio.MemoryReceiveChannel[m.Configure],
        router: trio.MemorySendChannel[m.ToRouter],
        store: Store,
    ) -> None:
        self.department_id = department_id
        self._inbox = inbox
        self._router = router
        self._store = store

    async def run(self) -> None:
        async with self._inbox:
            async for msg in self._inbox:
                try:
                    await self._store.save_department(msg.department)
                except Exception as exc:
                    log.error(
                        "department_not_stored", department=self.department_id, error=repr(exc)
                    )
                    m.answer(msg.reply, EngineError("store_unavailable", "not saved; try again"))
                    continue
                await self._router.send(m.DepartmentChanged(department=msg.department))
                m.answer(msg.reply, msg.department)
