"""What every scenario shares: run sizes, interleaved rounds, statistics, results, output.

Theory of operation:

- A scenario is a function ``run(config) -> list[Result]``. ``config.pick(smoke, quick, full)``
  chooses its sizes: *quick* is what ``python -m bench`` runs (every scenario, a few minutes in
  all), *full* is ``--full``, and *smoke* (``--smoke``) is a tiny size whose figures mean nothing
  and which only proves that the scripts still run (the tests use it).
- Measurements come in rounds. Each round measures the raw baseline and helpline once, one right
  after the other, and the order alternates from round to round, so slow drift of a shared machine
  falls on both sides alike. A result keeps every sample; it reports the medians, the min-max
  spread of each side and the ratio of the medians.
- A result names its target: a comparison (``>=``, ``<=``, ``<``, ``==``) of either the ratio or
  the figure itself with a number. No target is ever enforced by a test: benchmarks are not tests.
- Results are written as JSON, one object per scenario result, in one file per run under
  bench/results/ (or ``--out``), with the versions of everything that was measured and the CPU
  count. A progress line on stderr says what is running.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import platform
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TextIO

import structlog

Mode = Literal["smoke", "quick", "full"]
Op = Literal[">=", "<=", "<", "=="]

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: SQLite's synchronous pragma for every engine the bench opens. NORMAL in WAL mode keeps every
#: committed write across a crash of the process and may lose the last ones on a power cut.
SYNCHRONOUS = "NORMAL"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """How big and how long: the mode, an optional number of rounds, the sweep and the output."""

    mode: Mode = "quick"
    rounds: int | None = None
    sweep: bool = False
    out: Path = RESULTS_DIR
    races: int | None = None  # accepts raced across nodes (``--races``); None: the mode's size

    def pick(self, smoke: int, quick: int, full: int) -> int:
        """The size for this run's mode."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.mode]

    def pick_float(self, smoke: float, quick: float, full: float) -> float:
        return {"smoke": smoke, "quick": quick, "full": full}[self.mode]

    def n_rounds(self, quick: int = 3, full: int = 5) -> int:
        """Rounds per scenario: ``--rounds`` if given, else 1 (smoke), ``quick`` or ``full``."""
        if self.rounds is not None:
            return max(1, self.rounds)
        return self.pick(1, quick, full)


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """What a result aims for: the ratio or the figure (`on`) compared by `op` with `value`."""

    on: Literal["ratio", "figure"]
    op: Op
    value: float

    def met(self, ratio: float | None, figure: float | None) -> bool | None:
        x = ratio if self.on == "ratio" else figure
        if x is None or math.isnan(x):
            return None
        return {
            ">=": x >= self.value,
            "<=": x <= self.value,
            "<": x < self.value,
            "==": x == self.value,
        }[self.op]

    @property
    def text(self) -> str:
        return f"{self.on} {self.op} {self.value:g}"


@dataclass(slots=True, kw_only=True)
class Result:
    """One figure of one scenario, its baseline, the samples of every round, and what it aims for.

    `skipped` holds the reason when the helpline side could not run; the baseline samples are kept.
    """

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    baseline_unit: str = ""
    target: Target | None = None
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def figure(self) -> float | None:
        return _median(self.samples)

    @property
    def baseline(self) -> float | None:
        return _median(self.baseline_samples)

    @property
    def ratio(self) -> float | None:
        figure, baseline = self.figure, self.baseline
        if figure is None or baseline is None or baseline == 0:
            return None
        return figure / baseline

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.skipped is not None:
            return None
        return self.target.met(self.ratio, self.figure)

    @property
    def rounds(self) -> int:
        return max(len(self.samples), len(self.baseline_samples))

    def to_json(self, env: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": self.name,
            "figure": self.figure,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_unit": self.baseline_unit or self.unit,
            "ratio": self.ratio,
            "target": None
            if self.target is None
            else {
                "on": self.target.on,
                "op": self.target.op,
                "value": self.target.value,
                "text": self.target.text,
            },
            "pass": self.passed,
            "rounds": self.rounds,
            "spread": {
                "figure": _span(self.samples),
                "baseline": _span(self.baseline_samples),
            },
            "samples": {"figure": self.samples, "baseline": self.baseline_samples},
            "skipped": self.skipped,
            "details": self.details,
            **env,
        }


def _median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _span(xs: Sequence[float]) -> list[float] | None:
    return [min(xs), max(xs)] if xs else None


def median(xs: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return statistics.median(xs)


def percentile(xs: Sequence[float], p: float) -> float:
    """The `p`-th percentile (0..100) by the nearest-rank method; NaN for no data."""
    if not xs:
        return math.nan
    ordered = sorted(xs)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --- rounds ---------------------------------------------------------------------------------------


def interleave(
    rounds: int,
    sides: dict[str, Callable[[], float]],
    label: str,
) -> dict[str, list[float]]:
    """Run every side once per round, in an order that alternates between rounds."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for i in range(rounds):
        for name in order if i % 2 == 0 else reversed(order):
            progress.update(f"{label}: round {i + 1}/{rounds}, {name}")
            samples[name].append(sides[name]())
    return samples


async def ainterleave(
    rounds: int,
    sides: dict[str, Callable[[], Awaitable[float]]],
    label: str,
) -> dict[str, list[float]]:
    """`interleave` for sides that run inside one trio run."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for i in range(rounds):
        for name in order if i % 2 == 0 else reversed(order):
            progress.update(f"{label}: round {i + 1}/{rounds}, {name}")
            samples[name].append(await sides[name]())
    return samples


# --- the machine ----------------------------------------------------------------------------------


def quiet_logs() -> None:
    """Keep the engine's structlog output to warnings and errors, as a deployment would."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from /proc on Linux.

    Elsewhere only this process's peak RSS is known (getrusage), which is what is returned.
    """
    status = Path(f"/proc/{pid or 'self'}/status")
    try:
        text = status.read_text()
    except OSError:
        if pid not in (None, os.getpid()):
            raise
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", text, re.MULTILINE)
    assert match is not None, "no VmRSS line in /proc status"
    return int(match.group(1)) * 1024


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU seconds used so far by a process (this one by default)."""
    if pid is None or pid == os.getpid():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


@contextlib.contextmanager
def temp_db() -> Iterator[Path]:
    """A fresh SQLite path in a temporary directory that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="helpline-bench-") as tmp:
        yield Path(tmp) / "helpline.db"


def environment(config: RunConfig) -> dict[str, Any]:
    """Versions, CPU count, date and mode: recorded with every result."""
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    for dist in (
        "helpline",
        "trio",
        "websockets",
        "trio-websocket",
        "wsproto",
        "msgpack",
        "structlog",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    versions["commit"] = _commit()
    return {
        "versions": versions,
        "cpu_count": os.cpu_count(),
        "mode": config.mode,
        "synchronous": SYNCHRONOUS,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# --- output ---------------------------------------------------------------------------------------


def write_results(results: Sequence[Result], config: RunConfig) -> Path:
    """Write one JSON file for this run: a list with one object per result. Returns its path."""
    env = environment(config)
    config.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    path = config.out / f"bench-{stamp}-{config.mode}.json"
    n = 1
    while path.exists():
        n += 1
        path = config.out / f"bench-{stamp}-{config.mode}-{n}.json"
    path.write_text(json.dumps([r.to_json(env) for r in results], indent=2) + "\n")
    return path


def fmt(x: float | None) -> str:
    """A number in a table: three significant digits, thousands apart."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
    return f"{x:.3g}"


def table(results: Sequence[Result]) -> str:
    """A plain text table of results: medians, spreads, ratio, target and outcome."""
    head = ("scenario", "figure", "min-max", "baseline", "min-max", "ratio", "target", "pass")
    rows: list[tuple[str, ...]] = [head]
    for r in results:
        spread = _span(r.samples)
        bspread = _span(r.baseline_samples)
        unit = f" {r.unit}" if r.figure is not None else ""
        bunit = f" {r.baseline_unit or r.unit}" if r.baseline is not None else ""
        rows.append(
            (
                r.name,
                fmt(r.figure) + unit if r.skipped is None else "skipped",
                "-" if spread is None else f"{fmt(spread[0])}-{fmt(spread[1])}",
                fmt(r.baseline) + bunit,
                "-" if bspread is None else f"{fmt(bspread[0])}-{fmt(bspread[1])}",
                fmt(r.ratio),
                "-" if r.target is None else r.target.text,
                {True: "yes", False: "NO", None: "-"}[r.passed],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.name}: {r.skipped}" for r in results if r.skipped]
    if notes:
        lines += ["", "skipped:", *notes]
    return "\n".join(line.rstrip() for line in lines)


class Progress:
    """One line on stderr that says what is running: rewritten in place on a terminal."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self._stream = stream
        self._width = 0
        self._started = time.monotonic()
        self.enabled = True

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._started
        line = f"[bench {elapsed:5.0f}s] {text}"
        if self._stream.isatty():
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def done(self) -> None:
        if self.enabled and self._stream.isatty() and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
        self._width = 0


progress = Progress()
