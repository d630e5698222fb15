"""The client library: refs, events, closing, and what a refused hello looks like."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from engine import Engine, EngineConfig, open_engine
from protocol import ClientClosed, ClientError, ServerSettings, connect, serve

from .gateway_harness import accept, open_chat, open_gateway


class TestRequests:
    async def test_pipelined_requests(self, engine: Engine, autojump_clock: MockClock) -> None:
        """Requests sent at once from several tasks each get their own reply."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann:
            results: dict[int, object] = {}

            async def ask(i: int) -> None:
                results[i] = (await ann.request("set_ringtone", on=bool(i % 2)))["ringtone"]

            async with trio.open_nursery() as nursery:
                for i in range(6):
                    nursery.start_soon(ask, i)
            assert set(range(6)) == set(results)

    async def test_refused_hello_is_a_client_error(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A refused hello raises ClientError itself, not wrapped in an exception group."""
        async with open_gateway(engine) as gw:
            with pytest.raises(ClientError) as info:
                async with gw.connect(role="visitor", version=7):
                    pass
            assert "unsupported_version" == info.value.code

    async def test_errors_in_the_block_stay_themselves(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An exception raised inside the client's block comes out unchanged."""
        async with open_gateway(engine) as gw:
            with pytest.raises(KeyError):
                async with gw.visitor():
                    raise KeyError("mine")

    async def test_bad_url(self) -> None:
        """connect wants a ws:// or wss:// URL."""
        with pytest.raises(ValueError, match="ws://"):
            async with connect("http://127.0.0.1:1"):
                pass


class TestEvents:
    async def test_events_can_be_dropped(self, engine: Engine, autojump_clock: MockClock) -> None:
        """With keep_events=False a client only gets replies."""
        async with open_gateway(engine) as gw, gw.agent("ann") as ann:
            async with gw.visitor(keep_events=False) as v:
                await accept(ann, await open_chat(v))
                await v.request("send", text="hi")
                assert [] == v.pending_events()

    async def test_iteration_ends_when_the_server_closes(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """``async for`` yields what was sent, then stops; receive then raises ClientClosed."""
        async with open_gateway(engine) as gw, gw.visitor() as v:
            gw.gateway.shutdown("bye")
            assert ["shutdown"] == [event.name async for event in v]
            with pytest.raises(ClientClosed) as info:
                await v.receive()
            assert 1001 == info.value.code

    async def test_origin_header(self, engine: Engine, autojump_clock: MockClock) -> None:
        """The origin option is sent as the Origin header, which an allowlist checks."""
        settings = ServerSettings(origins=("https://help.example.com",))
        async with open_gateway(engine, settings) as gw:
            async with gw.visitor(origin="https://help.example.com") as v:
                assert v.hello["role"] == "visitor"


class TestOverTcp:
    async def test_serve_and_connect(self, config: EngineConfig, db_path: Path) -> None:
        """serve() listens on a free loopback port; connect() reaches it; shutdown ends it."""
        async with open_engine(config, db=db_path, synchronous="NORMAL") as engine:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    gateway = await nursery.start(serve, engine, ServerSettings(port=0))
                    assert gateway.url.startswith("ws://127.0.0.1:")
                    async with connect(gateway.url, role="visitor") as visitor:
                        assert "at" in await visitor.request("ping")
                        gateway.shutdown()
                        assert 1001 == await visitor.wait_closed()
