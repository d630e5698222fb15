"""The raw baseline of the daemon scenarios: a bare trio-websocket server that relays messages.

``python -m bench._relay [--port N]`` listens on 127.0.0.1 (port 0 picks a free one), prints
``relay listening on ws://127.0.0.1:PORT`` and serves until it is interrupted. A client that
connects to ``/agent/K`` is agent K; a client that connects to ``/visitor/K`` is a visitor whose
every message is sent on, unchanged, to agent K. Nothing else happens: no decoding, no state, no
storage, so whatever helpline costs beyond this is the price of what it does with a message.
"""

from __future__ import annotations

import argparse
import signal
import sys

import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest


class Relay:
    """Agents by index, and the loop that forwards each visitor message to its agent."""

    def __init__(self) -> None:
        self.agents: dict[str, WebSocketConnection] = {}

    async def handle(self, request: WebSocketRequest) -> None:
        parts = request.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in ("agent", "visitor"):
            await request.reject(404)
            return
        role, key = parts
        ws = await request.accept()
        try:
            if role == "agent":
                self.agents[key] = ws
                while True:
                    await ws.get_message()  # agents only listen; keep the connection serviced
            else:
                while True:
                    message = await ws.get_message()
                    agent = self.agents.get(key)
                    if agent is not None:
                        await agent.send_message(message)
        except ConnectionClosed:
            pass
        finally:
            if role == "agent" and self.agents.get(key) is ws:
                del self.agents[key]


async def serve(port: int) -> None:
    relay = Relay()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            trio_websocket.serve_websocket, relay.handle, "127.0.0.1", port, None
        )
        print(f"relay listening on ws://127.0.0.1:{server.port}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._relay", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    args = p.parse_args(argv)
    trio.run(serve, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
