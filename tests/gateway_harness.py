"""Drive the gateway over in-memory streams: no sockets, no real time (the autojump clock).

`open_gateway` runs a `Gateway` for an engine; `Harness.connect` opens a client on one end of a
`trio.testing.memory_stream_pair` while the gateway serves the other end, exactly as it serves a TCP
connection. `RawPeer` speaks WebSocket with wsproto directly, for what a well-behaved client never
does (not answering pings).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from engine import Engine
from protocol import (
    Client,
    ClientError,
    Event,
    Gateway,
    ServerFrame,
    ServerSettings,
    connect_stream,
    decode_server_frame,
    encode_request,
)
from protocol.server.auth import issue_token
from protocol.wire.frames import Role

HANG = 3600.0  # virtual seconds after which a waiting test gives up


@dataclass
class Harness:
    """A gateway being served, and ways to reach it."""

    engine: Engine
    gateway: Gateway
    nursery: trio.Nursery

    def stream(self, *, lockstep: bool = False) -> trio.abc.Stream:
        """A new client stream whose other end the gateway serves."""
        pair = trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
        client, server = pair()
        self.nursery.start_soon(self.gateway.handle_stream, server)
        return client

    @asynccontextmanager
    async def connect(self, *, lockstep: bool = False, **options: Any) -> AsyncIterator[Client]:
        """A client connection (with a hello when ``role`` is given)."""
        async with connect_stream(self.stream(lockstep=lockstep), **options) as client:
            yield client

    async def token(self, agent_id: str) -> str:
        return await issue_token(self.engine.store, Role.AGENT, agent_id, now=self.engine.now())

    @asynccontextmanager
    async def agent(
        self, agent_id: str, *, online: bool = True, **options: Any
    ) -> AsyncIterator[Client]:
        """An agent signed in (and online, unless told otherwise)."""
        token = await self.token(agent_id)
        async with self.connect(role="agent", token=token, **options) as client:
            if online:
                await client.request("set_status", status="online")
            yield client

    @asynccontextmanager
    async def admin(self) -> AsyncIterator[Client]:
        token = await issue_token(self.engine.store, Role.ADMIN, "root", now=self.engine.now())
        async with self.connect(role="admin", token=token) as client:
            yield client

    @asynccontextmanager
    async def supervisor(
        self, name: str, *departments: str, **options: Any
    ) -> AsyncIterator[Client]:
        """A supervisor of ``departments`` signed in."""
        token = await issue_token(
            self.engine.store,
            Role.SUPERVISOR,
            name,
            now=self.engine.now(),
            departments=departments,
        )
        async with self.connect(role="supervisor", token=token, **options) as client:
            yield client

    @asynccontextmanager
    async def visitor(self, **options: Any) -> AsyncIterator[Client]:
        async with self.connect(role="visitor", **options) as client:
            yield client


@asynccontextmanager
async def open_gateway(
    engine: Engine, settings: ServerSettings | None = None
) -> AsyncIterator[Harness]:
    """Serve ``engine`` for the block; connections still open at its end are cancelled.

    A test that waits for something that never comes fails after an hour of virtual time
    (a few milliseconds under the autojump clock) instead of hanging.
    """
    gateway = Gateway(engine, settings)
    with trio.fail_after(HANG):
        async with trio.open_nursery() as nursery:
            yield Harness(engine, gateway, nursery)
            nursery.cancel_scope.cancel()


async def open_chat(
    visitor: Client, department: str = "sales", question: str = "Do you ship to Mars?"
) -> str:
    """Open a chat as Vera; returns its id."""
    reply = await visitor.request(
        "open_chat", department=department, name="Vera", email="vera@example.com", question=question
    )
    chat_id = reply["chat_id"]
    assert isinstance(chat_id, str)
    return chat_id


async def accept(agent: Client, chat_id: str) -> Mapping[str, object]:
    """Wait for the agent's offer of ``chat_id`` and accept it; returns the accept reply."""
    offer = await agent.wait_for("offer", chat_id=chat_id)
    return await agent.request("accept", offer_id=offer.fields["offer_id"])


def names(events: list[Event]) -> list[str]:
    return [e.name for e in events]


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


class RawPeer:
    """A WebSocket client written with wsproto, which does only what a test tells it to."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pings = 0
        self.frames: list[ServerFrame] = []
        self.closed = False
        self.code: int | None = None
        self._pieces: list[bytes] = []

    async def handshake(self, headers: list[tuple[bytes, bytes]] | None = None) -> object:
        """The opening handshake; returns wsproto's AcceptConnection or RejectConnection."""
        request = Request(host="helpline", target="/", extra_headers=headers or [])
        await self.stream.send_all(self.ws.send(request))
        while True:
            for event in await self._events():
                if isinstance(event, AcceptConnection | RejectConnection):
                    return event

    async def send(self, data: bytes | str) -> None:
        message = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        await self.stream.send_all(self.ws.send(message))

    async def hello(self, **fields: object) -> None:
        await self.send(encode_request("hello", 1, version=1, **fields))

    async def frame(self) -> ServerFrame | None:
        """The next frame the server sent, decoded; None once the server closed instead."""
        while not self.frames:
            if self.closed:
                return None
            await self._read()
        return self.frames.pop(0)

    async def close_code(self) -> int | None:
        """Read until the server's close frame (its code) or the end of the stream (None).

        Frames read meanwhile are kept for `frame`; pings are counted and never answered.
        """
        while not self.closed:
            await self._read()
        return self.code

    async def _read(self) -> None:
        data = await self.stream.receive_some(65536)
        self.ws.receive_data(data or None)
        if not data:
            self.closed = True
        for event in self.ws.events():
            if isinstance(event, CloseConnection):
                self.closed, self.code = True, int(event.code)
            elif isinstance(event, Ping):
                self.pings += 1
            elif isinstance(event, Message):  # wsproto hands over a message in pieces
                self._pieces.append(bytes(event.data))
                if event.message_finished:
                    self.frames.append(decode_server_frame(b"".join(self._pieces)))
                    self._pieces.clear()

    async def _events(self) -> list[object]:
        data = await self.stream.receive_some(65536)
        self.ws.receive_data(data or None)
        return list(self.ws.events())


async def refused(code: str, awaitable: object) -> ClientError:
    """The ClientError an awaited request raised; its code must be ``code``."""
    with pytest.raises(ClientError) as info:
        await awaitable  # type: ignore[misc]
    assert code == info.value.code
    return info.value
