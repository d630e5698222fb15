"""One WebSocket connection: hello, requests, replies, events, heartbeat and closing.

Theory of operation
-------------------
A connection is two tasks around one bounded queue of outgoing frames:

- the **reader** takes WebSocket messages one at a time, decodes each with the codec, and handles
  it to the end, with one exception: a chat line (``send``) is handed to its chat's session and
  the reader goes on to the next message while the session writes it (up to ``PIPELINE`` lines
  per connection at once; the session's answer queues the reply). So a client's lines in flight
  reach the session together and share one commit. Any other request first waits until those
  lines are answered, so requests still take effect in the order they were sent; replies to
  lines of different chats may arrive out of order, which SPEC.md section 2 allows. It reads
  nothing more while the queue is more than half full: a client that pipelines requests faster
  than it reads the replies is slowed down (TCP backpressure), not dropped;
- the **writer** sends the frames: it takes everything queued (without waiting for more) and
  writes the batch with one write. It is the heartbeat too: it waits for frames only until the
  next ping is due, pings every ``heartbeat_interval``, and closes with 4001 when a pong does not
  come back within ``heartbeat_timeout`` (the reader's transport sets the pong's event).

Events need no task of their own: a role attaches an :class:`EventSink` to each engine handle, and
the engine's fan-out calls it, which encodes the event and queues the frame at once (no wake-up,
no second queue; ``engine/actors/outbox.py``).

A hello's role picks its handler from the gateway's role table (``roles/__init__.py``). The
connection knows the roles only as :class:`RoleHandler` and the gateway only as :class:`Host`, so
it imports neither: the role modules and the gateway import it.

Rule 1: **nothing waits to enqueue.** Replies and events are put on the queue with
``send_nowait``. A full queue means the client does not read fast enough (the reader's pause keeps
replies to half of it, so what fills it is events): the connection is closed with 4000 at once
and the engine's disconnect grace takes over. A sink therefore answers the engine at once, and
one slow reader never slows a chat (DESIGN.md, "Fan-out never waits"). Replayed events (a
resumed chat's missed lines, a newcomer's transcript) are queued beyond the limit: a replay
never makes a client look slow.

Rule 2: **the first close wins.** :meth:`Connection.close` records a code and either lets the
writer flush what is queued first (an error event, a ``shutdown`` event) or skips the queue
(4000, 4001). The connection's main task then closes the transport, bounded by ``close_timeout``:
once the writer's batch in flight is written it stops the tasks, writes the close frame, shuts
the write side and drains what the client still sends (``Transport.aclose``), so the client
reads its close code. Leaving the reader's exit stack releases the engine
handles: a visitor's chat waits for its grace period, an agent's chats for the agent's.

Rule 3: **a fault stays in its connection.** An unexpected exception in any of the tasks is
logged, answered with ``internal`` when a request was being served, and closes this connection
with 1011; the gateway and the other connections carry on.

Refusals follow SPEC.md section 3: a frame without a readable ref gets an ``error`` event and close
1008 (1009 for an oversized frame, which the transport refuses on its header, before the codec);
a frame with a ref gets an error reply. Before a successful hello every refusal closes with 1008.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, Final, Protocol

import structlog
import trio

from engine import ChatMessage, Engine, EngineError, Event, StoreError

from ..wire.codec import (
    decode_request,
    encode_error,
    encode_event,
    encode_reply_error,
    encode_reply_ok,
)
from ..wire.errors import ProtocolError, wire_error
from ..wire.frames import PROTOCOL_VERSION, Request, Role
from ..wire.records import Fields, wire_event
from .handler import RoleHandler
from .metrics import ServerStats
from .ratelimit import TokenBucket
from .registry import Registry
from .settings import ServerSettings
from .transport import ConnectionClosed, Transport

__all__ = ["Connection", "EventSink", "Host", "RoleHandler", "RoleOpener", "TokenBucket"]

log = structlog.get_logger("helpline.gateway")

_FLUSH: Final = object()  # queued behind the last frame of a flushing close
PIPELINE: Final = 8  # chat lines of one connection handed to sessions and not yet answered
_encoded: tuple[Event, object, bytes] | None = None  # the last event encoded (see put_event)


RoleOpener = Callable[["Connection", Request], Awaitable[tuple[RoleHandler, Fields]]]
"""Signs a hello in as one role: the role's handler and the hello reply's extra fields."""


class Host(Protocol):
    """What a connection needs from the gateway that accepted it."""

    engine: Engine
    settings: ServerSettings
    registry: Registry
    stats: ServerStats
    roles: Mapping[Role, RoleOpener]  # the role table (``roles/``)

    def name_of(self, agent_id: str) -> str:
        """An agent's display name, or its id once it was removed."""


class EventSink:
    """Feeds one engine handle's events straight into its connection's queue (an outbox `Sink`).

    ``see`` lets the role note an event before it is queued (an offer, the end of the chat);
    ``gone`` hears that the handle's outlet closed (``kicked``: as a slow consumer). Both run in
    the engine's actor that pushed, so a fault is caught here and closes this connection only
    (Rule 3).
    """

    __slots__ = ("_conn", "_gone", "_see")

    def __init__(
        self,
        conn: Connection,
        see: Callable[[Event], None] | None = None,
        gone: Callable[[bool], None] | None = None,
    ) -> None:
        self._conn = conn
        self._see = see
        self._gone = gone

    def push(self, event: Event) -> bool:
        conn = self._conn
        if conn._closing:
            return False
        try:
            if self._see is not None:
                self._see(event)
            conn.put_event(event)
        except Exception:
            conn._fault()
        return not conn._closing

    def replay(self, events: Sequence[Event]) -> None:
        conn = self._conn
        try:
            for event in events:
                if self._see is not None:
                    self._see(event)
                conn.put_event(event, replayed=True)
        except Exception:
            conn._fault()

    def closed(self, kicked: bool) -> None:
        try:
            if kicked:
                self._conn.close(4000, "events were not read fast enough", flush=False)
            elif self._gone is not None:
                self._gone(kicked)
        except Exception:
            self._conn._fault()


class Connection:
    """One client connection; ``run`` serves it until it closes."""

    __slots__ = (
        "__weakref__",
        "_bucket",
        "_closing",
        "_done",
        "_handler",
        "_high_water",
        "_limit",
        "_nursery",
        "_pings",
        "_posted",
        "_queue",
        "_replayed",
        "_room",
        "_scopes",
        "_serial",
        "_settled",
        "_skip_queue",
        "_stats",
        "_stopped",
        "_timed",
        "_writable",
        "close_code",
        "close_reason",
        "engine",
        "gateway",
        "log",
        "peer",
        "registry",
        "role",
        "settings",
        "stack",
        "ws",
    )

    def __init__(self, gateway: Host, ws: Transport, peer: str) -> None:
        self.gateway = gateway
        self.engine = gateway.engine
        self.settings = gateway.settings
        self.registry = gateway.registry
        self._stats = gateway.stats
        self._timed = gateway.settings.metrics  # time the visitor's lines to the agents
        self.ws = ws
        self.role: Role | None = None
        self.peer = peer  # "host:port" of the remote end (or what the stream knows of it)
        self.log = log.bind(peer=peer)
        self.stack = AsyncExitStack()  # engine handles; unwound by the reader task
        self.close_code: int | None = None
        self.close_reason = ""
        self._handler: RoleHandler | None = None
        self._queue: list[Any] = []  # frames to write, and _FLUSH (the writer swaps it)
        self._limit = self.settings.outbound_queue
        self._replayed = 0  # frames of replays in the queue, not counted against the limit
        self._writable = trio.lowlevel.ParkingLot()  # the writer waits here for frames
        self._closing = False
        self._skip_queue = False  # a close that drops what is queued (Rule 2)
        self._high_water = self.settings.outbound_queue // 2  # the reader pauses above it
        # set by the writer each time it takes frames off the queue (made when the reader waits)
        self._room: trio.Event | None = None
        self._done = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._scopes: list[trio.CancelScope] = []  # of the reader, the writer and role tasks
        self._stopped = False
        self._bucket = TokenBucket(self.settings.rate, self.settings.burst, trio.current_time())
        self._pings = 0
        self._posted: dict[int, tuple[float, Callable[[], None]]] = {}  # lines not answered yet
        self._serial = 0
        self._settled: trio.Event | None = None  # set when a posted line is answered (if waited)

    # -- for role handlers -------------------------------------------------------------------------

    def put(self, frame: bytes, *, replayed: bool = False) -> None:
        """Queue one frame; a full queue closes the connection as a slow consumer (Rule 1)."""
        if self._closing:
            return
        queue = self._queue
        if replayed:
            self._replayed += 1
        elif len(queue) - self._replayed >= self._limit:
            self.close(4000, "events were not read fast enough", flush=False)
            return
        queue.append(frame)
        if len(queue) == 1:
            self._writable.unpark()

    def put_event(self, event: Event, *, replayed: bool = False) -> None:
        """Queue the wire event for one engine event.

        An event fanned out to several connections is encoded once: the engine pushes it to one
        participant after another, so the last frame encoded is kept with its event (and the
        gateway whose names it used) and reused while the same event comes by.
        """
        global _encoded
        last = _encoded
        if last is not None and last[0] is event and last[1] is self.gateway:
            frame = last[2]
        else:
            name, fields = wire_event(event, self.gateway.name_of)
            frame = encode_event(name, **fields)
            _encoded = (event, self.gateway, frame)
        self.put(frame, replayed=replayed)
        if (
            self._timed
            and self.role is Role.AGENT
            and isinstance(event, ChatMessage)
            and event.author == "visitor"
        ):
            self._stats.delivery.observe(max(0.0, self.engine.now() - event.at))

    def sink(
        self,
        see: Callable[[Event], None] | None = None,
        gone: Callable[[bool], None] | None = None,
    ) -> EventSink:
        """A sink for an engine handle's events (see :class:`EventSink`)."""
        return EventSink(self, see, gone)

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run a task for this connection; it is cancelled when the connection closes."""
        assert self._nursery is not None
        self._nursery.start_soon(self._guarded, fn, *args)

    def close(self, code: int, reason: str, *, flush: bool = True) -> None:
        """Close with ``code``: after what is queued (``flush``) or at once (Rule 2)."""
        if self._closing:
            return
        self._closing = True
        self.close_code, self.close_reason = code, reason
        self._stats.closes[code] += 1
        if flush and len(self._queue) - self._replayed < self._limit:
            self._queue.append(_FLUSH)
            self._writable.unpark()
            return
        self._skip_queue = True
        self._writable.unpark()
        self._done.set()

    def shutdown(self, reason: str, code: int = 1001) -> None:
        """The server is stopping: a ``shutdown`` event, then close ``code`` (1001; a node that
        hands the desk over to another closes with 1012, come back)."""
        self.put(encode_event("shutdown", reason=reason))
        self.close(code, reason)

    # -- the connection's life ---------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it is closed, by either side."""
        self.registry.connections.add(self)
        self.log.debug("connection_opened")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._guarded, self._writer)
                nursery.start_soon(self._guarded, self._reader)
                await self._done.wait()
                with trio.move_on_after(self.settings.close_timeout):
                    await self.ws.aclose(
                        self.close_code,
                        self.close_reason,
                        stop=self._stop_tasks,
                        drain_bytes=self.settings.close_drain_bytes,
                    )
                nursery.cancel_scope.cancel()
        finally:
            self.registry.connections.discard(self)
            if self.close_code is None and self.ws.closed is not None:
                self.close_code = self.ws.closed.code
            self.log.info("connection_closed", code=self.close_code, reason=self.close_reason)

    def _stop_tasks(self) -> None:
        """Stop the connection's tasks (not ``run`` itself, which closes the transport next)."""
        self._stopped = True
        for scope in self._scopes:
            scope.cancel()

    async def _guarded(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Rule 3: a fault in one task closes this connection with 1011, and nothing else.

        Each task runs in a cancel scope of its own that ``_stop_tasks`` cancels: the tasks share
        ``run``'s nursery, with no task in between to hold a nursery of their own.
        """
        with trio.CancelScope() as scope:
            if self._stopped:
                scope.cancel()
            self._scopes.append(scope)
            try:
                await fn(*args)
            except Exception:
                self._fault()
            finally:
                self._scopes.remove(scope)

    def _fault(self) -> None:
        self.log.exception("connection_fault")
        self.close(1011, "internal server error", flush=False)

    def _peer_closed(self) -> None:
        if not self._closing:
            self._closing = True
            closed = self.ws.closed
            self.close_code = None if closed is None else closed.code
            self.close_reason = "" if closed is None else closed.reason
        self._done.set()

    async def _writer(self) -> None:
        settings = self.settings
        next_ping = trio.current_time() + settings.heartbeat_interval
        pong: trio.Event | None = None  # the pong awaited, due at pong_due
        pong_due = math.inf
        while True:
            with trio.move_on_at(min(next_ping, pong_due)):
                while not self._queue and not self._skip_queue:
                    await self._writable.park()
            now = trio.current_time()
            if pong is not None and pong.is_set():
                pong, pong_due = None, math.inf
            if pong is not None and now >= pong_due:
                self.log.warning("heartbeat_timeout")
                self.close(4001, "no pong in time", flush=False)
                return
            if pong is None and now >= next_ping:
                self._pings += 1
                try:
                    pong = await self.ws.send_ping(struct.pack("!Q", self._pings))
                except ConnectionClosed:
                    self._peer_closed()
                    return
                pong_due = now + settings.heartbeat_timeout
                next_ping = now + settings.heartbeat_interval
            if not self._queue and not self._skip_queue:
                continue
            batch, self._queue = self._queue, []
            self._replayed = 0
            if self._room is not None:
                self._room.set()
            if self._skip_queue:
                return
            flush = _FLUSH in batch
            if flush:
                batch = batch[: batch.index(_FLUSH)]
            try:
                await self.ws.send(batch)
            except ConnectionClosed:
                self._peer_closed()
                return
            if flush:
                self._done.set()
                return

    async def _receive(self) -> bytes | str | None:
        while len(self._queue) > self._high_water:
            self._room = room = trio.Event()
            await room.wait()
        try:
            return await self.ws.receive()
        except ConnectionClosed:
            self._peer_closed()
            return None

    async def _reader(self) -> None:
        async with self.stack:
            message: bytes | str | None = None
            with trio.move_on_after(self.settings.hello_timeout):
                message = await self._receive()
            if message is None:
                if not self._closing:
                    self.close(1008, "no hello in time")
                return
            while message is not None and not self._closing:
                await self._frame(message)
                if self._closing:
                    return
                message = await self._receive()

    # -- one frame ---------------------------------------------------------------------------------

    async def _frame(self, message: bytes | str) -> None:
        if isinstance(message, str):
            self._refuse(ProtocolError("malformed", "a frame is a binary message, not text"))
            return
        try:
            request = decode_request(message, role=self.role)
        except ProtocolError as exc:
            self._refuse(exc)
            return
        if not self._bucket.take(trio.current_time()):
            self._reply_error(request.ref, "rate_limited", "too many requests; slow down")
            return
        if self._handler is None:
            await self._hello(request)
        elif request.type == "hello":
            self._reply_error(request.ref, "invalid_state", "this connection said hello already")
        elif request.type == "ping":
            self.put(encode_reply_ok(request.ref, at=self.engine.now()))
        elif request.type in self._handler.posts:
            await self._post(request, self._handler)
        else:
            if self._posted:
                await self._settle(0)
            await self._dispatch(request, self._handler)

    def _refuse(self, error: ProtocolError) -> None:
        self.log.info("frame_refused", code=error.code, ref=error.ref)
        self._stats.errors[error.code] += 1
        self.put(encode_error(error))
        if error.ref is None:
            code = 1009 if error.code == "frame_too_large" else 1008
            self.close(code, error.code)
        elif self._handler is None:
            self.close(1008, "hello failed")

    def _reply_error(self, ref: int, code: str, message: str) -> None:
        self._stats.errors[code] += 1
        self.put(encode_reply_error(ref, code, message))

    async def _dispatch(self, request: Request, handler: RoleHandler) -> None:
        chat_id = request.fields.get("chat_id")
        self.log.debug("request", type=request.type, ref=request.ref, chat_id=chat_id)
        try:
            result = await handler.handle(request)
        except (EngineError, ProtocolError, StoreError) as exc:
            error = wire_error(exc)
            self.log.info(
                "request_refused",
                type=request.type,
                ref=request.ref,
                chat_id=chat_id,
                code=error.code,
            )
            self._reply_error(request.ref, error.code, error.message)
        except Exception:
            self.log.exception("request_failed", type=request.type, ref=request.ref)
            self._reply_error(request.ref, "internal", "the server failed to serve this request")
            self.close(1011, "internal server error")
        else:
            self.put(encode_reply_ok(request.ref, **result))

    async def _post(self, request: Request, handler: RoleHandler) -> None:
        """Hand a chat line to its session; its reply is queued when the session answers."""
        if len(self._posted) >= PIPELINE:
            await self._settle(PIPELINE - 1)
        key, self._serial = self._serial, self._serial + 1
        ref = request.ref

        def answered(value: int | EngineError) -> None:  # called from the session actor
            if self._posted.pop(key, None) is None:
                return  # given up already
            if self._settled is not None:
                self._settled.set()
            try:
                if isinstance(value, EngineError):
                    error = wire_error(value)
                    self._reply_error(ref, error.code, error.message)
                else:
                    self.put(encode_reply_ok(ref, seq=value, at=self.engine.now()))
            except Exception:
                self._fault()

        deadline = trio.current_time() + self.engine.config.ask_timeout
        self._posted[key] = (deadline, _nothing)
        try:
            give_up = await handler.post(request, answered)
        except (EngineError, ProtocolError, StoreError) as exc:
            self._posted.pop(key, None)
            error = wire_error(exc)
            self._reply_error(ref, error.code, error.message)
            return
        except BaseException:
            self._posted.pop(key, None)
            raise
        if key in self._posted:
            self._posted[key] = (deadline, give_up)

    async def _settle(self, most: int) -> None:
        """Wait until at most ``most`` posted lines wait for an answer; overdue ones get busy."""
        while len(self._posted) > most:
            self._settled = settled = trio.Event()
            with trio.move_on_at(min(deadline for deadline, _ in self._posted.values())):
                await settled.wait()
            now = trio.current_time()
            for deadline, give_up in list(self._posted.values()):
                if deadline <= now:
                    give_up()

    async def _hello(self, request: Request) -> None:
        if request.type != "hello":
            self._reply_error(request.ref, "hello_required", "the first request must be hello")
            self.close(1008, "hello required")
            return
        version = request.require("version", int)
        if version != PROTOCOL_VERSION:
            self._reply_error(
                request.ref,
                "unsupported_version",
                f"this server speaks version {PROTOCOL_VERSION}, not {version}",
            )
            self.close(1008, "unsupported version")
            return
        role = Role(request.require("role", str))
        try:
            handler, fields = await self.gateway.roles[role](self, request)
        except (EngineError, ProtocolError) as exc:
            self.log.info("hello_refused", role=role.value, code=exc.code)
            error = wire_error(exc)
            self._reply_error(request.ref, error.code, error.message)
            self.close(1008, "hello failed")
            return
        self.role, self._handler = role, handler
        self.put(
            encode_reply_ok(
                request.ref,
                version=PROTOCOL_VERSION,
                role=role.value,
                heartbeat_interval=float(self.settings.heartbeat_interval),
                max_frame_size=self.settings.max_frame_size,
                **fields,
            )
        )
        self.log.info("hello", role=role.value)
        handler.start()


def _nothing() -> None:
    pass
