"""Canned suggestions: the p99 time of one ``#`` lookup among 10,000 canned messages.

The lookups themselves live in `bench.canned` (``run(messages=, lookups=, seed=)``): it builds a
book of canned messages and times lookups the way an agent's typing produces them. This module
runs it once per round with a different seed and reports the median of the rounds' p99. There is
no raw baseline: the target is absolute (under 1 ms), since a suggestion list must keep up with
typing.

`bench.canned.run` may return the lookup times in seconds (a sequence of numbers), or a mapping
that holds them under ``"times"`` or states the percentiles as ``"p50_ms"`` and ``"p99_ms"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._common import Result, RunConfig, Target, interleave, percentile, progress


def _p99_ms(outcome: Any) -> tuple[float, float | None]:
    """(p99, p50) in milliseconds from what `bench.canned.run` returned."""
    if isinstance(outcome, Mapping):
        if "p99_ms" in outcome:
            p50 = outcome.get("p50_ms")
            return float(outcome["p99_ms"]), None if p50 is None else float(p50)
        if "times" in outcome:
            outcome = outcome["times"]
    if isinstance(outcome, Sequence) and outcome and not isinstance(outcome, str | bytes):
        times = [float(t) for t in outcome]
        return percentile(times, 99) * 1e3, percentile(times, 50) * 1e3
    raise TypeError(
        "bench.canned.run returned "
        f"{type(outcome).__name__}; expected lookup times in seconds or a mapping with p99_ms"
    )


def canned_suggestions(config: RunConfig) -> list[Result]:
    """p99 of a canned-message lookup, in milliseconds, against an absolute target."""
    messages = config.pick(500, 10_000, 10_000)
    lookups = config.pick(200, 5_000, 50_000)
    rounds = config.n_rounds()
    result = Result(
        name="canned",
        unit="ms p99",
        target=Target(on="figure", op="<", value=1.0),
        details={"messages": messages, "lookups_per_round": lookups},
    )
    try:
        run: Callable[..., Any] = importlib.import_module("bench.canned").run
    except (ImportError, AttributeError) as exc:
        result.skipped = f"bench/canned.py with run(messages=, lookups=, seed=) is needed ({exc})"
        return [result]
    p50s: list[float] = []
    seeds = iter(range(1, rounds + 1))

    def one() -> float:
        p99, p50 = _p99_ms(run(messages=messages, lookups=lookups, seed=next(seeds)))
        if p50 is not None:
            p50s.append(p50)
        return p99

    try:
        samples = interleave(rounds, {"helpline": one}, "canned")
    except TypeError as exc:
        result.skipped = str(exc)
        return [result]
    finally:
        progress.done()
    result.samples = samples["helpline"]
    if p50s:
        result.details["p50_ms"] = p50s
    return [result]
