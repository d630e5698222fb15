"""Hostile and broken input: each gets its error or its close code, and harms nothing else.

Every test runs beside a live chat between Ann and a visitor (the bystanders): after the bad input
they still talk, and the store holds exactly the tickets it held before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgpack
import pytest
from trio.testing import MockClock

from engine import Engine
from protocol import ClientError, ErrorReply, Event, Reply, encode_request

from .gateway_harness import Harness, RawPeer, accept, open_chat, open_gateway

Check = Callable[[], Awaitable[None]]


def pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


@asynccontextmanager
async def bystanders(gw: Harness) -> AsyncIterator[Check]:
    """A live chat between Ann and a visitor; the check proves both still work and no ticket
    was written or lost."""
    async with gw.agent("ann") as ann, gw.visitor() as visitor:
        chat_id = await open_chat(visitor)
        await accept(ann, chat_id)
        tickets = await gw.engine.tickets(limit=1000)

        async def check() -> None:
            await visitor.request("send", text="still there?")
            reply = await ann.request("send", chat_id=chat_id, text="yes")
            message = await visitor.wait_for("message", seq=reply["seq"])
            assert "yes" == message.fields["text"]
            assert tickets == await gw.engine.tickets(limit=1000)

        yield check


@dataclass(frozen=True)
class Case:
    """One bad frame: what to send, whether after a hello, and what must come back."""

    data: bytes | str
    after_hello: bool
    answer: tuple[str, str] | None  # ("event" | "reply", error code), or None for no frame
    close: int | None  # the close code, or None if the connection must stay open


CASES = {
    "random bytes": Case(b"\xc1\x9a\x07\xf3\x00\xee\x81", True, ("event", "malformed"), 1008),
    "truncated msgpack": Case(encode_request("ping", 7)[:-3], True, ("event", "malformed"), 1008),
    "not a map": Case(pack(["ping", 7]), True, ("event", "malformed"), 1008),
    "a bare integer": Case(pack(42), False, ("event", "malformed"), 1008),
    "over the size limit": Case(
        pack({"type": "ping", "ref": 7, "x": "x" * 70_000}), True, None, 1009
    ),
    "deep nesting": Case(
        pack({"type": "ping", "ref": 7, "x": nested(50)}), True, ("reply", "malformed"), None
    ),
    "huge declared string": Case(
        b"\x81\xa4type\xdb\xff\xff\xff\xff", True, ("event", "malformed"), 1008
    ),
    "huge declared map": Case(b"\xdf\xff\xff\xff\xff\xa4type", True, ("event", "malformed"), 1008),
    "ext type": Case(
        pack({"type": "ping", "ref": 7, "x": msgpack.ExtType(5, b"zz")}),
        True,
        ("event", "malformed"),
        1008,
    ),
    "non-string key": Case(
        pack({"type": "ping", "ref": 7, 3: "x"}), True, ("event", "malformed"), 1008
    ),
    "wrong field type": Case(
        pack({"type": "send", "ref": 7, "text": 123}), True, ("reply", "invalid_field"), None
    ),
    "unknown type": Case(pack({"type": "fly", "ref": 7}), True, ("reply", "unknown_type"), None),
    "bad ref": Case(pack({"type": "ping", "ref": -1}), True, ("event", "bad_ref"), 1008),
    "text message": Case('{"type": "ping", "ref": 7}', True, ("event", "malformed"), 1008),
    "request before hello": Case(
        encode_request("ping", 7), False, ("reply", "hello_required"), 1008
    ),
    "bad field in hello": Case(
        pack({"type": "hello", "ref": 7, "version": "1", "role": "visitor"}),
        False,
        ("reply", "invalid_field"),
        1008,
    ),
}


class TestBadFrames:
    @pytest.mark.parametrize("name", sorted(CASES))
    async def test_refused(self, engine: Engine, name: str, autojump_clock: MockClock) -> None:
        """Each bad frame gets its error (reply or event) and close code; bystanders carry on."""
        case = CASES[name]
        async with open_gateway(engine) as gw, bystanders(gw) as check:
            peer = RawPeer(gw.stream())
            await peer.handshake()
            if case.after_hello:
                await peer.hello(role="visitor")
                assert isinstance(await peer.frame(), Reply)
            await peer.send(case.data)
            frame = await peer.frame()
            if case.answer is None:
                assert frame is None
            elif case.answer[0] == "event":
                assert isinstance(frame, Event)
                assert ("error", case.answer[1]) == (frame.name, frame.fields["code"])
            else:
                assert isinstance(frame, ErrorReply)
                assert (7, case.answer[1]) == (frame.ref, frame.code)
            if case.close is None:
                await peer.send(encode_request("ping", 8))
                pong = await peer.frame()
                assert isinstance(pong, Reply)
                assert 8 == pong.ref
            else:
                assert case.close == await peer.close_code()
            await check()


class TestBadCredentials:
    async def test_bad_token(self, engine: Engine, autojump_clock: MockClock) -> None:
        """A forged agent token is unauthorized and closed with 1008."""
        async with open_gateway(engine) as gw, bystanders(gw) as check:
            peer = RawPeer(gw.stream())
            await peer.handshake()
            await peer.hello(role="agent", token="hlt_" + "A" * 43)
            frame = await peer.frame()
            assert isinstance(frame, ErrorReply)
            assert "unauthorized" == frame.code
            assert 1008 == await peer.close_code()
            await check()

    async def test_resume_token_on_another_chat(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A visitor's resume token named with another chat's id is refused; neither chat moves."""
        async with open_gateway(engine) as gw, bystanders(gw) as check:
            async with gw.visitor() as other:
                mine = await other.request("open_chat", department="sales", name="M", question="q")
                peer = RawPeer(gw.stream())
                await peer.handshake()
                await peer.hello(
                    role="visitor", resume_token=mine["resume_token"], chat_id="someone-else"
                )
                frame = await peer.frame()
                assert isinstance(frame, ErrorReply)
                assert "unauthorized" == frame.code
                assert 1008 == await peer.close_code()
                await other.request("send", text="my chat is still mine")
                await check()

    async def test_accepting_someone_elses_offer(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """An offer made to Ann cannot be taken by Cy; the offer stays Ann's."""
        async with open_gateway(engine) as gw, bystanders(gw) as check:
            async with gw.agent("ann") as ann, gw.agent("cy") as cy, gw.visitor() as v:
                chat_id = await open_chat(v)
                offer = await ann.wait_for("offer", chat_id=chat_id)
                with pytest.raises(ClientError) as info:
                    await cy.request("accept", offer_id=offer.fields["offer_id"])
                assert "not_your_offer" == info.value.code
                chat = await ann.request("accept", offer_id=offer.fields["offer_id"])
                assert "ann" == chat["owner"]
                await check()
