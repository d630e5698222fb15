"""Idle chat memory: bytes of RSS per active, idle chat, against a bare blocked trio task.

Every measurement runs in a fresh Python process (``python -m bench._memory SIDE COUNT``), so
that what one measurement allocated, and Python's allocator kept, cannot pollute the next. The
process starts what it needs, reads its RSS, creates COUNT chats (or tasks), lets everything
settle, reads its RSS again and prints one JSON line: the RSS before and after and the difference
divided by COUNT.

helpline's side opens a real engine over a real SQLite file with 100 agents online, then opens
COUNT chats through the embedding API, each accepted by an agent and then left idle: one session
task per chat, its router records, the visitor's handle and queue. The agents' connections and the
engine itself are there before the first reading and are not counted. The baseline is COUNT trio
tasks, each blocked receiving from its own memory channel.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import threading
from contextlib import AsyncExitStack
from pathlib import Path

import trio
import trio.testing

from ._common import (
    SYNCHRONOUS,
    Result,
    RunConfig,
    Target,
    interleave,
    progress,
    quiet_logs,
    rss_bytes,
    temp_db,
)

N_AGENTS = 100


def _settle_and_read() -> int:
    gc.collect()
    return rss_bytes()


async def _baseline(count: int) -> dict[str, float]:
    async def blocked(recv: trio.MemoryReceiveChannel[int]) -> None:
        await recv.receive()

    before = _settle_and_read()
    channels = []
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            send, recv = trio.open_memory_channel[int](0)
            channels.append(send)
            nursery.start_soon(blocked, recv)
        await trio.testing.wait_all_tasks_blocked()
        after = _settle_and_read()
        nursery.cancel_scope.cancel()
    return {"before": before, "after": after, "per_item": (after - before) / count}


async def _helpline(count: int, db: Path) -> dict[str, float]:
    from engine import Department, EngineConfig, RoutingMode, open_engine

    from ._inproc import accept_all, agents_for, open_active_chats

    capacity = math.ceil(count / N_AGENTS)
    config = EngineConfig(
        departments=(
            Department(
                id="d", name="D", routing=RoutingMode.ASSIGNED, offer_window=600, queue_limit=10
            ),
        ),
        agents=agents_for("a", ("d",), N_AGENTS, capacity),
    )
    async with open_engine(config, db=db, synchronous=SYNCHRONOUS) as engine:
        stack = AsyncExitStack()
        conns = [await stack.enter_async_context(engine.connect_agent(a.id)) for a in config.agents]
        for conn in conns:
            await conn.set_status("online")
        async with trio.open_nursery() as nursery:
            for conn in conns:
                nursery.start_soon(accept_all, conn)
            await trio.testing.wait_all_tasks_blocked()
            before = _settle_and_read()
            chats = await open_active_chats(
                engine,
                stack,
                "d",
                count,
                on_progress=lambda n: print(f"progress {n}", file=sys.stderr, flush=True),
            )
            await trio.testing.wait_all_tasks_blocked()
            after = _settle_and_read()
            assert len(chats) == count
            result = {"before": before, "after": after, "per_item": (after - before) / count}
            # Closing tens of thousands of chats would write as many tickets: the measurement
            # is done, so the process ends here and the temporary database goes with it.
            print(json.dumps(result), flush=True)
            os._exit(0)
    raise AssertionError("unreachable")


def measure(side: str, count: int, timeout: float, label: str) -> dict[str, float]:
    """Run one measurement in a fresh process and return what it printed."""
    with temp_db() as db:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench._memory", side, str(count), str(db)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            with proc:
                assert proc.stderr is not None
                assert proc.stdout is not None
                errors: list[str] = []
                for line in proc.stderr:
                    if line.startswith("progress "):
                        progress.update(f"{label}, {side}: {int(line.split()[1]):,} chats open")
                    else:
                        errors.append(line)
                out = proc.stdout.read()
        finally:
            timer.cancel()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        why = "".join(errors)[-2000:] or f"killed after {timeout:g} s"
        raise RuntimeError(f"memory {side} {count} failed ({proc.returncode}): {why}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def idle_chat_memory(config: RunConfig) -> list[Result]:
    """RSS per idle chat at each size, each side measured in its own fresh process."""
    sizes = {"smoke": [200], "quick": [10_000], "full": [10_000, 100_000]}[config.mode]
    rounds = config.n_rounds(quick=3, full=3)
    results = []
    for count in sizes:
        details: dict[str, list[float]] = {"helpline_rss_after": [], "baseline_rss_after": []}
        timeout = 60 + count / 200

        def side(
            name: str,
            count: int = count,
            timeout: float = timeout,
            details: dict[str, list[float]] = details,
        ) -> float:
            got = measure(name, count, timeout, f"memory {count:,} chats")
            details[f"{name}_rss_after"].append(got["after"])
            return got["per_item"]

        samples = interleave(
            rounds,
            {"baseline": lambda: side("baseline"), "helpline": lambda: side("helpline")},
            f"memory {count:,} chats",
        )
        results.append(
            Result(
                name=f"memory-{count}",
                unit="B/chat",
                samples=samples["helpline"],
                baseline_samples=samples["baseline"],
                baseline_unit="B/task",
                target=Target(on="ratio", op="<=", value=3.0),
                details={"chats": count, "agents": N_AGENTS, **details},
            )
        )
    progress.done()
    return results


def main(argv: list[str]) -> None:
    side, count, db = argv[0], int(argv[1]), Path(argv[2])
    quiet_logs()
    if side == "baseline":
        print(json.dumps(trio.run(_baseline, count)), flush=True)
    elif side == "helpline":
        trio.run(_helpline, count, db)
    else:
        raise SystemExit(f"unknown side {side!r}: baseline or helpline")


if __name__ == "__main__":
    main(sys.argv[1:])
