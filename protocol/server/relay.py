"""Several nodes: a node without the routing lease relays each client to the node that holds it.

Theory of operation
-------------------
One client connection, one upstream connection to the holder's advertised address, and the bytes
copied both ways unchanged, so WebSocket frames (masked as the client sent them), pings, close
frames and plain HTTP requests all reach the holder as they were sent. The only change is to the
opening request: any ``X-Helpline-Relay`` header the client sent is dropped and one is added with
the client's address signed with the cluster's secret (``engine.lease.sign_peer``), so the
holder's per-address limits count the client, not the relaying node, and a client cannot forge it.

The two sides close together: when one side ends its stream, the other's write side is shut
(a TCP half-close, so a close handshake in flight completes), and both are closed once both
directions ended, or ``close_timeout`` after the first did, or at once on an error. A holder that
dies takes its relayed clients with it: they see their connection drop and reconnect.

An upstream that cannot be reached (no holder yet, or it is gone) is answered here: a WebSocket
upgrade is accepted and closed at once with 1013 (try again later) and a reason that says so; a
plain HTTP request gets 503.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

import structlog
import trio

from engine import lease

from .gateway import RELAY_HEADER, is_upgrade
from .settings import ServerSettings
from .transport import Transport

__all__ = ["TRY_AGAIN", "relay"]

log = structlog.get_logger("helpline.relay")

TRY_AGAIN: Final = "the desk is moving to another node; try again in a moment"
CONNECT_TIMEOUT: Final = 3.0
HEAD_LIMIT: Final = 16_384  # bytes of an opening request (as the gateway's parser allows)
CHUNK: Final = 65_536
_OWN_HEADER: Final = re.compile(rb"\r\n" + RELAY_HEADER.encode() + rb":[^\r\n]*", re.IGNORECASE)


async def relay(
    stream: trio.SocketStream | trio.abc.Stream,
    peer: str,
    upstream_url: str | None,
    secret: str,
    settings: ServerSettings,
    *,
    on_open: Callable[[], None] | None = None,
) -> None:
    """Relay ``stream`` to ``upstream_url`` (see the module docstring); closes ``stream``."""
    try:
        upstream = await _connect(upstream_url)
        if upstream is None:
            await _try_again(stream, settings)
            return
        try:
            head = await _read_head(stream, settings)
            if head is None:
                return
            if on_open is not None:
                on_open()
            await upstream.send_all(_with_peer(head, peer, secret))
            await _pipe(stream, upstream, settings.close_timeout)
        finally:
            await trio.aclose_forcefully(upstream)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        log.exception("relay_crashed", peer=peer)
    finally:
        await trio.aclose_forcefully(stream)


async def _connect(url: str | None) -> trio.SocketStream | None:
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    with trio.move_on_after(CONNECT_TIMEOUT):
        try:
            return await trio.open_tcp_stream(parts.hostname, parts.port or 80)
        except OSError as exc:
            log.info("relay_upstream_unreachable", url=url, error=str(exc))
            return None
    log.info("relay_upstream_unreachable", url=url, error="timeout")
    return None


async def _read_head(stream: trio.abc.Stream, settings: ServerSettings) -> bytes | None:
    """The opening request and whatever came with it; None if the client left or sent junk."""
    data = b""
    with trio.move_on_after(settings.handshake_timeout):
        while b"\r\n\r\n" not in data:
            if len(data) > HEAD_LIMIT:
                return None
            chunk = await stream.receive_some(CHUNK)
            if not chunk:
                return None
            data += chunk
        return data
    return None


def _with_peer(head: bytes, peer: str, secret: str) -> bytes:
    """``head`` without any relay header the client sent, with ours after the request line."""
    end = head.index(b"\r\n\r\n")
    request, rest = _OWN_HEADER.sub(b"", head[:end]), head[end:]
    first, _, headers = request.partition(b"\r\n")
    signed = f"{RELAY_HEADER}: {lease.sign_peer(secret, peer)}".encode()
    return first + b"\r\n" + signed + (b"\r\n" + headers if headers else b"") + rest


async def _pipe(client: trio.abc.Stream, upstream: trio.abc.Stream, close_timeout: float) -> None:
    """Copy both ways until both directions ended (or close_timeout after the first did)."""
    first_done = trio.Event()

    async def copy(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
        try:
            while True:
                data = await source.receive_some(CHUNK)
                if not data:
                    break
                await sink.send_all(data)
            if isinstance(sink, trio.abc.HalfCloseableStream):
                await sink.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            nursery.cancel_scope.cancel()
        finally:
            first_done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(copy, client, upstream)
        nursery.start_soon(copy, upstream, client)
        await first_done.wait()
        nursery.cancel_scope.deadline = trio.current_time() + close_timeout


async def _try_again(stream: trio.abc.Stream, settings: ServerSettings) -> None:
    """No holder to relay to: close a WebSocket with 1013, answer HTTP with 503."""
    transport = Transport(stream, max_size=settings.max_frame_size, origins=settings.origins)
    with trio.move_on_after(settings.handshake_timeout + settings.close_timeout):
        request = await transport.request()
        if request is None:
            return
        if is_upgrade(request):
            response = transport.accept(request)
        else:
            response = transport.reject(503, TRY_AGAIN + "\n")
        if await transport.respond(response):
            await transport.aclose(1013, TRY_AGAIN, drain_bytes=settings.close_drain_bytes)
        else:
            await transport.aclose(drain_bytes=settings.close_drain_bytes)
