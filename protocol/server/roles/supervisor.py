"""A supervisor's connection: the live desk, monitoring and whispering, barging in, reassigning.

Theory of operation
-------------------
A supervisor signs in with a token scoped to departments (``token_issue`` with role
``supervisor``, or ``helpline token --supervisor NAME --department D``); an admin's token signs
in a supervisor of every department. The connection holds one engine ``SupervisorConnection`` for
its life, and a pump moves its events (``desk_changed``, the lines of monitored chats and of
chats it barged into) to the connection's queue. A slow reader is closed with 4000 like any other.

The requests an admin may also send (the desk, monitoring, whispers, reassigning) live in
:class:`Supervising`, which an admin's connection uses too, over a supervisor handle of every
department opened on its first such request. The engine checks the scope (a chat of another
department is ``not_found``) and writes each act to the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from engine import EngineError, SupervisorConnection

from ...wire.frames import Request
from ...wire.records import (
    Fields,
    availability_record,
    desk_chat_record,
    desk_queue_record,
    routing_trace_record,
)
from ..auth import authenticate_supervisor
from .departments import departments_reply
from .tickets import TicketDesk

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["Supervising", "SupervisorRole", "open_supervisor"]

Handler = Callable[[Request], Awaitable[Fields]]
Handle = Callable[[], Awaitable[SupervisorConnection]]


async def open_supervisor(conn: Connection, request: Request) -> tuple[SupervisorRole, Fields]:
    """The hello of a supervisor: check its token, open its engine handle, describe it."""
    found = await authenticate_supervisor(conn.engine.store, request.require("token", str))
    if found is None:
        raise EngineError("unauthorized", "that token is unknown or was revoked")
    who, name, departments = found
    handle = await conn.stack.enter_async_context(
        conn.engine.connect_supervisor(who, name=name, departments=departments)
    )
    conn.log = conn.log.bind(supervisor=who)
    scope = None if departments is None else sorted(departments)
    return SupervisorRole(conn, handle), {
        "supervisor": {"id": who, "name": name, "departments": scope}
    }


async def pump(conn: Connection, handle: SupervisorConnection) -> None:
    """Move the handle's events to the connection; a slow reader is closed with 4000."""
    try:
        async for event in handle.events():
            conn.put_event(event)
    except EngineError:  # slow_consumer: the engine dropped this outlet
        conn.close(4000, "events were not read fast enough", flush=False)


class Supervising:
    """The requests of supervising: the desk, monitoring, whispers, reassigning."""

    def __init__(self, conn: Connection, handle: Handle) -> None:
        self._conn = conn
        self._handle = handle
        self.handlers: dict[str, Handler] = {
            "supervise_start": self._supervise_start,
            "supervise_stop": self._supervise_stop,
            "monitor": self._monitor,
            "unmonitor": self._unmonitor,
            "whisper": self._whisper,
            "reassign": self._reassign,
        }

    async def _supervise_start(self, request: Request) -> Fields:
        snapshot = await (await self._handle()).desk()
        return {
            "chats": [desk_chat_record(c) for c in snapshot.chats],
            "queues": [desk_queue_record(q) for q in snapshot.queues],
        }

    async def _supervise_stop(self, request: Request) -> Fields:
        await (await self._handle()).stop_desk()
        return {}

    async def _monitor(self, request: Request) -> Fields:
        chat_id = request.require("chat_id", str)
        seq = await (await self._handle()).monitor(chat_id)
        self._conn.log.info("monitoring", chat_id=chat_id)
        return {"chat_id": chat_id, "seq": seq}

    async def _unmonitor(self, request: Request) -> Fields:
        await (await self._handle()).unmonitor(request.require("chat_id", str))
        return {}

    async def _whisper(self, request: Request) -> Fields:
        chat_id = request.require("chat_id", str)
        seq = await (await self._handle()).whisper(chat_id, request.require("text", str))
        self._conn.log.info("whispered", chat_id=chat_id, seq=seq)
        return {"seq": seq, "at": self._conn.engine.now()}

    async def _reassign(self, request: Request) -> Fields:
        chat_id = request.require("chat_id", str)
        offer_id = await (await self._handle()).reassign(
            chat_id,
            to_agent=request.get("to_agent", str, ""),
            to_department=request.get("to_department", str, ""),
            note=request.get("note", str, ""),
        )
        self._conn.log.info("reassigned", chat_id=chat_id, offer_id=offer_id)
        return {"offer_id": offer_id}


class SupervisorRole:
    """The requests of one supervisor connection."""

    def __init__(self, conn: Connection, handle: SupervisorConnection) -> None:
        self._conn = conn
        self._handle = handle
        self._desk = TicketDesk(conn.engine, conn.gateway.name_of)

        async def get() -> SupervisorConnection:
            return handle

        self._handlers: dict[str, Handler] = {
            **Supervising(conn, get).handlers,
            "barge": self._barge,
            "send": self._send,
            "typing": self._typing,
            "leave_chat": self._leave_chat,
            "available_agents": self._available_agents,
            "tickets": self._tickets,
            "ticket": self._ticket,
            "routing_trace": self._routing_trace,
            "departments": self._departments,
        }

    def start(self) -> None:
        self._conn.start_soon(pump, self._conn, self._handle)

    async def _departments(self, request: Request) -> Fields:
        return await departments_reply(self._conn)

    posts: frozenset[str] = frozenset()  # a supervisor's lines are not pipelined

    async def post(
        self, request: Request, then: Callable[[int | EngineError], None]
    ) -> Callable[[], None]:
        raise AssertionError("a supervisor posts nothing")

    async def handle(self, request: Request) -> Fields:
        return await self._handlers[request.type](request)

    async def _barge(self, request: Request) -> Fields:
        chat_id = request.require("chat_id", str)
        await self._handle.barge(chat_id)
        self._conn.log.info("barged_in", chat_id=chat_id)
        return {"chat_id": chat_id}

    async def _send(self, request: Request) -> Fields:
        seq = await self._handle.send(
            request.require("chat_id", str),
            request.require("text", str),
            client_msg_id=request.get("client_msg_id", str, ""),
        )
        return {"seq": seq, "at": self._conn.engine.now()}

    async def _typing(self, request: Request) -> Fields:
        await self._handle.typing(request.require("chat_id", str), request.require("on", bool))
        return {}

    async def _leave_chat(self, request: Request) -> Fields:
        await self._handle.leave(request.require("chat_id", str))
        return {}

    async def _available_agents(self, request: Request) -> Fields:
        agents = await self._handle.available_agents(request.get("department", str, ""))
        return {"agents": [availability_record(a) for a in agents]}

    def _scope(self) -> frozenset[str] | None:
        return self._handle.departments

    async def _tickets(self, request: Request) -> Fields:
        return await self._desk.search(request, agent_id=None, scope=self._scope())

    async def _routing_trace(self, request: Request) -> Fields:
        chat_id = request.require("chat_id", str)
        trace = await self._conn.engine.routing_trace(chat_id)
        scope = self._scope()
        if trace is None or (
            scope is not None and not any(step.department in scope for step in trace.steps)
        ):
            raise EngineError("not_found", f"no routing trace of chat {chat_id!r}")
        return routing_trace_record(trace)

    async def _ticket(self, request: Request) -> Fields:
        return await self._desk.one(request, scope=self._scope())
