"""The gateway: one port for WebSocket and plain HTTP; bind each WebSocket to engine handles.

Theory of operation
-------------------
The gateway takes any trio stream (a TCP connection from :meth:`Gateway.serve`, or one end of an
in-memory stream pair in tests) and wraps it in a :class:`~protocol.server.transport.Transport`, the
thin adapter around the ``websockets`` library's sans-I/O server protocol. For each stream it:

1. reads the opening request under ``handshake_timeout``; a peer too slow to send it is dropped
   without an answer;
2. answers a request that is not a WebSocket upgrade from the HTTP route table
   (:mod:`protocol.server.http`: health checks and the built web pages), then closes;
3. refuses an upgrade while shutting down (503) and one whose ``Origin`` is not on the allowlist
   (403; an empty list allows any), and accepts the others;
4. hands the open WebSocket to a :class:`~protocol.server.connection.Connection`, which serves it
   until it closes. The protocol enforces the frame size limit on each frame's header: a larger
   message is closed with 1009 before its payload is read and before the codec sees anything.

Every answer ends the same way: the response or close frame is written, the write side is shut,
and what the peer still sends is drained (bounded) before the socket closes, so the peer reads
its answer instead of a TCP reset. An exception escaping one connection is logged and ends that
connection only.

Several nodes: a node listens itself and hands the streams to the gateway (:meth:`Gateway.adopt`,
served by :meth:`Gateway.serve_adopted`) while it holds the routing lease. A connection another
node relays carries the client's address in ``X-Helpline-Relay``, signed with the cluster's
secret; the per-address limits count that address, and an unsigned or forged one is ignored.

Restart: :meth:`Gateway.serve` first asks the engine for the chats it restored from its journal
(:meth:`Gateway.restore`), so their visitors resume them with the tokens they already hold.

Shutdown (:meth:`Gateway.shutdown`): stop accepting, drop the connections still in their opening
handshake, tell every open connection (a ``shutdown`` event, then close 1001), and give
connections ``shutdown_timeout`` to finish closing before they are dropped. :meth:`Gateway.serve`
returns once every connection is gone, so the caller can leave its ``open_engine`` block
normally, which ends every live chat and writes its ticket.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Final

import structlog
import trio
from websockets.http11 import Request

from engine import Engine, lease

from .connection import Connection
from .http import DEFAULT_WEB_DIR, Routes, default_routes, web_dir_missing
from .metrics import ServerStats, metrics_route
from .registry import Registry
from .roles import ROLES
from .settings import ServerSettings
from .transport import Transport

__all__ = ["Gateway", "serve"]

log = structlog.get_logger("helpline.gateway")

SHUTDOWN_REASON: Final = "the server is shutting down"
RELAY_HEADER: Final = "X-Helpline-Relay"
"""Several nodes: the client's address, signed by the node that relays it (engine.store.lease)."""


class Gateway:
    """Serves helpline's wire protocol for one engine (see the module docstring)."""

    def __init__(self, engine: Engine, settings: ServerSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or ServerSettings()
        self.registry = Registry()
        #: The role table: how a hello signs in as each role.
        self.roles = ROLES
        self.url = ""
        self._stopping = False
        self._accepting: trio.CancelScope | None = None
        self._handshakes: set[trio.CancelScope] = set()  # connections still in the handshake
        self._connections: trio.Nursery | None = None
        self._stopped = trio.Event()
        #: Several nodes: the secret a relaying node signs client addresses with (RELAY_HEADER).
        self.relay_secret = ""
        self.web_dir = Path(self.settings.web_dir) if self.settings.web_dir else DEFAULT_WEB_DIR
        #: The plain HTTP route table; add endpoints with ``routes.add``.
        self.routes: Routes = default_routes(
            engine, lambda: self._stopping, self.web_dir, lambda: self.url
        )
        #: What the connections count for ``/metrics`` (written from trio's thread only).
        self.stats = ServerStats()
        if self.settings.metrics:
            metrics_route(self.routes, engine, self.registry, self.stats)
        else:  # nothing collected: not even the store's commit times
            engine.store.on_commit = None

    def name_of(self, agent_id: str) -> str:
        """An agent's display name, or its id once it was removed; a supervisor's name (its
        participant id is ``supervisor:NAME``, or ``admin:NAME``)."""
        record = self.engine.agent_record(agent_id)
        if record is not None:
            return record.name
        role, _, name = agent_id.partition(":")
        return name if name and role in ("supervisor", "admin") else agent_id

    # -- one connection ----------------------------------------------------------------------------

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one client on ``stream`` (a TCP connection, or an in-memory stream in tests)."""
        peer = _peer(stream)
        settings = self.settings
        try:
            transport = Transport(
                stream, max_size=settings.max_frame_size, origins=settings.origins
            )
            answered, peer = await self._open(transport, peer)
            if answered is True:
                await Connection(self, transport, peer).run()
            elif answered is False:  # an HTTP response or a refusal was written: let it arrive
                with trio.move_on_after(settings.close_timeout):
                    await transport.aclose(drain_bytes=settings.close_drain_bytes)
        except Exception:
            log.exception("connection_crashed", peer=peer)
        finally:
            await trio.aclose_forcefully(stream)

    async def _open(self, transport: Transport, peer: str) -> tuple[bool | None, str]:
        """The opening request, under its deadline: True once a WebSocket is open, False after
        another answer, None if the peer was dropped without one; and the client's address (the
        one a relaying node signed, if any)."""
        with trio.move_on_after(self.settings.handshake_timeout) as scope:
            self._handshakes.add(scope)
            try:
                request = await transport.request()
                if request is None:
                    return None, peer
                relayed = request.headers.get(RELAY_HEADER)
                if relayed is not None:
                    signed = lease.verify_peer(self.relay_secret, relayed)
                    if signed is None:
                        log.warning("relay_header_refused", peer=peer)
                    else:
                        peer = signed
                if not is_upgrade(request):
                    response = await self.routes.answer(request)
                    log.debug("http", peer=peer, path=request.path, status=response.status_code)
                elif self._stopping:
                    response = transport.reject(503, "the server is shutting down")
                else:
                    response = transport.accept(request)
                    if response.status_code == 403:
                        log.info("origin_refused", peer=peer)
                return await transport.respond(response, request), peer
            finally:
                self._handshakes.discard(scope)
        log.info("handshake_dropped", peer=peer, stopping=self._stopping)
        return None, peer

    async def restore(self) -> None:
        """Learn the chats the engine restored at start, so their visitors can resume them."""
        self.registry.restore(await self.engine.live_chats())

    # -- TCP -------------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on the settings' host and port; ``task_status.started`` gets the URL.

        Returns after :meth:`shutdown`, once every connection has closed.
        """
        settings = self.settings
        await self.restore()
        if web_dir_missing(self.web_dir):
            log.warning(
                "web_pages_missing",
                web_dir=str(self.web_dir),
                hint="run `make web` to build them; until then the pages answer 503",
            )
        listeners = await trio.open_tcp_listeners(settings.port, host=settings.host)
        host, port = listeners[0].socket.getsockname()[:2]
        self.url = f"ws://{f'[{host}]' if ':' in host else host}:{port}"
        async with trio.open_nursery() as connections:
            self._connections = connections
            async with trio.open_nursery() as accepting:
                self._accepting = accepting.cancel_scope
                if self._stopping:
                    accepting.cancel_scope.cancel()
                await accepting.start(
                    partial(
                        trio.serve_listeners,
                        self.handle_stream,
                        listeners,
                        handler_nursery=connections,
                    )
                )
                log.info("listening", url=self.url)
                task_status.started(self.url)

    async def serve_adopted(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve the streams handed over with :meth:`adopt` (a node listens for it) until
        :meth:`shutdown`; returns once every connection has closed."""
        await self.restore()
        async with trio.open_nursery() as connections:
            self._connections = connections
            connections.start_soon(self._stopped.wait)
            task_status.started()

    async def adopt(self, stream: trio.abc.Stream) -> bool:
        """Serve ``stream`` (a node accepted it) until it closes; False at once if not serving
        (the caller keeps the stream)."""
        if self._stopping or self._connections is None:
            return False
        done = trio.Event()

        async def run() -> None:
            try:
                await self.handle_stream(stream)
            finally:
                done.set()

        self._connections.start_soon(run)
        await done.wait()
        return True

    def shutdown(self, reason: str = SHUTDOWN_REASON, code: int = 1001) -> None:
        """Stop accepting, send every connection ``shutdown`` and close it with ``code``."""
        if self._stopping:
            return
        self._stopping = True
        self._stopped.set()
        log.info("shutting_down", connections=len(self.registry.connections))
        if self._accepting is not None:
            self._accepting.cancel()
        for scope in list(self._handshakes):
            scope.cancel()
        for connection in list(self.registry.connections):
            connection.shutdown(reason, code)
        if self._connections is not None:
            deadline = trio.current_time() + self.settings.shutdown_timeout
            self._connections.cancel_scope.deadline = deadline


async def serve(
    engine: Engine,
    settings: ServerSettings | None = None,
    *,
    task_status: trio.TaskStatus[Gateway] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``engine`` over WebSocket until cancelled or shut down.

    ``task_status.started`` gets the :class:`Gateway` (its ``url`` is set), so a caller can
    ``gateway = await nursery.start(serve, engine, settings)`` and later ``gateway.shutdown()``.
    """
    gateway = Gateway(engine, settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(gateway.serve)
        task_status.started(gateway)


def is_upgrade(request: Request) -> bool:
    """Whether ``request`` asks for a WebSocket (any other request is plain HTTP)."""
    return any("websocket" in value.lower() for value in request.headers.get_all("Upgrade"))


def _peer(stream: trio.abc.Stream) -> str:
    socket = getattr(stream, "socket", None)
    if socket is None:
        return "memory"
    try:
        host, port = socket.getpeername()[:2]
    except OSError:
        return "unknown"
    return f"{host}:{port}"
