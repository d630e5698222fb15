"""The WebSocket gateway: accept connections, bind each to engine handles, shut down cleanly.

Theory of operation
-------------------
The gateway is a thin adapter between trio-websocket and the engine, as trio-websocket is around
wsproto. It takes any trio stream (a TCP connection from :meth:`Gateway.serve`, or one end of an
in-memory stream pair in tests), and for each one:

1. runs the WebSocket opening handshake under ``handshake_timeout``; a peer too slow to finish
   it is dropped without a close frame;
2. checks the ``Origin`` header against the allowlist (an empty list allows any) and refuses a
   stranger with HTTP 403;
3. hands the open WebSocket to a :class:`~protocol._connection.Connection`, which serves it until
   it closes. trio-websocket enforces the frame size limit: a larger message is closed with 1009
   before the codec ever sees it.

An exception escaping one connection is logged and ends that connection only.

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
from typing import Final

import structlog
import trio
from trio_websocket import WebSocketConnection, WebSocketRequest, wrap_server_stream

from engine import Engine

from ._connection import Connection
from ._registry import Registry
from ._settings import ServerSettings

__all__ = ["Gateway", "serve"]

log = structlog.get_logger("helpline.gateway")

SHUTDOWN_REASON: Final = "the server is shutting down"


class Gateway:
    """Serves helpline's wire protocol for one engine (see the module docstring)."""

    def __init__(self, engine: Engine, settings: ServerSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or ServerSettings()
        self.registry = Registry()
        self.url = ""
        self._stopping = False
        self._accepting: trio.CancelScope | None = None
        self._handshakes: set[trio.CancelScope] = set()  # connections still in the handshake
        self._connections: trio.Nursery | None = None

    def name_of(self, agent_id: str) -> str:
        """An agent's display name, or its id once it was removed."""
        record = self.engine.agent_record(agent_id)
        return agent_id if record is None else record.name

    # -- one connection ----------------------------------------------------------------------------

    async def handle_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one client on ``stream`` (a TCP connection, or an in-memory stream in tests)."""
        peer = _peer(stream)
        try:
            async with trio.open_nursery() as nursery:
                ws = await self._open(nursery, stream, peer)
                if ws is not None:
                    await Connection(self, ws, peer).run()
                nursery.cancel_scope.cancel()
        except Exception:
            log.exception("connection_crashed", peer=peer)
        finally:
            await trio.aclose_forcefully(stream)

    async def _open(
        self, nursery: trio.Nursery, stream: trio.abc.Stream, peer: str
    ) -> WebSocketConnection | None:
        """The opening handshake, under its deadline; None if it failed or was refused."""
        settings = self.settings
        with trio.move_on_after(settings.handshake_timeout) as scope:
            self._handshakes.add(scope)
            try:
                request = await wrap_server_stream(
                    nursery, stream, max_message_size=settings.max_frame_size
                )
                if self._stopping:
                    await request.reject(503, body=b"the server is shutting down")
                    return None
                if not self._origin_allowed(request):
                    log.info("origin_refused", peer=peer)
                    await request.reject(403, body=b"this origin may not connect")
                    return None
                return await request.accept()
            finally:
                self._handshakes.discard(scope)
        log.info("handshake_dropped", peer=peer, stopping=self._stopping)
        return None

    def _origin_allowed(self, request: WebSocketRequest) -> bool:
        allowed = self.settings.origins
        if not allowed:
            return True
        origins = [v for k, v in request.headers if k.lower() == b"origin"]
        return len(origins) == 1 and origins[0].decode("latin-1") in allowed

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

    def shutdown(self, reason: str = SHUTDOWN_REASON) -> None:
        """Stop accepting, send every connection ``shutdown`` and close it with 1001."""
        if self._stopping:
            return
        self._stopping = True
        log.info("shutting_down", connections=len(self.registry.connections))
        if self._accepting is not None:
            self._accepting.cancel()
        for scope in list(self._handshakes):
            scope.cancel()
        for connection in list(self.registry.connections):
            connection.shutdown(reason)
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


def _peer(stream: trio.abc.Stream) -> str:
    socket = getattr(stream, "socket", None)
    if socket is None:
        return "memory"
    try:
        host, port = socket.getpeername()[:2]
    except OSError:
        return "unknown"
    return f"{host}:{port}"
