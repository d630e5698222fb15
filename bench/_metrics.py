"""What collecting metrics costs: the daemon's throughput with metrics on, against metrics off.

Two helpline daemons run side by side, each over its own fresh database prepared as in the other
daemon scenarios (`bench._daemon`): one with the default settings (metrics collected, `/metrics`
served), one with `[metrics] enabled = false` (nothing timed on the message path, the store's
commits not observed, no `/metrics`). The same fleet of clients (100 visitors, 10 agents, 4
messages in flight each) drives each in turn, round after round, in alternating order. The figure
is the throughput with metrics on, the baseline the throughput with them off; the target is a
ratio of at least 0.95 (metrics cost less than 5 % of the throughput). On a machine whose other
work takes the CPU, throughput drifts more than that from round to round, so a second figure,
`metrics-cpu`, is the daemon's CPU microseconds per delivered message with metrics on against off
(target: a ratio of at most 1.05), which other load disturbs less.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ._common import Result, RunConfig, Target, ainterleave, median, progress, temp_db
from ._daemon import (
    DAEMON_CONFIG,
    N_AGENTS,
    N_VISITORS,
    Unavailable,
    _capacity,
    _us_per_msg,
    helpline_argv,
    helpline_unavailable,
    prepare_helpline,
    summarise,
)
from ._wsload import Fleet, HelplineDialect, Outcome, ServerProcess, server_process

#: the settings of the side without metrics: the bench's own, and metrics switched off
METRICS_OFF = DAEMON_CONFIG + "\n[metrics]\nenabled = false\n"


def _daemon(
    stack: contextlib.ExitStack, n_agents: int, capacity: int, metrics: bool
) -> tuple[ServerProcess, list[str]]:
    """Start a prepared daemon on `stack`, with metrics on or off; returns it and its tokens."""
    db = stack.enter_context(temp_db())
    argv, tokens = prepare_helpline(db, n_agents, capacity)
    if not metrics:
        config = db.with_name("bench-no-metrics.toml")
        config.write_text(METRICS_OFF)
        argv = helpline_argv(db, Path(config))
    return stack.enter_context(server_process(argv)), tokens


def metrics_cost(config: RunConfig) -> list[Result]:
    """Daemon throughput with metrics collected, against the same daemon with them off."""
    n_agents = config.pick(2, N_AGENTS, N_AGENTS)
    n_visitors = config.pick(4, N_VISITORS, N_VISITORS)
    total = config.pick(200, 10_000, 50_000)
    rounds = config.n_rounds()
    result = Result(
        name="metrics-cost",
        unit="msg/s, metrics on",
        baseline_unit="msg/s, metrics off",
        target=Target(on="ratio", op=">=", value=0.95),
        details={
            "what": "daemon throughput with metrics collected against [metrics] enabled = false",
            "visitors": n_visitors,
            "agents": n_agents,
            "messages_per_round": total,
        },
    )
    cpu = Result(
        name="metrics-cpu",
        unit="us/msg, metrics on",
        baseline_unit="us/msg, metrics off",
        target=Target(on="ratio", op="<=", value=1.05),
        details={"what": "the daemon's CPU seconds per delivered message, metrics on and off"},
    )
    result.skipped = cpu.skipped = helpline_unavailable()
    if result.skipped is not None:
        return [result, cpu]
    outcomes: dict[str, list[Outcome]] = {"on": [], "off": []}
    capacity = _capacity(n_visitors, n_agents)

    async def main(servers: dict[str, tuple[ServerProcess, list[str]]]) -> None:
        async with trio.open_nursery() as nursery:
            fleets: dict[str, Fleet] = {}
            for name, (server, tokens) in servers.items():
                progress.update(f"metrics-cost: connecting to the daemon with metrics {name}")
                fleet = Fleet(HelplineDialect(tokens, "bench"), server, n_agents, n_visitors)
                await fleet.open(nursery)
                fleets[name] = fleet
            try:
                for name, fleet in fleets.items():
                    progress.update(f"metrics-cost: warming up metrics {name}")
                    await fleet.run_max(max(n_visitors, total // 10))

                def measure(name: str) -> Callable[[], Awaitable[float]]:
                    async def one() -> float:
                        out = await fleets[name].run_max(total)
                        outcomes[name].append(out)
                        return out.rate

                    return one

                samples = await ainterleave(rounds, {n: measure(n) for n in fleets}, "metrics-cost")
                result.samples, result.baseline_samples = samples["on"], samples["off"]
            finally:
                for fleet in fleets.values():
                    await fleet.aclose()
            nursery.cancel_scope.cancel()

    try:
        with contextlib.ExitStack() as stack:
            servers = {
                "on": _daemon(stack, n_agents, capacity, True),
                "off": _daemon(stack, n_agents, capacity, False),
            }
            trio.run(main, servers)
    except (Unavailable, RuntimeError) as exc:
        result.skipped = cpu.skipped = f"metrics-cost: {str(exc).splitlines()[0]}"
    progress.done()
    cpu.samples = [_us_per_msg(o) for o in outcomes["on"]]
    cpu.baseline_samples = [_us_per_msg(o) for o in outcomes["off"]]
    for name in ("on", "off"):
        if outcomes[name]:
            details = summarise(outcomes[name])
            details["us_per_msg"] = median([_us_per_msg(o) for o in outcomes[name]])
            result.details[f"metrics_{name}"] = details
    return [result, cpu]
