"""The command line: choose scenarios and sizes, run them, print the table, write the JSON."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import (
    _clusterbench,
    _crash,
    _daemon,
    _durability,
    _inproc,
    _memory,
    _metrics,
    _replay,
    _socketio,
    _suggest,
)
from ._common import (
    RESULTS_DIR,
    SYNCHRONOUS,
    Mode,
    Result,
    RunConfig,
    progress,
    quiet_logs,
    table,
    write_results,
)

Scenario = Callable[[RunConfig], list[Result]]

#: name -> (what it measures, how to run it); `python -m bench` runs them in this order.
SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "throughput": (
        "visitor messages delivered to agents per second, in-process, 100 chats",
        _inproc.message_throughput,
    ),
    "setup": (
        "chats set up per second (request, offer, accept, active), broadcast and assigned",
        _inproc.chat_setup,
    ),
    "memory": (
        "bytes of RSS per active, idle chat (1e4 chats; 1e4 and 1e5 with --full)",
        _memory.idle_chat_memory,
    ),
    "canned": ("p99 of a # lookup among 10,000 canned messages", _suggest.canned_suggestions),
    "daemon-throughput": (
        "visitor -> agent messages per second over WebSocket, 100 visitors, 10 agents",
        _daemon.daemon_throughput,
    ),
    "daemon-latency": (
        "p50 and p99 visitor -> agent delay at half the measured maximum rate",
        _daemon.daemon_latency,
    ),
    "connections": (
        "server RSS per connected visitor with an open chat (5,000 with --full)",
        _daemon.connections,
    ),
    "metrics-cost": (
        "daemon throughput with metrics collected against [metrics] enabled = false",
        _metrics.metrics_cost,
    ),
    "socketio": (
        "helpline's daemon against a python-socketio room relay on uvicorn: throughput, CPU per "
        "message, memory per visitor (needs the bench extra)",
        _socketio.socketio_peer,
    ),
    "soak": (
        "a fixed rate for a set time: sent = delivered = stored in tickets",
        _daemon.soak,
    ),
    "journal": (
        "in-process message throughput with the journal on, against the journal off",
        _durability.journal_cost,
    ),
    "recovery": (
        "seconds from start to ready with 1,000 live chats to restore (10,000 with --full)",
        _durability.recovery_time,
    ),
    "crash": (
        "a daemon killed with SIGKILL 20 times under load (60 with --full): losses, restart time",
        _crash.crash_bench,
    ),
    "cluster": (
        "several nodes on PostgreSQL (HELPLINE_BENCH_POSTGRES): throughput through 1, 2 and 3 "
        "nodes, cross-node latency, failover time over 10 kills of the lease holder, and 2,000 "
        "accepts raced across 3 nodes (--races)",
        _clusterbench.cluster_bench,
    ),
    "replay": (
        "seconds to replay a generated day of 10,000 chats on the virtual clock, and the speed-up",
        _replay.replay_day,
    ),
}


def parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<18} {what}" for name, (what, _) in SCENARIOS.items())
    p = argparse.ArgumentParser(
        prog="python -m bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Measure helpline against raw baselines run in the same process layout, round by\n"
            "round, and print the medians, their min-max spread and the ratios. Without\n"
            "arguments every scenario runs in quick mode (a few minutes in all)."
        ),
        epilog=(
            f"scenarios:\n{listing}\n\n"
            "Results are written as JSON (one object per result) to DIR/bench-<time>-<mode>.json;\n"
            "a progress line goes to stderr. See bench/README.md for what each scenario does."
        ),
    )
    p.add_argument(
        "scenarios",
        nargs="*",
        metavar="scenario",
        help="scenarios to run, by name (default: all, in the order listed below)",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--full",
        action="store_true",
        help="run at full size (longer runs, more rounds; 1e5 chats for memory, 5,000 connections)",
    )
    size.add_argument(
        "--smoke",
        action="store_true",
        help="run at a tiny size, one round: proves the scripts work; the figures mean nothing",
    )
    p.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="rounds per scenario, each measuring the baseline and helpline once, in "
        "alternating order (default: 3 quick, 5 full, 1 smoke)",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="also raise the offered rate step by step over WebSocket and draw throughput and "
        "p99 latency against offered load as a PNG next to the JSON (needs matplotlib; "
        "without it the chart is skipped and the figures are still written)",
    )
    p.add_argument(
        "--races",
        type=int,
        metavar="N",
        help="accepts the cluster scenario races across three nodes (default: 2,000; 30 with "
        "--smoke)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        metavar="DIR",
        help="directory for the JSON results and the chart (default: bench/results)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress line on stderr (the table still prints)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser().error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if args.rounds is not None and args.rounds < 1:
        parser().error("--rounds must be at least 1")
    if args.races is not None and args.races < 1:
        parser().error("--races must be at least 1")
    mode: Mode = "full" if args.full else "smoke" if args.smoke else "quick"
    config = RunConfig(
        mode=mode, rounds=args.rounds, sweep=args.sweep, out=args.out, races=args.races
    )
    names = args.scenarios or list(SCENARIOS)
    progress.enabled = not args.quiet
    quiet_logs()
    print(
        f"helpline bench: {mode} mode, {', '.join(names)}\n"
        f"in-process engines: SQLite synchronous={SYNCHRONOUS}, logs at warning level; daemon: "
        "its own settings (synchronous=FULL), --log-level warning, request rate limit lifted",
        flush=True,
    )
    results: list[Result] = []
    started = time.monotonic()
    for name in names:
        progress.update(f"{name}: starting")
        results.extend(SCENARIOS[name][1](config))
        progress.done()
    if config.sweep:
        results.extend(_daemon.sweep(config))
        progress.done()
    path = write_and_print(results, config)
    print(f"\n{len(results)} results in {time.monotonic() - started:.0f} s, written to {path}")
    for note in _daemon.notes(results):
        print(note)
    return 0


def write_and_print(results: list[Result], config: RunConfig) -> Path:
    print()
    print(table(results))
    return write_results(results, config)


if __name__ == "__main__":
    sys.exit(main())
