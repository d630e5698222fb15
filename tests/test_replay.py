"""What-if replay: recorded traffic played again through the real engine on a virtual clock.

The recording is itself a run of the simulator over a generated day, stored by the live engine;
replaying its tickets with the configuration it was recorded with must give the same figures.
Tolerance, stated: every wait percentile within max(0.5 s, 2 %) of the recorded one, and the missed
chats equal per department and per reason.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from bench._daemonproc import helpline
from engine import Agent, Department, RoutingMode
from replay import (
    Changes,
    DayProfile,
    Desk,
    Traffic,
    generate_day,
    generated_desk,
    read_store,
    recorded_desk,
    run,
    simulate,
)
from replay.clock import VirtualClock
from replay.desk import ALL
from replay.report import Figures, figures, percentile
from replay.sweep import parse_sweep
from replay.traffic import GENERATED_DAY

DAY = 300  # chats in the generated day the tests record
#: Long support chats, so that even a small day needs a few support agents.
PROFILE = DayProfile(departments=(("sales", 0.35, 240.0), ("support", 0.65, 1200.0)))


def close(expected: float, actual: float) -> bool:
    """Within the stated tolerance: max(0.5 s, 2 %)."""
    return abs(expected - actual) <= max(0.5, 0.02 * abs(expected))


def assert_same(recorded: Figures, replayed: Figures) -> None:
    assert recorded.missed == replayed.missed
    assert recorded.answered == replayed.answered
    for p in ("p50", "p90", "p99"):
        assert close(getattr(recorded, p), getattr(replayed, p)), (p, recorded, replayed)


async def record(tmp_path: Path) -> tuple[Traffic, Desk]:
    """A generated day run through the live engine into a store, read back as recorded traffic."""
    day = generate_day(DAY, seed=7, profile=PROFILE)
    desk = generated_desk(day, PROFILE)
    db = tmp_path / "recorded.db"
    await simulate(day, desk, db=db)
    traffic = await read_store(db)
    return traffic, recorded_desk(traffic)


def figures_of(traffic: Traffic, outcomes: Any, desk: Desk) -> dict[str, Figures]:
    return {d: figures(traffic.requests, outcomes, d, desk) for d in traffic.department_ids}


class TestReplay:
    async def test_unchanged_configuration_matches_the_recording(
        self, tmp_path: Path, autojump_clock: MockClock
    ) -> None:
        """Replaying a recorded day against the desk it was recorded with gives its figures."""
        traffic, desk = await record(tmp_path)
        assert DAY == len(traffic.requests)
        assert {"sales", "support"} == set(traffic.department_ids)
        recorded = {r.key: r.recorded for r in traffic.requests if r.recorded is not None}
        assert DAY == len(recorded)
        assert any(o.missed for o in recorded.values()), "the day should miss a few chats"
        result = await simulate(traffic, desk)
        assert DAY == len(result.outcomes)
        before = figures_of(traffic, recorded, desk)
        after = figures_of(traffic, result.outcomes, desk)
        for dept in traffic.department_ids:
            assert_same(before[dept], after[dept])

    async def test_more_agents_wait_less_and_fewer_miss_more(
        self, tmp_path: Path, autojump_clock: MockClock
    ) -> None:
        """Two more support agents lower support's p90 wait; one agent misses more chats."""
        traffic, desk = await record(tmp_path)
        staff = len(desk.agents_of("support"))
        assert staff > 1
        base = figures_of(traffic, (await simulate(traffic, desk)).outcomes, desk)["support"]
        more = Changes(agents={"support": staff + 2}).apply(desk, traffic.department_ids)
        fewer = Changes(agents={"support": 1}).apply(desk, traffic.department_ids)
        with_more = figures_of(traffic, (await simulate(traffic, more)).outcomes, more)
        with_fewer = figures_of(traffic, (await simulate(traffic, fewer)).outcomes, fewer)
        assert with_more["support"].p90 < base.p90
        assert with_fewer["support"].missed_total > base.missed_total
        # sales was not changed: its figures stay as they were
        assert_same(with_more["sales"], with_fewer["sales"])

    async def test_other_hours_and_overflow_change_the_figures(
        self, autojump_clock: MockClock
    ) -> None:
        """Closing at noon makes every afternoon request a missed chat (closed_hours) and leaves
        the morning's alone; a queue length limit with nowhere to overflow misses chats with
        reason overflow, which the unchanged desk never does."""
        day = generate_day(200, seed=3, profile=PROFILE)
        desk = generated_desk(day, PROFILE)
        depts = day.department_ids
        base = (await simulate(day, desk)).outcomes
        noon = Changes(hours={ALL: ("mon-sun 00:00-12:00",)}).apply(desk, depts)
        closed = (await simulate(day, noon)).outcomes
        hour = {r.key: (day.start + r.at - GENERATED_DAY) / 3600 for r in day.requests}
        afternoon = [k for k, h in hour.items() if h >= 12]
        morning = [k for k, h in hour.items() if h < 12]
        assert afternoon
        assert morning
        assert all(closed[k].missed == "closed_hours" for k in afternoon)
        assert not any(closed[k].missed == "closed_hours" for k in morning)
        assert all(base[k].missed != "closed_hours" for k in base)
        short = Changes(overflow_queue={"support": 1}).apply(desk, depts)
        spilled = (await simulate(day, short)).outcomes
        overflowed = [k for k, o in spilled.items() if o.missed == "overflow"]
        assert overflowed
        assert not any(o.missed == "overflow" for o in base.values())

    def test_refuses_a_real_clock(self) -> None:
        """A replay on the real clock would take a day; simulate says what clock it needs."""
        day = generate_day(5, seed=1)
        with pytest.raises(RuntimeError, match="MockClock"):
            trio.run(simulate, day, generated_desk(day))


class TestTraffic:
    def test_a_generated_day_is_seeded_and_follows_its_profile(self) -> None:
        """Same seed, same day; arrivals are ordered and the busy hours get more of them."""
        a, b = generate_day(2000, seed=3), generate_day(2000, seed=3)
        assert a == b
        assert 2000 == len(a.requests)
        times = [r.at for r in a.requests]
        assert times == sorted(times)
        assert 0 == times[0]
        assert times[-1] < 86400
        hours = [0] * 24
        for r in a.requests:
            hours[min(23, int(r.at // 3600))] += 1
        assert max(hours) > 5 * min(hours)
        assert all(r.handle > 0 and r.patience is not None for r in a.requests)
        assert a != generate_day(2000, seed=4)


class TestDesk:
    DESK = Desk(
        departments=(
            Department(id="sales", name="Sales"),
            Department(id="support", name="Support", routing=RoutingMode.ASSIGNED),
        ),
        agents=(
            Agent(id="ann", name="Ann", departments=("sales",), capacity=2),
            Agent(id="bob", name="Bob", departments=("sales", "support"), capacity=4),
            Agent(id="cy", name="Cy", departments=("support",), capacity=4),
        ),
    )

    def test_agents_for_one_department(self) -> None:
        """N agents of the department's capacity replace its own; a shared agent keeps the rest."""
        desk = Changes(agents={"support": 3}).apply(self.DESK, ("sales", "support"))
        assert ["support-1", "support-2", "support-3"] == [a.id for a in desk.agents_of("support")]
        assert {4} == {a.capacity for a in desk.agents_of("support")}
        assert ["ann", "bob"] == [a.id for a in desk.agents_of("sales")]
        assert "3 x 4, assigned" == desk.describe("support")

    def test_changes_for_every_department(self) -> None:
        """A change without a department applies to each; one with a department wins there."""
        changes = Changes(
            capacity={"": 1},
            routing={"": RoutingMode.ASSIGNED, "sales": RoutingMode.BROADCAST},
        )
        desk = changes.apply(self.DESK, ("sales", "support"))
        assert {1} == {a.capacity for a in desk.agents}
        assert RoutingMode.BROADCAST == desk.department("sales").routing
        assert RoutingMode.ASSIGNED == desk.department("support").routing

    def test_cut_to_some_departments(self) -> None:
        """Replaying one department keeps only its agents, serving only it."""
        desk = self.DESK.only(("support",))
        assert [("bob", ("support",)), ("cy", ("support",))] == [
            (a.id, a.departments) for a in desk.agents
        ]


class TestFigures:
    def test_percentiles_by_nearest_rank(self) -> None:
        """p50 of 1..10 is 5, p90 is 9, p99 is 10; no data gives NaN."""
        xs = [float(x) for x in range(10, 0, -1)]
        assert (5.0, 9.0, 10.0) == (percentile(xs, 50), percentile(xs, 90), percentile(xs, 99))
        assert math.isnan(percentile([], 50))

    def test_sweep_ranges(self) -> None:
        """agents=A..B counts A to B; :STEP skips; nonsense is refused."""
        assert [4, 5, 6] == parse_sweep("agents=4..6")
        assert [2, 4, 6] == parse_sweep("agents=2..7:2")
        for bad in ("agents=6..4", "capacity=1..3", "agents=0..3", "agents=1..100"):
            with pytest.raises(ValueError, match=r"agents|sweep"):
                parse_sweep(bad)


def replay_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        helpline("replay", *args), cwd=cwd, capture_output=True, text=True, timeout=300
    )


class TestCommand:
    def test_record_export_and_replay(self, tmp_path: Path) -> None:
        """A generated day is recorded, exported with 'tickets export' and replayed from the file
        with the recorded desk: the same figures; then a sweep prints a row per agent count."""
        first = replay_cmd("--generate", "150", "--record", "rec.db", "--json", cwd=tmp_path)
        assert 0 == first.returncode, first.stderr
        generated = json.loads(first.stdout)
        assert 150 == generated["chats"]
        assert generated["speedup"] > 1000
        export = subprocess.run(
            helpline("tickets", "export", "--db", "rec.db", "-o", "t.jsonl"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert 0 == export.returncode, export.stderr
        again = replay_cmd("--from", "t.jsonl", "--db", "rec.db", "--json", "--quiet", cwd=tmp_path)
        assert 0 == again.returncode, again.stderr
        report = json.loads(again.stdout)
        for dept, both in report["departments"].items():
            rec, rep = both["recorded"], both["replay"]
            assert rec["missed_by_reason"] == rep["missed_by_reason"], dept
            for p in ("wait_p50", "wait_p90", "wait_p99"):
                assert close(rec[p], rep[p]), (dept, p, rec, rep)
        table = replay_cmd(
            "--db", "rec.db", "--department", "support", "--sweep", "agents=1..2", cwd=tmp_path
        )
        assert 0 == table.returncode, table.stderr
        lines = table.stdout.splitlines()
        assert lines[2].split()[:2] == ["agents", "support"]
        assert ["1", "2"] == [line.split()[0] for line in lines[3:]]
        text = replay_cmd("--db", "rec.db", "--agents", "support=1", "--quiet", cwd=tmp_path)
        assert 0 == text.returncode, text.stderr
        assert "department support" in text.stdout
        assert "1 x 3, assigned" in text.stdout

    def test_png_without_matplotlib_says_how_to_install_it(self, tmp_path: Path) -> None:
        """--png needs the bench extra; without it the command says so and fails."""
        try:
            import matplotlib  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("matplotlib is installed")
        done = replay_cmd(
            "--generate", "20", "--sweep", "agents=1..2", "--png", "s.png", cwd=tmp_path
        )
        assert 1 == done.returncode
        assert "helpline[bench]" in done.stderr
        assert not (tmp_path / "s.png").exists()

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ((), "name one source"),
            (("--generate", "10", "--from", "x.jsonl"), "name one source"),
            (("--from", "missing.jsonl"), "missing.jsonl"),
            (("--db", "missing.db"), "no database file"),
            (("--generate", "10", "--agents", "billing=2"), "no chats of billing"),
            (("--generate", "10", "--routing", "fastest"), "--routing"),
            (("--generate", "10", "--hours", "someday 9-5"), "--hours"),
            (("--generate", "10", "--timezone", "Mars/Olympus"), "unknown time zone"),
            (("--generate", "10", "--overflow-to", "billing"), "no department billing"),
        ],
    )
    def test_refusals(self, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
        """What cannot be replayed is refused with a reason, exit status 1."""
        done = replay_cmd(*args, "--quiet", cwd=tmp_path)
        assert 1 == done.returncode, done.stdout
        assert message in done.stderr
        assert "Traceback" not in done.stderr


class TestClock:
    def test_jumps_to_the_next_deadline_when_all_is_blocked(self) -> None:
        """An hour of sleeping takes no real time, and the clock lands on the deadline."""
        clock = VirtualClock()
        seen: list[float] = []

        async def main() -> None:
            await trio.sleep(3600)
            seen.append(trio.current_time())

        started = time.perf_counter()
        trio.run(main, clock=clock, instruments=[clock])
        assert [3600.0] == seen
        assert time.perf_counter() - started < 5

    def test_held_time_waits_for_a_thread(self) -> None:
        """While held, a task waiting for a worker thread does not let time jump."""
        clock = VirtualClock()
        seen: list[float] = []

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep, 10)
                with clock.hold():
                    await trio.to_thread.run_sync(time.sleep, 0.05)
                    seen.append(trio.current_time())
                await trio.to_thread.run_sync(time.sleep, 0.05)
                seen.append(trio.current_time())

        trio.run(main, clock=clock, instruments=[clock])
        assert 0.0 == seen[0]
        assert 10.0 == seen[1]  # free again, it jumped while the thread slept

    def test_a_replay_gives_the_same_figures_on_either_clock(self) -> None:
        """The replay's own clock and trio's autojump clock give the same outcome per chat."""
        day = generate_day(200, seed=5, profile=PROFILE)
        desk = generated_desk(day, PROFILE)
        own = run(day, desk)
        mock = trio.run(simulate, day, desk, clock=MockClock(autojump_threshold=0))
        assert own.outcomes.keys() == mock.outcomes.keys()
        for key, outcome in own.outcomes.items():
            other = mock.outcomes[key]
            assert (outcome.missed, outcome.agents) == (other.missed, other.agents), key
            assert close(outcome.wait or 0.0, other.wait or 0.0), key
