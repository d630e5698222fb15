"""The peer a user would pick instead: a python-socketio room relay on uvicorn (and uvloop).

``python -m bench._sioserver [--port N]`` listens on 127.0.0.1 (port 0 picks a free one), prints
``socket.io relay listening on ws://127.0.0.1:PORT`` and serves until it is interrupted. It is the
chat relay the python-socketio documentation leads to: an ``AsyncServer`` in ASGI mode under
uvicorn with its defaults (uvloop as the event loop when it is installed), one room per chat.

- An agent connects with the auth ``{"role": "agent", "key": K}``.
- A visitor connects with ``{"role": "visitor", "chat": C, "agent": K}``; the server puts it and
  agent K in the room ``chat:C``.
- A visitor's ``send`` event (one binary attachment: the msgpack frame) is emitted unchanged as a
  ``message`` event to the chat's room, skipping the sender, so it reaches the agent.

No decoding of the frame, no state beyond the rooms, no storage: like the trio-websocket relay,
it prices what a socket.io stack costs for the same delivery. It needs the ``bench`` extra
(``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
from typing import Any

import socketio  # type: ignore[import-not-found, unused-ignore]
import uvicorn  # type: ignore[import-not-found, unused-ignore]


def make_app() -> Any:
    """The ASGI app: a socket.io server whose chat rooms relay visitors' frames to agents."""
    sio = socketio.AsyncServer(async_mode="asgi")
    agents: dict[str, str] = {}  # agent key -> sid
    rooms: dict[str, str] = {}  # visitor sid -> its chat's room

    @sio.event  # type: ignore[untyped-decorator, unused-ignore]
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> bool:
        auth = auth or {}
        if auth.get("role") == "agent":
            agents[str(auth.get("key"))] = sid
            return True
        if auth.get("role") == "visitor":
            room = f"chat:{auth.get('chat')}"
            rooms[sid] = room
            await sio.enter_room(sid, room)
            agent = agents.get(str(auth.get("agent")))
            if agent is not None:
                await sio.enter_room(agent, room)
            return True
        return False

    @sio.event  # type: ignore[untyped-decorator, unused-ignore]
    async def disconnect(sid: str, *_: Any) -> None:
        rooms.pop(sid, None)
        for key, agent in list(agents.items()):
            if agent == sid:
                del agents[key]

    @sio.on("send")  # type: ignore[untyped-decorator, unused-ignore]
    async def send(sid: str, data: bytes) -> None:
        room = rooms.get(sid)
        if room is not None:
            await sio.emit("message", data, room=room, skip_sid=sid)

    return socketio.ASGIApp(sio)


def loop_name() -> str:
    """uvloop when it is installed (uvicorn's choice too), else asyncio's own loop."""
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._sioserver", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    args = p.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    config = uvicorn.Config(
        make_app(),
        loop=loop_name(),
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    port = sock.getsockname()[1]
    print(f"socket.io relay ({loop_name()}) listening on ws://127.0.0.1:{port}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
