"""The transport over real TCP loopback sockets: limits, close frames, floods and batched writes.

These tests run on the real clock (a socket does not follow trio's virtual one), with an engine of
their own; each waits at most a few seconds.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from wsproto.events import BytesMessage

from engine import Engine, EngineConfig, open_engine
from protocol import ErrorReply, Event, Reply, ServerSettings, encode_request
from protocol.server.transport import Transport

from .gateway_harness import Harness, RawPeer, accept, open_gateway

WAIT = 5.0  # real seconds any one step may take


@pytest.fixture
async def live_engine(config: EngineConfig, db_path: Path) -> AsyncIterator[Engine]:
    """An engine on the real clock."""
    async with open_engine(config, db=db_path, synchronous="NORMAL") as engine:
        yield engine


@asynccontextmanager
async def tcp_gateway(
    engine: Engine, settings: ServerSettings | None = None
) -> AsyncIterator[tuple[Harness, Callable[..., Awaitable[RawPeer]]]]:
    """A gateway, and a way to open a RawPeer to it over a TCP loopback connection."""
    async with open_gateway(engine, settings) as gw:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        opened: list[trio.SocketStream] = []

        async def peer(*, small_buffers: bool = False) -> RawPeer:
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if small_buffers:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await sock.connect(("127.0.0.1", port))
            server = await listener.accept()
            if small_buffers:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            gw.nursery.start_soon(gw.gateway.handle_stream, server)
            stream = trio.SocketStream(sock)
            opened.append(stream)
            raw = RawPeer(stream)
            await raw.handshake()
            return raw

        async with listener:
            try:
                yield gw, peer
            finally:
                for stream in opened:
                    await trio.aclose_forcefully(stream)


async def said_hello(peer: RawPeer, **fields: object) -> None:
    await peer.hello(**fields)
    assert isinstance(await peer.frame(), Reply)


async def frames_until_reply(peer: RawPeer, ref: int) -> Reply | ErrorReply:
    while True:
        frame = await peer.frame()
        if isinstance(frame, Reply | ErrorReply) and frame.ref == ref:
            return frame
        assert frame is not None, "the server closed before replying"


class TestFrameLimit:
    async def test_header_alone_is_refused(self, live_engine: Engine) -> None:
        """A frame header declaring more than 64 KiB is closed with 1009 before any payload."""
        async with tcp_gateway(live_engine) as (_, connect):
            peer = await connect()
            await said_hello(peer, role="visitor")
            header = b"\x82\xff" + struct.pack("!Q", 70_000) + b"\x01\x02\x03\x04"
            await peer.stream.send_all(header)
            with trio.fail_after(WAIT):
                assert 1009 == await peer.close_code()

    @pytest.mark.parametrize("size", [70_000, 600_000])
    async def test_oversized_message_gets_its_close_frame(
        self, live_engine: Engine, size: int
    ) -> None:
        """A whole oversized message is answered with a 1009 close frame, not a TCP reset."""
        async with tcp_gateway(live_engine) as (_, connect):
            peer = await connect()
            await said_hello(peer, role="visitor")
            data = peer.ws.send(BytesMessage(data=b"\x80" * size))
            with trio.fail_after(WAIT):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(peer.stream.send_all, data)
                    assert 1009 == await peer.close_code()


class TestCloseFrames:
    async def test_bad_hello(self, live_engine: Engine) -> None:
        """A refused hello is answered, then closed with a 1008 close frame."""
        async with tcp_gateway(live_engine) as (_, connect):
            peer = await connect()
            await peer.send(encode_request("hello", 1, version=2, role="visitor"))
            with trio.fail_after(WAIT):
                frame = await peer.frame()
                assert isinstance(frame, ErrorReply)
                assert "unsupported_version" == frame.code
                assert 1008 == await peer.close_code()

    async def test_shutdown(self, live_engine: Engine) -> None:
        """On shutdown the client reads the shutdown event, then a 1001 close frame."""
        async with tcp_gateway(live_engine) as (gw, connect):
            peer = await connect()
            await said_hello(peer, role="visitor")
            gw.gateway.shutdown("maintenance")
            with trio.fail_after(WAIT):
                frame = await peer.frame()
                assert isinstance(frame, Event)
                assert ("shutdown", "maintenance") == (frame.name, frame.fields["reason"])
                assert 1001 == await peer.close_code()

    async def test_slow_consumer(self, live_engine: Engine) -> None:
        """A visitor that stops reading is closed with 4000; when it reads again, the close frame
        comes after what was already written."""
        settings = ServerSettings(outbound_queue=8)
        async with tcp_gateway(live_engine, settings) as (gw, connect), gw.agent("ann") as ann:
            peer = await connect(small_buffers=True)
            await said_hello(peer, role="visitor")
            await peer.send(
                encode_request("open_chat", 2, department="sales", name="V", question="q")
            )
            reply = await frames_until_reply(peer, 2)
            assert isinstance(reply, Reply)
            chat_id = reply.result["chat_id"]
            await accept(ann, str(chat_id))
            with trio.fail_after(WAIT):
                while not any(c.close_code == 4000 for c in gw.gateway.registry.connections):
                    await ann.request("send", chat_id=chat_id, text="x" * 8000)
                assert 4000 == await peer.close_code()
            await ann.request("send", chat_id=chat_id, text="still here")


class TestFlood:
    async def test_reading_client_is_rate_limited_not_dropped(self, live_engine: Engine) -> None:
        """1,000 pipelined requests from a client that reads get 1,000 replies, beyond the burst
        rate_limited, and the connection stays open."""
        async with tcp_gateway(live_engine) as (_, connect):
            peer = await connect()
            await said_hello(peer, role="visitor")
            flood = b"".join(
                peer.ws.send(BytesMessage(data=encode_request("ping", ref)))
                for ref in range(10, 1010)
            )
            codes: dict[str, int] = {}
            with trio.fail_after(WAIT * 2):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(peer.stream.send_all, flood)
                    for _ in range(1000):
                        frame = await peer.frame()
                        assert isinstance(frame, Reply | ErrorReply), frame
                        code = "ok" if isinstance(frame, Reply) else frame.code
                        codes[code] = codes.get(code, 0) + 1
                assert {"ok", "rate_limited"} == set(codes)
                assert 1000 == sum(codes.values())
                await peer.send(encode_request("ping", 5000))
                assert 5000 == (await frames_until_reply(peer, 5000)).ref
            assert not peer.closed


class CountingStream(trio.abc.HalfCloseableStream):
    """A stream that counts its writes."""

    def __init__(self, inner: trio.abc.HalfCloseableStream) -> None:
        self.inner = inner
        self.writes = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class TestBatchedWrites:
    async def test_transport_writes_a_batch_once(self) -> None:
        """Transport.send writes every message of a batch with one send_all."""
        client, server = trio.testing.memory_stream_pair()
        counting = CountingStream(server)
        transport = Transport(counting, max_size=65536)
        peer = RawPeer(client)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer.handshake)
            request = await transport.request()
            assert request is not None
            assert await transport.respond(transport.accept(request))
        before = counting.writes
        await transport.send([encode_request("ping", ref) for ref in range(5)])
        assert 1 == counting.writes - before

    async def test_pipelined_replies_leave_in_one_write(
        self, engine: Engine, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Replies to requests that arrived together are queued together and written at once."""
        async with open_gateway(engine) as gw:
            client, server = trio.testing.memory_stream_pair()
            counting = CountingStream(server)
            gw.nursery.start_soon(gw.gateway.handle_stream, counting)
            peer = RawPeer(client)
            await peer.handshake()
            await said_hello(peer, role="visitor")
            before = counting.writes
            await client.send_all(
                b"".join(
                    peer.ws.send(BytesMessage(data=encode_request("ping", ref)))
                    for ref in range(10, 20)
                )
            )
            refs = []
            for _ in range(10):
                frame = await peer.frame()
                assert isinstance(frame, Reply)
                refs.append(frame.ref)
            assert list(range(10, 20)) == refs
            assert 1 == counting.writes - before
