"""One connection's bytes: the `websockets` library's sans-I/O server protocol over a trio stream.

Theory of operation
-------------------
``websockets.server.ServerProtocol`` parses everything (the HTTP/1.1 opening request, WebSocket
frames, close frames) and serializes everything; it does no I/O. :class:`Transport` is the thin
trio adapter around it, as trio-websocket is around wsproto, and it is the only code that touches
the stream of a connection:

- **Opening.** :meth:`Transport.request` reads until the protocol has parsed one request (None if
  the peer left or sent something that is not HTTP). The gateway answers it with
  :meth:`Transport.respond`: a 101 from :meth:`Transport.accept` opens the WebSocket; any other
  response (a refusal, or a plain HTTP page) is written and the write side is shut.
- **Receiving.** :meth:`Transport.receive` returns one whole message (fragments are joined). The
  protocol answers pings and echoes a close frame by itself; what it wants written is written
  before ``receive`` returns. A frame whose header declares more than ``max_size`` bytes is refused
  as soon as the header is read: the protocol writes close 1009 and ``receive`` raises
  :class:`ConnectionClosed` without waiting for the payload. Only one task receives at a time.
- **Sending.** :meth:`Transport.send` hands every message of a batch to the protocol and writes
  the bytes with one ``send_all``. A FIFO lock orders writers (replies, pings, pongs, the close
  frame), so bytes of two frames never interleave.
- **Closing** (:meth:`Transport.aclose`), always in this order: take the write lock (an in-flight
  batch finishes first), stop the connection's other tasks, write the close frame, shut the write
  side (``send_eof``, a TCP half-close), then read and discard what the peer still sends, up to
  ``drain_bytes``, until its end of stream. Closing a socket with unread data in its receive
  buffer makes the kernel answer with a TCP reset, and a reset can destroy a close frame still in
  flight; draining first means the peer reads its close frame and code. The caller bounds the time.

Errors: the one exception is :class:`ConnectionClosed`, carrying the close code when there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import trio
from websockets.exceptions import InvalidState
from websockets.frames import Opcode
from websockets.http11 import Request, Response
from websockets.protocol import CLOSED, CONNECTING, OPEN, SEND_EOF
from websockets.server import ServerProtocol
from websockets.typing import Origin

__all__ = ["CloseInfo", "ConnectionClosed", "Transport"]

RECEIVE_SIZE: Final = 65_536  # bytes asked of the stream per read
ABNORMAL: Final = 1006  # closed without a close frame (RFC 6455 7.1.5)


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseInfo:
    """How a WebSocket ended: the close code (1006 without a close frame) and its reason."""

    code: int
    reason: str = ""


class ConnectionClosed(Exception):
    """The WebSocket is closed or closing; ``closed`` says how, when it is known."""

    def __init__(self, closed: CloseInfo | None) -> None:
        super().__init__("connection closed" if closed is None else f"closed ({closed.code})")
        self.closed = closed


class Transport:
    """A trio stream served by a ``websockets`` ServerProtocol (see the module docstring)."""

    __slots__ = (
        "_broken",
        "_eof_sent",
        "_fragments",
        "_messages",
        "_pings",
        "_protocol",
        "_receiving",
        "_sending",
        "_text",
        "stream",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        max_size: int,
        origins: Sequence[str] = (),
    ) -> None:
        self.stream = stream
        self._protocol = ServerProtocol(
            max_size=max_size, origins=[Origin(o) for o in origins] or None
        )
        self._messages: list[bytes | str] = []  # whole messages read and not yet taken
        self._fragments: list[bytes] = []
        self._text = False
        self._pings: dict[bytes, trio.Event] = {}
        self._sending = trio.StrictFIFOLock()
        self._receiving = trio.Lock()
        self._eof_sent = False
        self._broken = False

    # -- the opening request -----------------------------------------------------------------------

    async def request(self) -> Request | None:
        """The peer's opening request; None if it left or its request could not be parsed."""
        protocol = self._protocol
        while True:
            events = protocol.events_received()
            if events:
                request = events[0]
                assert isinstance(request, Request)
                self._take(events[1:])  # frames sent before the answer, kept for receive
                return request
            if protocol.state is not CONNECTING or protocol.handshake_exc is not None:
                await self._refuse_unparsed()
                return None
            if not await self._read():
                return None

    async def _refuse_unparsed(self) -> None:
        """Write what the protocol answered a request it could not parse: its own response (431,
        414), or 400 where it would only close."""
        protocol = self._protocol
        async with self._sending:
            writes = protocol.data_to_send()
            if writes == [SEND_EOF]:
                refusal = protocol.reject(400, "this is not an HTTP/1.1 request without a body\n")
                writes = [refusal.serialize(), SEND_EOF]
            await self._write(writes)

    def accept(self, request: Request) -> Response:
        """The answer to an upgrade request: 101, or 403 for an origin not on the list, or 400."""
        return self._protocol.accept(request)

    def reject(self, status: int, text: str) -> Response:
        """A plain-text refusal with ``status``."""
        return self._protocol.reject(status, text)

    async def respond(self, response: Response, request: Request | None = None) -> bool:
        """Write ``response``; True if it opened the WebSocket (after any other, the write side
        is shut).

        ``request``, the opening request answered, loses its headers once the WebSocket is open:
        the protocol's parser keeps the request for the life of the connection, and nothing reads
        the headers after the handshake (a connection then holds about 2 KB less).
        """
        self._protocol.send_response(response)
        await self._flush()
        opened = self._protocol.state is OPEN
        if opened and request is not None:
            request.headers.clear()
        return opened

    # -- messages ----------------------------------------------------------------------------------

    @property
    def closed(self) -> CloseInfo | None:
        """How the WebSocket ended (the peer's close frame first), or None while it is open."""
        protocol = self._protocol
        if protocol.close_rcvd is not None:
            return CloseInfo(code=int(protocol.close_rcvd.code), reason=protocol.close_rcvd.reason)
        if protocol.close_sent is not None:
            return CloseInfo(code=int(protocol.close_sent.code), reason=protocol.close_sent.reason)
        if protocol.state is CLOSED or self._broken:
            return CloseInfo(code=ABNORMAL)
        return None

    async def receive(self) -> bytes | str:
        """The next whole message (str for a text message); ConnectionClosed once closed."""
        while not self._messages:
            if self._ended():
                raise ConnectionClosed(self.closed)
            async with self._receiving:
                await self._read()
            self._take(self._protocol.events_received())
            if self._protocol.writes:  # a pong or a close to answer
                await self._flush()
        return self._messages.pop(0)  # a short list (one read's messages): cheaper than a deque

    async def send(self, messages: Iterable[bytes]) -> None:
        """Send binary messages with one write; ConnectionClosed if the WebSocket is closing."""
        protocol = self._protocol
        try:
            for message in messages:
                protocol.send_binary(message)
        except InvalidState:
            raise ConnectionClosed(self.closed) from None
        await self._flush()

    async def send_ping(self, payload: bytes) -> trio.Event:
        """Send a ping; the event returned is set when its pong arrives (while another task
        receives)."""
        waiter = self._pings[payload] = trio.Event()
        try:
            self._protocol.send_ping(payload)
        except InvalidState:
            raise ConnectionClosed(self.closed) from None
        await self._flush()
        return waiter

    async def ping(self, payload: bytes) -> None:
        """Send a ping and wait for its pong (which arrives while another task receives)."""
        waiter = self._pings[payload] = trio.Event()
        try:
            self._protocol.send_ping(payload)
        except InvalidState:
            raise ConnectionClosed(self.closed) from None
        await self._flush()
        await waiter.wait()

    async def aclose(
        self,
        code: int | None = None,
        reason: str = "",
        *,
        stop: Callable[[], None] | None = None,
        drain_bytes: int = 1 << 20,
    ) -> None:
        """Close frame (when open and ``code`` is given), half-close, drain; see the module
        docstring. ``stop`` is called once no other task is writing. Bound it with a timeout."""
        protocol = self._protocol
        async with self._sending:
            if stop is not None:
                stop()
            if code is not None and protocol.state is OPEN:
                protocol.send_close(code, reason)
            await self._write(protocol.data_to_send())
            await self._send_eof()
        async with self._receiving:
            left = drain_bytes
            while left > 0 and not self._broken:
                try:
                    data = await self.stream.receive_some(min(left, RECEIVE_SIZE))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                left -= len(data)

    # -- internals ---------------------------------------------------------------------------------

    def _ended(self) -> bool:
        protocol = self._protocol
        return (
            self._broken
            or protocol.state is CLOSED
            or protocol.close_rcvd is not None
            or protocol.close_sent is not None
            or protocol.parser_exc is not None
        )

    async def _read(self) -> bool:
        """Feed one read to the protocol; False at the end of the stream."""
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._broken = True
            data = b""
        if data:
            self._protocol.receive_data(data)
        else:
            self._protocol.receive_eof()
        return bool(data)

    def _take(self, events: Iterable[object]) -> None:
        for frame in events:
            opcode = getattr(frame, "opcode", None)
            if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
                self._text = opcode is Opcode.TEXT
                self._fragments = [bytes(frame.data)]  # type: ignore[attr-defined]
            elif opcode is Opcode.CONT:
                self._fragments.append(bytes(frame.data))  # type: ignore[attr-defined]
            elif opcode is Opcode.PONG:
                waiter = self._pings.pop(bytes(frame.data), None)  # type: ignore[attr-defined]
                if waiter is not None:
                    waiter.set()
                continue
            else:
                continue  # a ping (answered by the protocol) or a close (recorded by it)
            if frame.fin:  # type: ignore[attr-defined]
                data = b"".join(self._fragments)
                self._fragments = []
                self._messages.append(data.decode("utf-8", "replace") if self._text else data)

    async def _flush(self) -> None:
        async with self._sending:
            await self._write(self._protocol.data_to_send())

    async def _write(self, writes: list[bytes]) -> None:
        """Write the protocol's output with one send_all; its end-of-stream mark half-closes."""
        if not writes or self._eof_sent or self._broken:
            return
        data = b"".join(writes)
        try:
            if data:
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._broken = True
            return
        if SEND_EOF in writes:
            await self._send_eof()

    async def _send_eof(self) -> None:
        if self._eof_sent or self._broken:
            return
        self._eof_sent = True
        if isinstance(self.stream, trio.abc.HalfCloseableStream):
            try:
                await self.stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._broken = True
