"""A real webhook receiver for tests: HTTP/1.1 on 127.0.0.1 through h11, in the test's trio run.

It records every POST it reads (headers and body) and answers with whatever `answer` says: a
status code, or None to close the connection without answering (a lost response).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import h11
import trio

from protocol.server.webhooks import verify


@dataclass
class Received:
    """One POST as the receiver read it."""

    headers: dict[str, str]
    body: bytes
    status: int | None  # what it answered (None: nothing, the connection was dropped)

    @property
    def event(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc


@dataclass
class Receiver:
    """What arrived, and how to answer the next request."""

    url: str = ""
    answer: Callable[[Received], int | None] = lambda r: 200
    received: list[Received] = field(default_factory=list)

    def accepted(self) -> list[Received]:
        """The requests answered 2xx, each delivery id once (as a deduplicating receiver)."""
        seen: set[str] = set()
        out = []
        for r in self.received:
            if r.status is not None and 200 <= r.status < 300:
                key = r.headers["x-helpline-delivery"]
                if key not in seen:
                    seen.add(key)
                    out.append(r)
        return out

    def valid(self, secret: str, now: float) -> bool:
        """Whether every request carried a good signature."""
        return all(
            verify(secret, r.headers["x-helpline-signature"], r.body, now=now)
            for r in self.received
        )

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                    continue
                if not isinstance(event, h11.Request):
                    return
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                body = b""
                while True:
                    part = conn.next_event()
                    if part is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(part, h11.Data):
                        body += part.data
                    elif isinstance(part, h11.EndOfMessage):
                        break
                received = Received(headers=headers, body=body, status=None)
                received.status = self.answer(received)
                self.received.append(received)
                if received.status is None:
                    return  # dropped: the sender never learns whether it arrived
                reply = h11.Response(status_code=received.status, headers=[("content-length", "0")])
                await stream.send_all(conn.send(reply) + conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()


@asynccontextmanager
async def receiver(path: str = "/hook") -> AsyncIterator[Receiver]:
    """A receiver listening on a free port of 127.0.0.1 for the duration of the block."""
    rec = Receiver()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, rec._serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        rec.url = f"http://127.0.0.1:{port}{path}"
        yield rec
        nursery.cancel_scope.cancel()
