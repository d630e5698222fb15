"""Daemon scenarios: throughput, latency, connections and soak over WebSocket, and the sweep.

Each scenario runs the server under test in its own process and the load generator of
`bench._wsload` in this one, on 127.0.0.1 only. The raw baseline is the bare trio-websocket relay
of `bench._relay`, driven by the same clients sending the same frames in the same process layout.
helpline's side is the real daemon, ``helpline serve --port 0 --db PATH --config FILE``, over a
database prepared with the ``helpline`` command (one department with assigned routing, the agents,
and a sign-in token per agent). The daemon keeps its own settings (SQLite synchronous=FULL, outbound
queues of 256 frames) except that its per-connection request rate limit is lifted and its log
level is warning. When the daemon cannot run, helpline's side is skipped with the reason ("daemon
scenarios need helpline serve") and the baseline still runs, so the harness keeps working.

Throughput
    100 visitors and 10 agents; each visitor keeps 4 messages in flight (a message leaves the
    window when its agent got it). The figure is messages delivered per second; the details say
    how many CPU seconds per message the server and the generator spent and how busy each was,
    which tells which process saturated.
Latency
    Each server is offered half of its own measured maximum rate, open-loop, and the delay of every
    message from when it was due until its agent read it gives p50 and p99.
Connections
    A fresh server per measurement; its RSS is read before and after N visitors connect (each with
    a chat accepted by an agent, for helpline; idle, for the relay): the figure is the difference
    per visitor.
Soak
    helpline only: a fixed rate for a set time, then every visitor leaves, the server stops, and the
    tickets in its database are counted: sent = delivered = stored, nothing lost, nothing twice.
Sweep (``--sweep``)
    The offered rate rises step by step from a fifth of each server's maximum to beyond it;
    delivered rate and p99 delay against offered load are drawn as a PNG when matplotlib is there.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import io
import json
import math
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import trio

from ._common import (
    Result,
    RunConfig,
    Target,
    ainterleave,
    interleave,
    median,
    progress,
    temp_db,
)
from ._wsload import (
    Dialect,
    Fleet,
    HelplineDialect,
    Outcome,
    RelayDialect,
    ServerProcess,
    relay_argv,
    server_process,
)

NEEDS_SERVE = "daemon scenarios need helpline serve"
N_AGENTS = 10
N_VISITORS = 100

#: Maximum rates measured by the throughput scenario, reused by latency and the sweep.
_max_rates: dict[str, float] = {}


class Unavailable(Exception):
    """helpline's daemon cannot be run here (yet); the message says why."""


# --- the helpline daemon ------------------------------------------------------------------------


def helpline_unavailable() -> str | None:
    """Why helpline's side of the daemon scenarios cannot run, or None when it can."""
    try:
        found = importlib.util.find_spec("protocol.cli") is not None
    except ImportError:
        found = False
    return None if found else f"{NEEDS_SERVE} (protocol/cli/ is not there)"


#: The daemon's settings for the bench: the per-connection request rate limit is lifted, since
#: the bench measures the engine and the gateway, not the limiter; everything else is default.
DAEMON_CONFIG = "[server]\nrate = 1000000.0\nburst = 1000000\nlimit_loopback = false\n"


def prepare_helpline(db: Path, n_agents: int, capacity: int) -> tuple[list[str], list[str]]:
    """Store the bench's department and agents and issue their tokens with the ``helpline``
    command (before the daemon starts); returns the daemon's command line and the tokens."""
    from protocol.cli import main as helpline

    trio.run(_create_db, db)  # only `helpline serve` creates a database; the other commands refuse

    def command(*args: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            status = helpline([*args, "--db", str(db)])
        if status != 0:
            what = " ".join(args)
            raise Unavailable(f"{NEEDS_SERVE}: `helpline {what}` failed: {out.getvalue()}")
        return out.getvalue()

    command(
        "department",
        "add",
        "bench",
        "--name",
        "Bench",
        "--routing",
        "assigned",
        "--offer-window",
        "600",
        "--queue-limit",
        "1000",
    )
    for i in range(n_agents):
        command(
            "agent",
            "add",
            f"a{i}",
            "--name",
            f"Agent {i}",
            "--department",
            "bench",
            "--capacity",
            str(capacity),
        )
    tokens = [command("token", f"a{i}").split()[-1] for i in range(n_agents)]
    config = db.with_name("bench.toml")
    config.write_text(DAEMON_CONFIG)
    return helpline_argv(db, config), tokens


async def _create_db(db: Path) -> None:
    """Create the database file with the engine's schema, as the daemon's first start would."""
    from engine import open_store

    async with open_store(db):
        pass


def helpline_argv(db: Path, config: Path) -> list[str]:
    script = Path(sys.executable).with_name("helpline")
    launcher = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import sys; from protocol.cli import main; sys.exit(main())"]
    )
    return [
        *launcher,
        "serve",
        "--port",
        "0",
        "--db",
        str(db),
        "--config",
        str(config),
        "--log-level",
        "warning",
    ]


@dataclass(slots=True)
class Side:
    """One server under test with its fleet of clients."""

    name: str
    server: ServerProcess
    fleet: Fleet


@dataclass(slots=True)
class Servers:
    """The relay and, when it can run, helpline's daemon with its agents' tokens."""

    relay: ServerProcess
    helpline: ServerProcess | None
    tokens: list[str]
    reason: str | None


@contextlib.contextmanager
def servers(n_agents: int, capacity: int) -> Iterator[Servers]:
    """Start the relay and, if possible, helpline's daemon (outside trio: the setup runs trio)."""
    reason = helpline_unavailable()
    with contextlib.ExitStack() as stack:
        relay = stack.enter_context(server_process(relay_argv()))
        helpline: ServerProcess | None = None
        tokens: list[str] = []
        if reason is None:
            db = stack.enter_context(temp_db())
            try:
                argv, tokens = prepare_helpline(db, n_agents, capacity)
                helpline = stack.enter_context(server_process(argv))
            except Unavailable as exc:
                reason = str(exc)
            except RuntimeError as exc:
                reason = f"{NEEDS_SERVE}: it did not start ({str(exc).splitlines()[0]})"
        yield Servers(relay, helpline, tokens, reason)


@asynccontextmanager
async def fleets(
    nursery: trio.Nursery, servers: Servers, n_agents: int, n_visitors: int
) -> AsyncIterator[dict[str, Side]]:
    """Connect a fleet to each server that runs."""
    sides: dict[str, Side] = {}
    progress.update(f"connecting {n_agents} agents and {n_visitors} visitors to the relay")
    fleet = Fleet(RelayDialect(), servers.relay, n_agents, n_visitors)
    await fleet.open(nursery)
    sides["baseline"] = Side("relay", servers.relay, fleet)
    if servers.helpline is not None:
        progress.update(f"connecting {n_agents} agents and {n_visitors} visitors to helpline")
        dialect = HelplineDialect(servers.tokens, "bench")
        fleet = Fleet(dialect, servers.helpline, n_agents, n_visitors)
        await fleet.open(nursery)
        sides["helpline"] = Side("helpline", servers.helpline, fleet)
    try:
        yield sides
    finally:
        for side in sides.values():
            await side.fleet.aclose()


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """Medians of the per-phase summaries (numbers only), with the rounds' errors."""
    summaries = [o.summary() for o in outcomes]
    out: dict[str, Any] = {}
    for key in summaries[0] if summaries else ():
        values = [s[key] for s in summaries if isinstance(s[key], int | float)]
        if values:
            out[key] = median(values)
    errors = [e for o in outcomes for e in o.errors]
    if errors:
        out["errors"] = errors[:5]
    return out


def saturation(details: dict[str, Any]) -> str:
    """Which process ran out of CPU first, from the medians of a side's phases."""
    server = details.get("server_cpu_busy")
    generator = details.get("generator_cpu_busy")
    if server is None or generator is None:
        return "unknown"
    shares = f"server {server:.0%} of a core, generator {generator:.0%}"
    if max(server, generator) >= 0.85:
        busiest = "server" if server >= generator else "generator"
        return f"{busiest} saturated ({shares})"
    load = details.get("loadavg")
    cores = os.cpu_count() or 1
    if load is not None and load >= cores:
        return (
            f"neither process saturated a core ({shares}): other work on the machine took the "
            f"CPU (load average {load:.1f} on {cores} cores)"
        )
    return f"neither process saturated a core ({shares})"


# --- throughput -----------------------------------------------------------------------------------


def _capacity(n_visitors: int, n_agents: int) -> int:
    return math.ceil(n_visitors / n_agents) + 1


def daemon_throughput(config: RunConfig) -> list[Result]:
    """Visitor to agent messages per second over WebSocket, against the bare relay."""
    n_agents = config.pick(2, N_AGENTS, N_AGENTS)
    n_visitors = config.pick(4, N_VISITORS, N_VISITORS)
    total = config.pick(200, 10_000, 50_000)
    rounds = config.n_rounds()
    outcomes: dict[str, list[Outcome]] = {"baseline": [], "helpline": []}
    result = Result(
        name="daemon-throughput",
        unit="msg/s",
        target=Target(on="ratio", op=">=", value=0.5),
    )
    cpu = Result(
        name="daemon-cpu-per-msg",
        unit="us/msg",
        baseline_unit="us/msg, relay",
        target=Target(on="figure", op="<=", value=120),
        details={"what": "server CPU seconds (user + system) per delivered message, journal on"},
    )

    async def main(running: Servers) -> None:
        async with trio.open_nursery() as nursery:
            async with fleets(nursery, running, n_agents, n_visitors) as sides:
                for side in sides.values():  # warm up connections and caches
                    progress.update(f"daemon-throughput: warming up {side.name}")
                    await side.fleet.run_max(max(n_visitors, total // 10))

                def measure(name: str) -> Callable[[], Awaitable[float]]:
                    async def one() -> float:
                        out = await sides[name].fleet.run_max(total)
                        outcomes[name].append(out)
                        return out.rate

                    return one

                samples = await ainterleave(
                    rounds, {name: measure(name) for name in sides}, "daemon-throughput"
                )
                result.baseline_samples = samples["baseline"]
                result.samples = samples.get("helpline", [])
            nursery.cancel_scope.cancel()

    with servers(n_agents, _capacity(n_visitors, n_agents)) as running:
        result.skipped = cpu.skipped = running.reason
        trio.run(main, running)
    progress.done()
    cpu.baseline_samples = [_us_per_msg(o) for o in outcomes["baseline"]]
    cpu.samples = [_us_per_msg(o) for o in outcomes["helpline"]]
    for name, system in (("baseline", "relay"), ("helpline", "helpline")):
        if outcomes[name]:
            details = summarise(outcomes[name])
            details["saturation"] = saturation(details)
            result.details[system] = details
            _max_rates[system] = median([o.rate for o in outcomes[name]])
    result.details.update(
        {"visitors": n_visitors, "agents": n_agents, "messages_per_round": total, "window": 4}
    )
    return [result, cpu]


def _us_per_msg(outcome: Outcome) -> float:
    """The server's CPU microseconds per delivered message in one phase."""
    return 1e6 * outcome.server_cpu / max(1, outcome.delivered)


async def _max_rate(side: Side, total: int) -> float:
    if side.name not in _max_rates:
        progress.update(f"measuring {side.name}'s maximum rate")
        await side.fleet.run_max(total)  # warm-up
        _max_rates[side.name] = (await side.fleet.run_max(total)).rate
    return _max_rates[side.name]


# --- latency --------------------------------------------------------------------------------------


def daemon_latency(config: RunConfig) -> list[Result]:
    """p50 and p99 delay at half of each server's own maximum rate."""
    n_agents = config.pick(2, N_AGENTS, N_AGENTS)
    n_visitors = config.pick(4, N_VISITORS, N_VISITORS)
    duration = config.pick_float(0.5, 3.0, 15.0)
    probe = config.pick(200, 10_000, 20_000)
    rounds = config.n_rounds()
    p99 = Result(name="daemon-latency-p99", unit="ms", target=Target(on="ratio", op="<=", value=2))
    p50 = Result(name="daemon-latency-p50", unit="ms")
    outcomes: dict[str, list[Outcome]] = {"baseline": [], "helpline": []}
    rates: dict[str, float] = {}

    async def main(running: Servers) -> None:
        async with trio.open_nursery() as nursery:
            async with fleets(nursery, running, n_agents, n_visitors) as sides:
                for name, side in sides.items():
                    rates[name] = await _max_rate(side, probe) / 2

                def measure(name: str) -> Callable[[], Awaitable[float]]:
                    async def one() -> float:
                        out = await sides[name].fleet.run_rate(rates[name], duration)
                        outcomes[name].append(out)
                        return out.p(99)

                    return one

                await ainterleave(rounds, {name: measure(name) for name in sides}, "daemon-latency")
            nursery.cancel_scope.cancel()

    with servers(n_agents, _capacity(n_visitors, n_agents)) as running:
        p99.skipped = p50.skipped = running.reason
        trio.run(main, running)
    progress.done()
    p99.baseline_samples = [o.p(99) for o in outcomes["baseline"]]
    p99.samples = [o.p(99) for o in outcomes["helpline"]]
    p50.baseline_samples = [o.p(50) for o in outcomes["baseline"]]
    p50.samples = [o.p(50) for o in outcomes["helpline"]]
    for name, system in (("baseline", "relay"), ("helpline", "helpline")):
        if outcomes[name]:
            details = summarise(outcomes[name])
            details["saturation"] = saturation(details)
            p99.details[system] = details
    common = {"visitors": n_visitors, "agents": n_agents, "seconds_per_round": duration}
    p99.details.update(common, offered_per_s={k: round(v) for k, v in rates.items()})
    p50.details.update(common)
    return [p99, p50]


# --- connections ----------------------------------------------------------------------------------


def connections(config: RunConfig) -> list[Result]:
    """Server RSS per connected visitor (with an open chat for helpline), fresh server each time."""
    n_visitors = config.pick(20, 1_000, 5_000)
    n_agents = config.pick(2, N_AGENTS, N_AGENTS)
    rounds = config.n_rounds(quick=1, full=3)
    result = Result(
        name=f"connections-{n_visitors}",
        unit="B/visitor",
        baseline_unit="B/connection",
        target=Target(on="ratio", op="<=", value=2.0),
        details={"visitors": n_visitors, "agents": n_agents},
    )
    result.skipped = helpline_unavailable()

    async def load(server: ServerProcess, dialect: Dialect, name: str) -> tuple[int, int]:
        async with trio.open_nursery() as nursery:
            fleet = Fleet(dialect, server, n_agents, n_visitors)
            await fleet.open_agents(nursery)
            await trio.sleep(0.5)
            before = server.rss()
            progress.update(f"connections: {n_visitors:,} visitors to {name}")
            await fleet.open_visitors(nursery)
            await trio.sleep(0.5)
            after = server.rss()
            await fleet.aclose()
            nursery.cancel_scope.cancel()
        return before, after

    def once(name: str) -> float:
        with temp_db() as db:
            if name == "baseline":
                argv, dialect = relay_argv(), cast(Dialect, RelayDialect())
            else:
                argv, tokens = prepare_helpline(db, n_agents, _capacity(n_visitors, n_agents))
                dialect = HelplineDialect(tokens, "bench")
            with server_process(argv) as server:
                before, after = trio.run(load, server, dialect, name)
        result.details.setdefault(f"{name}_rss_before", []).append(before)
        result.details.setdefault(f"{name}_rss_after", []).append(after)
        return (after - before) / n_visitors

    sides: dict[str, Callable[[], float]] = {"baseline": lambda: once("baseline")}
    if result.skipped is None:
        sides["helpline"] = lambda: once("helpline")
    try:
        samples = interleave(rounds, sides, "connections")
    except Unavailable as exc:
        result.skipped = str(exc)
        samples = interleave(rounds, {"baseline": sides["baseline"]}, "connections")
    result.baseline_samples = samples["baseline"]
    result.samples = samples.get("helpline", [])
    progress.done()
    return [result]


# --- soak -----------------------------------------------------------------------------------------


def count_stored(db: Path) -> tuple[int, int]:
    """(distinct, duplicated) visitor messages in the tickets of a stopped server's database."""
    seen: set[str] = set()
    duplicated = 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        for (entries,) in conn.execute("SELECT entries FROM tickets"):
            for entry in json.loads(entries):
                msg_id = entry.get("client_msg_id", "")
                if entry.get("kind") != "message" or entry.get("author") != "visitor":
                    continue
                if msg_id in seen:
                    duplicated += 1
                seen.add(msg_id)
    return len(seen), duplicated


def soak(config: RunConfig) -> list[Result]:
    """A fixed rate for a set time; then sent, delivered and stored must all be equal."""
    n_agents = config.pick(2, N_AGENTS, N_AGENTS)
    n_visitors = config.pick(4, N_VISITORS, N_VISITORS)
    rate = config.pick_float(50, 500, 500)
    duration = config.pick_float(1, 10, 300)
    result = Result(
        name="soak",
        unit="lost+dup",
        target=Target(on="figure", op="==", value=0),
        details={"visitors": n_visitors, "agents": n_agents, "rate": rate, "seconds": duration},
    )
    result.skipped = helpline_unavailable()
    if result.skipped is not None:
        return [result]

    async def load(server: ServerProcess, tokens: list[str]) -> tuple[Outcome, int, int]:
        async with trio.open_nursery() as nursery:
            dialect = HelplineDialect(tokens, "bench")
            fleet = Fleet(dialect, server, n_agents, n_visitors)
            await fleet.open(nursery)
            progress.update(f"soak: {rate:g} msg/s for {duration:g} s")
            out = await fleet.run_rate(rate, duration, drain=30)
            progress.update("soak: the agents end every chat; each becomes a ticket")
            fleet.watch_ended = True
            orphaned = await dialect.end_chats()
            ended = await fleet.wait_ended()
            await fleet.aclose()
            nursery.cancel_scope.cancel()
        return out, ended, orphaned

    try:
        with temp_db() as db:
            argv, tokens = prepare_helpline(db, n_agents, _capacity(n_visitors, n_agents))
            with server_process(argv) as server:
                out, ended, orphaned = trio.run(load, server, tokens)
            stored, stored_twice = count_stored(db)
    except Unavailable as exc:
        result.skipped = str(exc)
        return [result]
    finally:
        progress.done()
    lost = out.sent - min(out.delivered, stored)
    result.samples = [float(lost + out.duplicates + stored_twice)]
    result.details.update(
        sent=out.sent,
        delivered=out.delivered,
        stored=stored,
        lost=lost,
        duplicated=out.duplicates + stored_twice,
        chats_ended=ended,
        chats_not_ended=orphaned,
        errors=out.errors[:5],
        **{k: v for k, v in out.summary().items() if k.endswith(("_ms", "busy"))},
    )
    return [result]


# --- sweep ----------------------------------------------------------------------------------------

FRACTIONS = (0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25)


def sweep(config: RunConfig) -> list[Result]:
    """Delivered rate and p99 delay against offered load, for each server; a PNG if possible."""
    n_agents = config.pick(2, N_AGENTS, N_AGENTS)
    n_visitors = config.pick(4, N_VISITORS, N_VISITORS)
    duration = config.pick_float(0.3, 2.0, 5.0)
    probe = config.pick(200, 10_000, 20_000)
    points: dict[str, list[dict[str, Any]]] = {}

    async def main(running: Servers) -> None:
        async with trio.open_nursery() as nursery:
            async with fleets(nursery, running, n_agents, n_visitors) as sides:
                for side in sides.values():
                    top = await _max_rate(side, probe)
                    points[side.name] = []
                    for fraction in FRACTIONS:
                        progress.update(f"sweep {side.name}: {fraction:.0%} of its maximum")
                        out = await side.fleet.run_rate(top * fraction, duration, drain=5)
                        points[side.name].append(out.summary())
                        if out.errors:
                            break  # the server dropped connections: stop raising the load
            nursery.cancel_scope.cancel()

    with servers(n_agents, _capacity(n_visitors, n_agents)) as running:
        skipped = running.reason
        trio.run(main, running)
    progress.done()
    chart = draw(points, config.out)
    results = []
    for system in ("relay", "helpline"):
        pts = points.get(system, [])
        results.append(
            Result(
                name=f"sweep-{system}",
                unit="msg/s max",
                samples=[max(p["delivered_per_s"] for p in pts)] if pts else [],
                details={"points": pts, "chart": chart, "seconds_per_step": duration},
                skipped=None if pts else skipped,
            )
        )
    return results


def draw(points: dict[str, list[dict[str, Any]]], out: Path) -> str | None:
    """Throughput and p99 delay against offered load as a PNG; None without matplotlib."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("matplotlib is not installed: no sweep chart (pip install matplotlib)", flush=True)
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for system, pts in points.items():
        offered = [p["offered_per_s"] for p in pts]
        top.plot(offered, [p["delivered_per_s"] for p in pts], marker="o", label=system)
        bottom.plot(offered, [p["p99_ms"] for p in pts], marker="o", label=system)
    top.set_ylabel("delivered (msg/s)")
    top.set_title("helpline vs a bare trio-websocket relay, loopback")
    top.legend()
    top.grid(alpha=0.3)
    bottom.set_ylabel("p99 delay (ms)")
    bottom.set_xlabel("offered load (msg/s)")
    bottom.set_yscale("log")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"sweep-{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%S}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def notes(results: list[Result]) -> list[str]:
    """Lines to print after the table: which process saturated in the daemon scenarios and in the
    socket.io comparison, and the server's CPU per message."""
    lines = []
    for r in results:
        if r.name not in ("daemon-throughput", "socketio-throughput"):
            continue
        for system in ("relay", "socketio", "helpline"):
            details = r.details.get(system)
            if isinstance(details, dict):
                per_msg = details.get("server_cpu_s_per_msg")
                lines.append(
                    f"{r.name}, {system}: {details.get('saturation')}; server "
                    f"{(per_msg or 0) * 1e6:.0f} us CPU per message"
                )
    return lines
