"""The socket.io peer: helpline's daemon against the relay a user would build with python-socketio.

Theory of operation:

- The peer is `bench._sioserver`: a python-socketio room relay on uvicorn (uvloop when it is
  installed), in its own process like the trio-websocket relay, with the same 10 agents and 100
  visitors, one room per chat. It needs the ``bench`` extra; without it the rows say they were
  skipped and how to install it.
- The load generator speaks Engine.IO 4 / Socket.IO 5 itself over the same raw trio-websocket
  connections as for the other servers (`SocketIODialect`), and each visitor's message is the
  very msgpack ``send`` frame that helpline and the relay get, carried as the binary attachment of
  a ``send`` event. The python-socketio client library is not used: it runs on asyncio (the
  generator is one trio run), it keeps its own tasks per client and its reconnection and
  acknowledgement machinery, and a heavier generator would saturate before the server and
  flatter it. Speaking the protocol by hand costs the generator the same per message as the
  other dialects, plus the event's header message.
- Socket.IO carries a binary event as two WebSocket messages: a text header
  (``451-["send",{"_placeholder":true,"num":0}]``) then the bytes. The server's ping (``2``) is
  answered with a pong (``3``) by whichever reader sees it.
- Rows: helpline's throughput, server CPU per message and server memory per connected visitor
  (with an open, accepted chat; for the peer, a visitor in its chat's room), each as a ratio to
  the peer measured in the same run, round by round in alternating order. The details say which
  process saturated in each throughput phase.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import trio
import trio_websocket
from trio_websocket import WebSocketConnection

from ._common import Result, RunConfig, ainterleave, interleave, median, progress, temp_db
from ._daemon import (
    N_AGENTS,
    N_VISITORS,
    Unavailable,
    helpline_unavailable,
    prepare_helpline,
    saturation,
    summarise,
)
from ._wsload import (
    Dialect,
    Fleet,
    HelplineDialect,
    Outcome,
    ProtocolError,
    ServerProcess,
    server_process,
)

INSTALL = "pip install -e '.[bench]' (python-socketio, uvicorn and uvloop)"
_SEND_HEADER = '451-["send",{"_placeholder":true,"num":0}]'


def unavailable() -> str | None:
    """Why the socket.io peer cannot run here, with how to install it; None when it can."""
    missing = [m for m in ("socketio", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        return f"the socket.io peer needs the bench extra ({', '.join(missing)} missing): {INSTALL}"
    return helpline_unavailable()


def sio_argv() -> list[str]:
    return [sys.executable, "-m", "bench._sioserver", "--port", "0"]


class SocketIODialect:
    """Engine.IO 4 and Socket.IO 5 over raw WebSocket, just enough for the relay of `_sioserver`."""

    name = "socketio"

    async def _connect(
        self, nursery: trio.Nursery, url: str, auth: dict[str, Any]
    ) -> WebSocketConnection:
        ws = await trio_websocket.connect_websocket_url(
            nursery, f"{url}/socket.io/?EIO=4&transport=websocket"
        )
        opening = await ws.get_message()  # '0{"sid": ..., "pingInterval": ...}'
        if not (isinstance(opening, str) and opening.startswith("0")):
            raise ProtocolError(f"engine.io open expected, got {opening!r:.80}")
        await ws.send_message("40" + json.dumps(auth))  # connect to the namespace "/"
        while True:
            reply = await ws.get_message()
            if reply == "2":
                await ws.send_message("3")
            elif isinstance(reply, str) and reply.startswith("40"):
                return ws
            elif isinstance(reply, str) and reply.startswith("44"):
                raise ProtocolError(f"socket.io connect refused: {reply[2:]:.80}")

    async def connect_agent(
        self, nursery: trio.Nursery, url: str, index: int
    ) -> WebSocketConnection:
        return await self._connect(nursery, url, {"role": "agent", "key": index})

    async def connect_visitor(
        self, nursery: trio.Nursery, url: str, index: int, agent: int
    ) -> WebSocketConnection:
        return await self._connect(nursery, url, {"role": "visitor", "chat": index, "agent": agent})

    def delivered(self, frame: dict[str, Any]) -> str | None:
        if frame.get("type") == "send":
            msg_id: str = frame["client_msg_id"]
            return msg_id
        return None

    async def on_agent_frame(self, ws: WebSocketConnection, frame: dict[str, Any]) -> None:
        return None

    async def send(self, ws: WebSocketConnection, frame: bytes) -> None:
        await ws.send_message(_SEND_HEADER)
        await ws.send_message(frame)

    async def receive(self, ws: WebSocketConnection) -> bytes | str:
        """The next binary attachment; event headers are skipped and pings answered."""
        while True:
            message = await ws.get_message()
            if isinstance(message, bytes):
                return message
            if message == "2":
                await ws.send_message("3")


# --- the scenario ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _servers(
    n_agents: int, capacity: int
) -> Iterator[tuple[ServerProcess, ServerProcess, Dialect]]:
    """The socket.io relay and helpline's daemon, each in its own process."""
    with contextlib.ExitStack() as stack:
        peer = stack.enter_context(server_process(sio_argv()))
        db = stack.enter_context(temp_db())
        argv, tokens = prepare_helpline(db, n_agents, capacity)
        helpline = stack.enter_context(server_process(argv))
        yield peer, helpline, HelplineDialect(tokens, "bench")


def _throughput(
    config: RunConfig, n_agents: int, n_visitors: int, capacity: int
) -> dict[str, list[Outcome]]:
    total = config.pick(200, 10_000, 50_000)
    outcomes: dict[str, list[Outcome]] = {"socketio": [], "helpline": []}

    async def main(peer: ServerProcess, helpline: ServerProcess, dialect: Dialect) -> None:
        async with trio.open_nursery() as nursery:
            fleets = {
                "socketio": Fleet(SocketIODialect(), peer, n_agents, n_visitors),
                "helpline": Fleet(dialect, helpline, n_agents, n_visitors),
            }
            for name, fleet in fleets.items():
                progress.update(f"socketio: connecting {n_visitors} visitors to {name}")
                await fleet.open(nursery)
                progress.update(f"socketio: warming up {name}")
                await fleet.run_max(max(n_visitors, total // 10))

            def measure(name: str) -> Callable[[], Awaitable[float]]:
                async def one() -> float:
                    out = await fleets[name].run_max(total)
                    outcomes[name].append(out)
                    return out.rate

                return one

            await ainterleave(
                config.n_rounds(), {name: measure(name) for name in fleets}, "socketio throughput"
            )
            for fleet in fleets.values():
                await fleet.aclose()
            nursery.cancel_scope.cancel()

    with _servers(n_agents, capacity) as (peer, helpline, dialect):
        trio.run(main, peer, helpline, dialect)
    return outcomes


def _memory(
    config: RunConfig, n_agents: int, n_visitors: int, capacity: int
) -> dict[str, list[float]]:
    async def load(server: ServerProcess, dialect: Dialect, name: str) -> float:
        async with trio.open_nursery() as nursery:
            fleet = Fleet(dialect, server, n_agents, n_visitors)
            await fleet.open_agents(nursery)
            await trio.sleep(0.5)
            before = server.rss()
            progress.update(f"socketio: {n_visitors:,} visitors to {name}")
            await fleet.open_visitors(nursery)
            await trio.sleep(0.5)
            after = server.rss()
            await fleet.aclose()
            nursery.cancel_scope.cancel()
        return (after - before) / n_visitors

    def once(name: str) -> float:
        with temp_db() as db:
            if name == "socketio":
                argv, dialect = sio_argv(), SocketIODialect()
            else:
                argv, tokens = prepare_helpline(db, n_agents, capacity)
                dialect = HelplineDialect(tokens, "bench")
            with server_process(argv) as server:
                return trio.run(load, server, dialect, name)

    rounds = config.n_rounds(quick=1, full=3)
    return interleave(
        rounds,
        {"socketio": lambda: once("socketio"), "helpline": lambda: once("helpline")},
        "socketio memory",
    )


def socketio_peer(config: RunConfig) -> list[Result]:
    """helpline's throughput, CPU per message and memory per visitor against the socket.io relay."""
    n_agents = config.pick(2, N_AGENTS, N_AGENTS)
    n_visitors = config.pick(4, N_VISITORS, N_VISITORS)
    n_connected = config.pick(20, 1_000, 5_000)
    capacity = math.ceil(max(n_visitors, n_connected) / n_agents) + 1
    peer = "socket.io relay"
    rate = Result(name="socketio-throughput", unit="msg/s", baseline_unit=f"msg/s, {peer}")
    cpu = Result(name="socketio-cpu-per-msg", unit="us/msg", baseline_unit=f"us/msg, {peer}")
    memory = Result(
        name=f"socketio-memory-{n_connected}",
        unit="B/visitor",
        baseline_unit=f"B/visitor, {peer}",
        details={"visitors": n_connected, "agents": n_agents},
    )
    results = [rate, cpu, memory]
    reason = unavailable()
    if reason is not None:
        for r in results:
            r.skipped = reason
        return results
    try:
        outcomes = _throughput(config, n_agents, n_visitors, capacity)
        sizes = _memory(config, n_agents, n_connected, capacity)
    except (Unavailable, RuntimeError) as exc:
        for r in results:
            r.skipped = f"the socket.io comparison could not run: {str(exc).splitlines()[0]}"
        return results
    finally:
        progress.done()
    rate.samples = [o.rate for o in outcomes["helpline"]]
    rate.baseline_samples = [o.rate for o in outcomes["socketio"]]
    cpu.samples = [1e6 * o.server_cpu / max(1, o.delivered) for o in outcomes["helpline"]]
    cpu.baseline_samples = [1e6 * o.server_cpu / max(1, o.delivered) for o in outcomes["socketio"]]
    memory.samples, memory.baseline_samples = sizes["helpline"], sizes["socketio"]
    for name in ("socketio", "helpline"):
        details = summarise(outcomes[name])
        details["saturation"] = saturation(details)
        rate.details[name] = details
    rate.details.update(
        {
            "visitors": n_visitors,
            "agents": n_agents,
            "window": 4,
            "peer": "python-socketio AsyncServer (ASGI) on uvicorn, a room per chat",
            "peer_loop": _peer_loop(),
            "versions": _versions(),
        }
    )
    cpu.details["median_s_per_msg"] = {
        "helpline": median(cpu.samples) / 1e6,
        "socketio": median(cpu.baseline_samples) / 1e6,
    }
    return results


def _peer_loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in ("python-socketio", "python-engineio", "uvicorn", "uvloop", "websockets"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out
