"""What-if replay: the seconds to replay a generated day of 10,000 chats, and the speed-up.

The day comes from `replay.generate_day` (seeded; 200 chats in smoke mode) and is replayed once per
round through the real engine on the virtual clock (`replay.run`), against the desk that
`replay.generated_desk` staffs for the day's peak. Two results: the real seconds a replay took
(target: under 60) and the virtual seconds it covered per real second (target: at least 1000).
There is no raw baseline: the targets are absolute. The details give the CPU seconds of the
process and the machine's load average after the run, which say how much of the wall time other
work on a shared machine took.
"""

from __future__ import annotations

import os
import time

from replay import generate_day, generated_desk, run

from ._common import Result, RunConfig, Target, interleave, progress


def replay_day(config: RunConfig) -> list[Result]:
    """Replay a generated day: its wall seconds and its speed-up over real time."""
    chats = config.pick(200, 10_000, 10_000)
    rounds = config.n_rounds(quick=1, full=3)
    day = generate_day(chats, seed=1)
    desk = generated_desk(day)
    speedups: list[float] = []
    cpu: list[float] = []

    def one() -> float:
        def tick(done: int, total: int) -> None:
            if done % 1000 == 0:
                progress.update(f"replay: {done:,}/{total:,} chats opened")

        started = time.process_time()
        result = run(day, desk, progress=tick)
        cpu.append(time.process_time() - started)
        speedups.append(result.speedup)
        return result.seconds

    try:
        seconds = interleave(rounds, {"helpline": one}, "replay")["helpline"]
    finally:
        progress.done()
    details = {
        "chats": chats,
        "simulated_seconds": day.span,
        "agents": len(desk.agents),
        "cpu_seconds": cpu,
        "load_average": list(os.getloadavg()),
    }
    return [
        Result(
            name="replay-seconds",
            unit="s",
            samples=seconds,
            target=Target(on="figure", op="<", value=60.0),
            details=details,
        ),
        Result(
            name="replay-speedup",
            unit="x real time",
            samples=speedups,
            target=Target(on="figure", op=">=", value=1000.0),
            details=details,
        ),
    ]
