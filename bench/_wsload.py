"""The WebSocket load generator and the server processes it drives.

Theory of operation:

- The server under test (helpline's daemon or the bare relay of `bench._relay`) runs in its own
  process, started here and stopped with SIGINT; it prints the URL it listens on. The generator
  runs in this process, on raw trio-websocket connections with msgpack frames written by hand
  (no client library): it must stay lighter than the server so that it is not the bottleneck.
  Both processes' CPU seconds are read around every phase, which says which one saturated.
- A `Fleet` is the set of connections to one server: agents first, then visitors, each visitor
  tied to one agent (round robin) and, for helpline, with its chat open and accepted. A dialect
  says how to connect, how a frame is carried, what a visitor sends and how an agent recognises a
  delivered message; the relay's clients send the very same frames as helpline's, so the bytes on
  the wire match, and the socket.io peer (`bench._socketio`) carries those frames as binary
  socket.io events.
- A phase sends messages and counts them at the agents by their ``client_msg_id``: sent,
  delivered, duplicated, lost, and each message's delay. A *max* phase keeps a window of
  messages in flight per visitor (a message leaves the window when its agent got it); a *rate*
  phase is open-loop: each visitor sends on a fixed schedule and a message's delay is counted
  from when it was due, so a server that falls behind cannot hide it (no coordinated omission).
- Everything is bounded: connection counts, message counts, phase durations and the drain after
  a phase. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgpack
import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto.utilities import LocalProtocolError

from ._common import cpu_seconds, percentile, rss_bytes

TEXT = "Hello, I have a question about my order."
ROOT = Path(__file__).resolve().parent.parent


# --- server processes -----------------------------------------------------------------------------


@dataclass(slots=True)
class ServerProcess:
    """A running server: its process, the URL it printed, and its last lines of output."""

    proc: subprocess.Popen[str]
    url: str
    output: collections.deque[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss(self) -> int:
        return rss_bytes(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None


_LISTENING = re.compile(r"listening on (ws://127\.0\.0\.1:\d+)")


@contextmanager
def server_process(argv: Sequence[str], timeout: float = 30.0) -> Iterator[ServerProcess]:
    """Start a server that prints ``... listening on ws://127.0.0.1:PORT``; stop it afterwards."""
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output: collections.deque[str] = collections.deque(maxlen=50)
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:  # read every line, so the server never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line.rstrip())
            if not found.is_set() and (match := _LISTENING.search(line)):
                url.append(match.group(1))
                found.set()
        found.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not found.wait(timeout) or not url:
            raise RuntimeError(
                f"{' '.join(argv[:4])} did not say where it listens within {timeout:g} s:\n"
                + "\n".join(output)
            )
        yield ServerProcess(proc, url[0], output)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def relay_argv() -> list[str]:
    return [sys.executable, "-m", "bench._relay", "--port", "0"]


# --- dialects -------------------------------------------------------------------------------------


def pack(frame: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(frame)
    return data


def unpack(data: bytes | str) -> dict[str, Any]:
    if isinstance(data, str):
        return {}
    frame = msgpack.unpackb(data)
    return frame if isinstance(frame, dict) else {}


def send_frame(ref: int, msg_id: str) -> bytes:
    """A visitor's ``send`` request (protocol/SPEC.md 6.2): what both servers receive."""
    return pack({"type": "send", "ref": ref, "text": TEXT, "client_msg_id": msg_id})


class Dialect(Protocol):
    """How one kind of server is spoken to."""

    name: str

    async def connect_agent(
        self, nursery: trio.Nursery, url: str, index: int
    ) -> WebSocketConnection: ...

    async def connect_visitor(
        self, nursery: trio.Nursery, url: str, index: int, agent: int
    ) -> WebSocketConnection: ...

    def delivered(self, frame: dict[str, Any]) -> str | None:
        """The client_msg_id if this frame, read by an agent, is a visitor's message."""
        ...

    async def on_agent_frame(self, ws: WebSocketConnection, frame: dict[str, Any]) -> None: ...

    async def send(self, ws: WebSocketConnection, frame: bytes) -> None:
        """Send one msgpack frame the way this server carries it."""
        ...

    async def receive(self, ws: WebSocketConnection) -> bytes | str:
        """The next message for the client (a server's own housekeeping is answered here)."""
        ...


class PlainFrames:
    """One msgpack frame is one binary WebSocket message (the relay and helpline)."""

    async def send(self, ws: WebSocketConnection, frame: bytes) -> None:
        await ws.send_message(frame)

    async def receive(self, ws: WebSocketConnection) -> bytes | str:
        return await ws.get_message()


class RelayDialect(PlainFrames):
    """The bare relay: agents and visitors are told apart by the path; frames pass unchanged."""

    name = "relay"

    async def connect_agent(
        self, nursery: trio.Nursery, url: str, index: int
    ) -> WebSocketConnection:
        return await trio_websocket.connect_websocket_url(nursery, f"{url}/agent/{index}")

    async def connect_visitor(
        self, nursery: trio.Nursery, url: str, index: int, agent: int
    ) -> WebSocketConnection:
        return await trio_websocket.connect_websocket_url(nursery, f"{url}/visitor/{agent}")

    def delivered(self, frame: dict[str, Any]) -> str | None:
        if frame.get("type") == "send":
            msg_id: str = frame["client_msg_id"]
            return msg_id
        return None

    async def on_agent_frame(self, ws: WebSocketConnection, frame: dict[str, Any]) -> None:
        return None


class ProtocolError(RuntimeError):
    """The server answered a setup request with an error."""


async def request(ws: WebSocketConnection, frame: dict[str, Any]) -> dict[str, Any]:
    """Send a request and read frames until its reply (events on the way are dropped)."""
    await ws.send_message(pack(frame))
    while True:
        reply = unpack(await ws.get_message())
        if reply.get("type") == "reply" and reply.get("ref") == frame["ref"]:
            if not reply.get("ok"):
                raise ProtocolError(f"{frame['type']}: {reply.get('error')}")
            return reply


class HelplineDialect(PlainFrames):
    """helpline's wire protocol (protocol/SPEC.md): hello, then agents go online and accept."""

    name = "helpline"

    def __init__(self, tokens: Sequence[str], department: str) -> None:
        self.tokens = tokens
        self.department = department
        self._ref = 1000
        self.owned: list[tuple[WebSocketConnection, str]] = []  # (agent, chat id) per accept

    def _next_ref(self) -> int:
        self._ref += 1
        return self._ref

    async def connect_agent(
        self, nursery: trio.Nursery, url: str, index: int
    ) -> WebSocketConnection:
        ws = await trio_websocket.connect_websocket_url(nursery, url)
        await request(
            ws,
            {
                "type": "hello",
                "ref": 1,
                "version": 1,
                "role": "agent",
                "token": self.tokens[index],
            },
        )
        await request(ws, {"type": "set_status", "ref": 2, "status": "online"})
        return ws

    async def connect_visitor(
        self, nursery: trio.Nursery, url: str, index: int, agent: int
    ) -> WebSocketConnection:
        ws = await trio_websocket.connect_websocket_url(nursery, url)
        await request(ws, {"type": "hello", "ref": 1, "version": 1, "role": "visitor"})
        await ws.send_message(
            pack(
                {
                    "type": "open_chat",
                    "ref": 2,
                    "department": self.department,
                    "name": f"Visitor {index}",
                    "question": f"Question {index}",
                }
            )
        )
        while True:  # the chat is active once an agent joined it
            frame = unpack(await ws.get_message())
            if frame.get("type") == "reply" and not frame.get("ok"):
                raise ProtocolError(f"open_chat: {frame.get('error')}")
            if frame.get("event") == "system" and frame.get("kind") == "joined":
                return ws

    def delivered(self, frame: dict[str, Any]) -> str | None:
        if frame.get("event") == "message" and frame.get("author") == "visitor":
            msg_id: str = frame.get("client_msg_id", "")
            return msg_id
        return None

    async def end_chats(self) -> int:
        """Every agent ends every chat it accepted (each becomes a transcript ticket).

        Returns how many chats could not be ended because their agent's connection was closed
        (a slow reader is closed by the server; its chats end after the agent's grace instead).
        """
        orphaned = 0
        for ws, chat_id in self.owned:
            end = {"type": "end_chat", "ref": self._next_ref(), "chat_id": chat_id}
            try:
                await ws.send_message(pack(end))
            except ConnectionClosed:
                orphaned += 1
        self.owned.clear()
        return orphaned

    async def on_agent_frame(self, ws: WebSocketConnection, frame: dict[str, Any]) -> None:
        if frame.get("type") == "reply" and frame.get("ok") and "owner" in frame:
            self.owned.append((ws, frame["chat_id"]))  # the reply to an accept
        elif frame.get("event") == "offer":
            ref = self._next_ref()
            accept = {"type": "accept", "ref": ref, "offer_id": frame["offer_id"]}
            await ws.send_message(pack(accept))


# --- the fleet ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What one phase did: counts, delays (seconds) and both processes' CPU seconds.

    `delivered` counts distinct messages; a message that arrived again counts in `duplicates`.
    """

    sent: int = 0
    delivered: int = 0
    duplicates: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    generator_cpu: float = 0.0
    offered: float | None = None
    errors: list[str] = field(default_factory=list)
    loadavg: float | None = None  # the machine's 1-minute load average when the phase ended

    @property
    def lost(self) -> int:
        return self.sent - self.delivered

    @property
    def rate(self) -> float:
        return self.delivered / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, q: float) -> float:
        """The q-th percentile of the delays, in milliseconds."""
        return percentile(self.latencies, q) * 1e3

    def summary(self) -> dict[str, Any]:
        n = max(1, self.delivered)
        return {
            "offered_per_s": self.offered,
            "sent": self.sent,
            "delivered": self.delivered,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "seconds": round(self.elapsed, 3),
            "delivered_per_s": round(self.rate, 1),
            "p50_ms": round(self.p(50), 3) if self.latencies else None,
            "p99_ms": round(self.p(99), 3) if self.latencies else None,
            "server_cpu_s_per_msg": self.server_cpu / n,
            "generator_cpu_s_per_msg": self.generator_cpu / n,
            "server_cpu_busy": round(self.server_cpu / self.elapsed, 3) if self.elapsed else None,
            "generator_cpu_busy": round(self.generator_cpu / self.elapsed, 3)
            if self.elapsed
            else None,
            "loadavg": self.loadavg,
            "errors": self.errors[:5],
        }


@dataclass(slots=True, eq=False)
class _Visitor:
    index: int
    ws: WebSocketConnection
    window: trio.Semaphore | None = None
    ref: int = 10
    ended: trio.Event = field(default_factory=trio.Event)


class Fleet:
    """Agents and visitors connected to one server, and the phases that load it."""

    def __init__(
        self, dialect: Dialect, server: ServerProcess, n_agents: int, n_visitors: int
    ) -> None:
        self.dialect = dialect
        self.server = server
        self.n_agents = n_agents
        self.n_visitors = n_visitors
        self.agents: list[WebSocketConnection] = []
        self.visitors: list[_Visitor] = []
        self.errors: list[str] = []
        self.phase = 0  # numbers the phases; message ids start with it
        self._pending: dict[str, tuple[float, _Visitor]] = {}
        self._seen: set[str] = set()
        self._outcome = Outcome()
        self._goal = 0
        self._reached = trio.Event()
        self._closing = False
        self._hosting: trio.Nursery | None = None
        self.watch_ended = False  # visitors decode what they read, to notice "ended"

    async def open(self, nursery: trio.Nursery) -> None:
        """Connect the agents, then the visitors."""
        await self.open_agents(nursery)
        await self.open_visitors(nursery)

    async def _host(self, nursery: trio.Nursery) -> trio.Nursery:
        """The nursery that holds this fleet's connections, inside `nursery` (made once)."""
        if self._hosting is None:
            self._hosting = await nursery.start(self._hold)
        return self._hosting

    async def _hold(self, task_status: trio.TaskStatus[trio.Nursery]) -> None:
        # trio-websocket answers a ping from its reader task; a ping that arrives while the
        # client is closing makes wsproto raise LocalProtocolError there. At close that is
        # noise, not a failure of the server under test.
        try:
            async with trio.open_nursery() as hosting:
                task_status.started(hosting)
                await trio.sleep_forever()
        except* LocalProtocolError:
            if not self._closing:
                raise

    async def open_agents(self, nursery: trio.Nursery) -> None:
        nursery = await self._host(nursery)
        for i in range(self.n_agents):
            ws = await self.dialect.connect_agent(nursery, self.server.url, i)
            self.agents.append(ws)
            nursery.start_soon(self._agent_reader, ws)

    async def open_visitors(self, nursery: trio.Nursery, concurrency: int = 64) -> None:
        """Connect the visitors, `concurrency` handshakes (and chat openings) at a time."""
        nursery = await self._host(nursery)
        limiter = trio.CapacityLimiter(concurrency)

        async def one(i: int) -> None:
            async with limiter:
                ws = await self.dialect.connect_visitor(
                    nursery, self.server.url, i, i % self.n_agents
                )
            visitor = _Visitor(i, ws)
            self.visitors.append(visitor)
            nursery.start_soon(self._visitor_reader, visitor)

        async with trio.open_nursery() as connecting:
            for i in range(self.n_visitors):
                connecting.start_soon(one, i)
        self.visitors.sort(key=lambda v: v.index)

    async def aclose(self) -> None:
        self._closing = True
        with trio.move_on_after(10) as scope:
            scope.shield = True
            for v in self.visitors:
                await v.ws.aclose()
            for ws in self.agents:
                await ws.aclose()

    async def wait_ended(self, wait: float = 30.0) -> int:
        """Wait up to `wait` seconds in all until every visitor's chat ended; returns how many
        did."""
        with trio.move_on_after(wait):
            for v in self.visitors:
                await v.ended.wait()
        return sum(v.ended.is_set() for v in self.visitors)

    async def _agent_reader(self, ws: WebSocketConnection) -> None:
        delivered, receive = self.dialect.delivered, self.dialect.receive
        try:
            while True:
                frame = unpack(await receive(ws))
                msg_id = delivered(frame)
                if msg_id is not None:
                    self._on_delivered(msg_id)
                else:
                    await self.dialect.on_agent_frame(ws, frame)
        except ConnectionClosed as exc:
            if not self._closing:
                self.errors.append(f"an agent connection closed: {exc.reason}")
                self._reached.set()

    async def _visitor_reader(self, visitor: _Visitor) -> None:
        receive = self.dialect.receive
        try:
            while True:  # replies and the visitor's own lines: read and dropped
                data = await receive(visitor.ws)
                if self.watch_ended and unpack(data).get("event") == "ended":
                    visitor.ended.set()
        except ConnectionClosed as exc:
            if not self._closing:
                self.errors.append(f"a visitor connection closed: {exc.reason}")

    def _on_delivered(self, msg_id: str) -> None:
        out = self._outcome
        if msg_id in self._seen:
            out.duplicates += 1
            return
        entry = self._pending.pop(msg_id, None)
        if entry is None:
            return  # a late message of an earlier phase
        self._seen.add(msg_id)
        out.delivered += 1
        due, visitor = entry
        out.latencies.append(trio.current_time() - due)
        if visitor.window is not None:
            visitor.window.release()
        if out.delivered >= self._goal:
            self._reached.set()

    def _begin(self) -> Outcome:
        self.phase += 1
        self._pending.clear()
        self._seen = set()
        self._outcome = Outcome()
        self._goal = 1 << 62
        self._reached = trio.Event()
        self.errors.clear()
        return self._outcome

    async def _send(self, visitor: _Visitor, msg_id: str, due: float) -> None:
        self._pending[msg_id] = (due, visitor)
        visitor.ref += 1
        await self.dialect.send(visitor.ws, send_frame(visitor.ref, msg_id))
        self._outcome.sent += 1

    async def _finish(self, out: Outcome, start: float, drain: float) -> None:
        self._goal = out.sent
        if out.delivered >= out.sent:
            self._reached.set()
        with trio.move_on_after(drain):
            await self._reached.wait()
        out.elapsed = trio.current_time() - start
        out.errors = list(self.errors)
        out.loadavg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    async def run_max(self, total: int, window: int = 4, drain: float = 30.0) -> Outcome:
        """Send `total` messages as fast as the server takes them, `window` per visitor at once."""
        out = self._begin()
        per = max(1, total // len(self.visitors))
        for v in self.visitors:
            v.window = trio.Semaphore(window)

        async def visitor(v: _Visitor) -> None:
            assert v.window is not None
            for k in range(per):
                await v.window.acquire()
                await self._send(v, f"{self.phase}.{v.index}.{k}", trio.current_time())

        cpu0, gen0, start = self.server.cpu(), cpu_seconds(), trio.current_time()
        async with trio.open_nursery() as nursery:
            for v in self.visitors:
                nursery.start_soon(visitor, v)
        await self._finish(out, start, drain)
        out.server_cpu, out.generator_cpu = self.server.cpu() - cpu0, cpu_seconds() - gen0
        for v in self.visitors:
            v.window = None
        return out

    async def run_rate(self, rate: float, duration: float, drain: float = 10.0) -> Outcome:
        """Offer `rate` messages per second in all for `duration` seconds, on a fixed schedule."""
        out = self._begin()
        out.offered = rate
        n = len(self.visitors)
        interval = n / rate
        cpu0, gen0, start = self.server.cpu(), cpu_seconds(), trio.current_time()
        end = start + duration

        async def visitor(v: _Visitor) -> None:
            due = start + interval * v.index / n
            k = 0
            while due < end:
                await trio.sleep_until(due)
                await self._send(v, f"{self.phase}.{v.index}.{k}", due)
                k += 1
                due += interval

        async with trio.open_nursery() as nursery:
            for v in self.visitors:
                nursery.start_soon(visitor, v)
        await self._finish(out, start, drain)
        out.server_cpu, out.generator_cpu = self.server.cpu() - cpu0, cpu_seconds() - gen0
        return out
