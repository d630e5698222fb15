"""A small async client for helpline's wire protocol, for trio programs, tests and the bench.

    async with connect("ws://127.0.0.1:8765", role="agent", token=token) as ann:
        await ann.request("set_status", status="online")
        offer = await ann.wait_for("offer")
        chat = await ann.request("accept", offer_id=offer.fields["offer_id"])
        async for event in ann:
            ...

Theory of operation
-------------------
One background task reads the WebSocket and sorts what arrives: a reply wakes the
:meth:`Client.request` call that sent its ``ref`` (each request gets a fresh ref, so replies may
arrive in any order, SPEC.md section 2); an event goes to a bounded buffer that
:meth:`Client.receive`, ``async for`` and :meth:`Client.wait_for` read. When the buffer is full the
reader waits, so a program that never reads events stops reading the socket and the server
eventually closes it as a slow consumer (4000); a program that does not want events passes
``keep_events=False`` and they are dropped on arrival.

A failed reply raises :class:`ClientError` with the wire code and message. When the connection
closes, waiting requests raise :class:`ClientClosed` (with the close code), and the events still
buffered can be read before ``receive`` raises it too. Frames are decoded with the codec's
``decode_server_frame``, which holds them to the limits a client must accept and ignores unknown
fields, events and error codes, as SPEC.md section 12 asks.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any, Final, cast
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from .wire.codec import decode_server_frame, encode_request
from .wire.errors import ProtocolError
from .wire.frames import PROTOCOL_VERSION, SERVER_FRAME_LIMITS, ErrorReply, Event, Reply

__all__ = ["ROAM_CODES", "Client", "ClientClosed", "ClientError", "connect", "connect_stream"]

DEFAULT_EVENT_BUFFER: Final = 1024
_CLOSE_TIMEOUT: Final = 5.0


class ClientError(Exception):
    """The server refused a request: ``code`` is the wire error code, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ClientClosed(Exception):
    """The connection is closed; ``code`` is the WebSocket close code (None if unknown)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class Client:
    """One connection to a helpline server. Get one from :func:`connect` or
    :func:`connect_stream`."""

    def __init__(self, ws: WebSocketConnection, *, keep_events: bool, event_buffer: int) -> None:
        self.ws = ws
        #: The hello reply's fields (empty when no hello was sent).
        self.hello: Mapping[str, object] = {}
        self._keep_events = keep_events
        self._events_send, self._events = trio.open_memory_channel[Event](event_buffer)
        self._refs = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[Reply | ErrorReply]] = {}
        self._closed = trio.Event()

    # -- requests ----------------------------------------------------------------------------------

    async def request(self, type_: str, /, **fields: object) -> Mapping[str, object]:
        """Send a request and return its result fields; raise ClientError for an error reply.

        Fields given as None are left out (an optional field sent as null counts as absent).
        """
        ref = next(self._refs)
        send, receive = trio.open_memory_channel[Reply | ErrorReply](1)
        self._waiting[ref] = send
        try:
            frame = encode_request(type_, ref, **{k: v for k, v in fields.items() if v is not None})
            await self.send_raw(frame)
            try:
                answer = await receive.receive()
            except trio.EndOfChannel:
                raise self._closed_error() from None
        finally:
            self._waiting.pop(ref, None)
        if isinstance(answer, ErrorReply):
            raise ClientError(answer.code, answer.message)
        return answer.result

    async def send_raw(self, data: bytes | str) -> None:
        """Send one WebSocket message as it is (tests use it to send what no client should)."""
        try:
            await self.ws.send_message(data)
        except ConnectionClosed:
            raise self._closed_error() from None

    # -- events ------------------------------------------------------------------------------------

    async def receive(self) -> Event:
        """The next event; raises ClientClosed once the connection closed and all were read."""
        try:
            return await self._events.receive()
        except trio.EndOfChannel:
            raise self._closed_error() from None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            try:
                event = await self.receive()
            except ClientClosed:
                return
            yield event

    async def wait_for(self, name: str, /, **match: object) -> Event:
        """The next event called ``name`` whose fields include ``match``; others are dropped."""
        while True:
            event = await self.receive()
            if event.name == name and all(event.fields.get(k) == v for k, v in match.items()):
                return event

    def pending_events(self) -> list[Event]:
        """Every event received and not read yet, without waiting."""
        out: list[Event] = []
        while True:
            try:
                out.append(self._events.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return out

    # -- closing -----------------------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed, else None."""
        closed = self.ws.closed
        return None if closed is None else int(closed.code)

    async def wait_closed(self) -> int | None:
        """Wait until the connection is closed (by either side); returns the close code."""
        await self._closed.wait()
        return self.close_code

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the connection (the closing handshake is bounded by a few seconds)."""
        with trio.move_on_after(_CLOSE_TIMEOUT):
            await self.ws.aclose(code, reason)

    def _closed_error(self) -> ClientClosed:
        closed = self.ws.closed
        if closed is None:
            return ClientClosed(None, "the connection is closing")
        return ClientClosed(int(closed.code), closed.reason or "")

    async def _read(self) -> None:
        try:
            async with self._events_send:
                while True:
                    try:
                        message = await self.ws.get_message()
                    except ConnectionClosed:
                        return
                    if isinstance(message, str):
                        continue  # not a frame; a server never sends text
                    try:
                        frame = decode_server_frame(message, limits=SERVER_FRAME_LIMITS)
                    except ProtocolError:
                        continue  # SPEC.md section 12: ignore what cannot be understood
                    if isinstance(frame, Event):
                        if self._keep_events:
                            await self._events_send.send(frame)
                    else:
                        waiter = self._waiting.pop(frame.ref, None)
                        if waiter is not None:
                            waiter.send_nowait(frame)
        finally:
            for waiter in self._waiting.values():
                waiter.close()
            self._closed.set()


@asynccontextmanager
async def _session(
    ws: WebSocketConnection,
    hello: Mapping[str, object],
    *,
    keep_events: bool,
    event_buffer: int,
) -> AsyncIterator[Client]:
    client = Client(ws, keep_events=keep_events, event_buffer=event_buffer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._read)
        try:
            if hello.get("role") is not None:
                fields = {k: v for k, v in hello.items() if v is not None}
                client.hello = await client.request("hello", **fields)
            yield client
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()
            nursery.cancel_scope.cancel()


def _hello_fields(
    role: str | None,
    token: str | None,
    resume_token: str | None,
    last_seq: int | None,
    chat_id: str | None,
    version: int,
) -> dict[str, object]:
    return {
        "version": version,
        "role": role,
        "token": token,
        "resume_token": resume_token,
        "last_seq": last_seq,
        "chat_id": chat_id,
    }


ROAM_CODES: Final = frozenset({1001, 1006, 1011, 1012, 1013})
"""Close codes that say "another node, or later": a hello closed with one tries the next URL."""
_BACKOFF_FIRST: Final = 0.1
_BACKOFF_MAX: Final = 2.0


@asynccontextmanager
async def connect(
    url: str | Sequence[str],
    *,
    role: str | None = None,
    token: str | None = None,
    resume_token: str | None = None,
    last_seq: int | None = None,
    chat_id: str | None = None,
    version: int = PROTOCOL_VERSION,
    origin: str | None = None,
    keep_events: bool = True,
    event_buffer: int = DEFAULT_EVENT_BUFFER,
    connect_timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
    retry_for: float = 0.0,
) -> AsyncIterator[Client]:
    """Connect to ``url`` (``ws://`` or ``wss://``) and, when ``role`` is given, say hello.

    ``token`` signs in an agent or an admin; a visitor resumes a chat with ``resume_token`` and
    ``last_seq`` (and optionally its ``chat_id``). ``origin`` is sent as the Origin header.
    A refused hello raises ClientError; the connection is closed on leaving the block.

    Several nodes: ``url`` may be a list of the nodes' URLs. They are tried in order until one
    answers the hello; a node that cannot be reached, or that closes the hello with a code of
    ``ROAM_CODES`` (1013: the desk is moving, try again), passes to the next. After a round that
    failed, the list is tried again after a backoff (0.1 s, doubling, at most 2 s) for up to
    ``retry_for`` seconds; then the last failure is raised. A refused hello is not retried.
    """
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("no URL to connect to")
    for candidate in urls:
        _parse_url(candidate)
    give_up = trio.current_time() + retry_for
    delay = _BACKOFF_FIRST
    while True:
        failure: BaseException | None = None
        for candidate in urls:
            stack = AsyncExitStack()
            try:
                client = await stack.enter_async_context(
                    _connect_one(
                        candidate,
                        connect_timeout,
                        ssl_context,
                        role=role,
                        token=token,
                        resume_token=resume_token,
                        last_seq=last_seq,
                        chat_id=chat_id,
                        version=version,
                        origin=origin,
                        keep_events=keep_events,
                        event_buffer=event_buffer,
                    )
                )
            except ClientClosed as exc:
                if exc.code not in ROAM_CODES:
                    raise
                failure = exc
                continue
            except (OSError, trio.TooSlowError, HandshakeError) as exc:
                failure = exc
                continue
            async with stack:
                yield client
            return
        assert failure is not None
        left = give_up - trio.current_time()
        if left <= 0:
            raise failure
        await trio.sleep(min(delay, left))
        delay = min(delay * 2, _BACKOFF_MAX)


def _parse_url(url: str) -> tuple[bool, str, int, str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"expected a ws:// or wss:// URL, not {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return secure, parts.hostname, port, resource, parts.netloc


@asynccontextmanager
async def _connect_one(
    url: str, connect_timeout: float, ssl_context: ssl.SSLContext | None, **hello: Any
) -> AsyncIterator[Client]:
    secure, hostname, port, resource, netloc = _parse_url(url)
    with trio.fail_after(connect_timeout):
        stream: trio.abc.Stream = await trio.open_tcp_stream(hostname, port)
        if secure:
            stream = trio.SSLStream(
                stream, ssl_context or ssl.create_default_context(), server_hostname=hostname
            )
    async with connect_stream(
        stream, host=netloc, resource=resource, handshake_timeout=connect_timeout, **hello
    ) as client:
        yield client


@asynccontextmanager
async def connect_stream(
    stream: trio.abc.Stream,
    *,
    role: str | None = None,
    token: str | None = None,
    resume_token: str | None = None,
    last_seq: int | None = None,
    chat_id: str | None = None,
    version: int = PROTOCOL_VERSION,
    origin: str | None = None,
    keep_events: bool = True,
    event_buffer: int = DEFAULT_EVENT_BUFFER,
    host: str = "helpline",
    resource: str = "/",
    handshake_timeout: float = 10.0,
    message_queue_size: int = 1,
) -> AsyncIterator[Client]:
    """Like :func:`connect`, over an already open stream (an in-memory stream in tests).

    The stream is closed on leaving the block.
    """
    headers = [] if origin is None else [(b"Origin", origin.encode("latin-1"))]
    hello = _hello_fields(role, token, resume_token, last_seq, chat_id, version)
    try:
        with _unwrapped():
            async with trio.open_nursery() as nursery:
                with trio.fail_after(handshake_timeout):
                    ws = await wrap_client_stream(
                        nursery,
                        cast(Any, stream),  # typed as a socket stream; any stream works
                        host,
                        resource,
                        extra_headers=headers,
                        message_queue_size=message_queue_size,
                        max_message_size=SERVER_FRAME_LIMITS.max_frame_size,
                    )
                async with _session(
                    ws, hello, keep_events=keep_events, event_buffer=event_buffer
                ) as client:
                    yield client
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


@contextmanager
def _unwrapped() -> Iterator[None]:
    """Let one exception out of the client's nurseries as itself, not in exception groups.

    A refused hello is a ClientError, and an error raised in the caller's block stays that error.
    Groups holding several exceptions are left alone.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves: list[BaseException] = []
        pending: list[BaseException] = [group]
        while pending:
            exc = pending.pop()
            if isinstance(exc, BaseExceptionGroup):
                pending.extend(exc.exceptions)
            else:
                leaves.append(exc)
        if len(leaves) != 1:
            raise
        raise leaves[0] from None
