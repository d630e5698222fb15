"""The bench scripts keep working: every scenario runs at a tiny size and writes sane JSON.

Benchmarks are not tests: nothing here looks at speed. The figures of a smoke run mean nothing;
only their shape, their units and their consistency are checked.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench._common import Result, RunConfig, Target, interleave, percentile, table, write_results
from bench._daemon import draw
from bench._run import SCENARIOS, main
from bench._socketio import socketio_peer

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "name",
    "figure",
    "unit",
    "baseline",
    "baseline_unit",
    "ratio",
    "target",
    "pass",
    "rounds",
    "spread",
    "samples",
    "skipped",
    "details",
    "versions",
    "cpu_count",
    "mode",
    "synchronous",
    "date",
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    """`python -m bench --smoke` once for the module: its output and the JSON it wrote."""
    out = tmp_path_factory.mktemp("results")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--quiet", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # a shared machine can be slow; the smoke sizes take about a minute
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list(out.glob("bench-*-smoke.json"))
    assert len(files) == 1
    return proc.stdout, json.loads(files[0].read_text())


class TestSmokeRun:
    def test_every_scenario_reports(self, smoke_run: tuple[str, list[dict[str, Any]]]) -> None:
        """Each scenario writes at least one result, in the order of the scenario list."""
        _, results = smoke_run
        names = [r["name"] for r in results]
        prefixes = {
            "throughput": "throughput",
            "setup": "setup-",
            "memory": "memory-",
            "canned": "canned",
            "daemon-throughput": "daemon-throughput",
            "daemon-latency": "daemon-latency-",
            "connections": "connections-",
            "metrics-cost": "metrics-c",
            "socketio": "socketio-",
            "soak": "soak",
            "journal": "journal",
            "recovery": "recovery-",
            "crash": "crash",
            "cluster": "cluster-",
            "replay": "replay-",
        }
        assert set(prefixes) == set(SCENARIOS)
        for scenario, prefix in prefixes.items():
            assert any(n.startswith(prefix) for n in names), f"{scenario} wrote no result"

    def test_json_shape(self, smoke_run: tuple[str, list[dict[str, Any]]]) -> None:
        """Every object has the documented fields, and the numbers agree with each other."""
        _, results = smoke_run
        for r in results:
            assert set(r) == KEYS, r["name"]
            assert r["mode"] == "smoke"
            assert r["cpu_count"] >= 1
            assert r["versions"]["python"]
            assert r["versions"]["trio"]
            if r["skipped"] is not None:
                assert r["pass"] is None
                continue
            assert r["figure"] is not None, r["name"]
            assert math.isfinite(r["figure"])
            assert r["rounds"] == 1
            low, high = r["spread"]["figure"]
            assert low <= r["figure"] <= high
            if r["baseline"] is not None:
                assert r["baseline"] > 0
                assert r["ratio"] == pytest.approx(r["figure"] / r["baseline"])
            if r["target"] is not None:
                assert isinstance(r["pass"], bool)
                assert r["target"]["on"] in ("ratio", "figure")

    def test_sane_values(self, smoke_run: tuple[str, list[dict[str, Any]]]) -> None:
        """Rates are positive, memory per chat is between a byte and a megabyte, nothing lost."""
        _, results = smoke_run
        by_name = {r["name"]: r for r in results}
        for name in ("throughput", "setup-broadcast", "setup-assigned"):
            assert by_name[name]["figure"] > 0
        memory = next(r for r in results if r["name"].startswith("memory-"))
        assert 1 < memory["figure"] < 1_000_000
        assert 1 < memory["baseline"] < 1_000_000
        relay = by_name["daemon-throughput"]
        assert relay["baseline"] > 0
        cpu = by_name["daemon-cpu-per-msg"]
        assert cpu["target"]["text"] == "figure <= 120"
        if cpu["skipped"] is None:
            assert cpu["figure"] > 0
            assert cpu["baseline"] > 0
        if by_name["soak"]["skipped"] is None:
            soak = by_name["soak"]["details"]
            assert soak["sent"] > 0
            assert soak["sent"] == soak["delivered"] == soak["stored"]
            assert soak["duplicated"] == 0
        races = by_name["cluster-races"]  # runs at smoke size when a PostgreSQL server is named
        assert races["unit"] == "violations"
        assert races["target"]["text"] == "figure == 0"
        if races["skipped"] is None:
            details = races["details"]
            assert details["races"] >= 30
            assert details["chats_won"] == details["chats_opened"] >= details["races"]
            assert races["figure"] == details["violations"] == 0, details["summary"]
            assert details["races_per_second"] > 0
            assert set(details["refused"]) <= {"offer_taken", "stale_offer", "capacity_full"}
        else:  # no server named, or a loaded machine's holder missed its renewals
            assert "HELPLINE_BENCH_POSTGRES" in races["skipped"] or (
                "the lease changed hands" in races["skipped"]
            )

    def test_table_printed(self, smoke_run: tuple[str, list[dict[str, Any]]]) -> None:
        """The run prints its settings, a table with every result, and where the JSON went."""
        stdout, results = smoke_run
        assert "synchronous=NORMAL" in stdout
        for r in results:
            assert r["name"] in stdout
        assert "written to" in stdout


class TestCommandLine:
    def test_help_explains_every_option_and_scenario(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_:
            main(["--help"])
        assert exit_.value.code == 0
        text = capsys.readouterr().out
        for option in ("--full", "--smoke", "--rounds", "--races", "--sweep", "--out", "--quiet"):
            assert option in text
        for name in SCENARIOS:
            assert name in text

    def test_unknown_scenario_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_:
            main(["no-such-scenario"])
        assert exit_.value.code == 2
        assert "unknown scenario" in capsys.readouterr().err

    def test_races_must_be_positive(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_:
            main(["cluster", "--races", "0"])
        assert exit_.value.code == 2
        assert "--races must be at least 1" in capsys.readouterr().err


class TestCommon:
    def test_rounds_alternate_their_order(self) -> None:
        """Each round runs every side once; the order flips from one round to the next."""
        calls: list[str] = []

        def side(name: str, value: float) -> float:
            calls.append(name)
            return value

        samples = interleave(4, {"a": lambda: side("a", 1), "b": lambda: side("b", 2)}, "test")
        assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
        assert samples == {"a": [1.0] * 4, "b": [2.0] * 4}

    def test_result_medians_ratio_and_target(self) -> None:
        r = Result(
            name="x",
            unit="msg/s",
            samples=[3.0, 1.0, 2.0],
            baseline_samples=[4.0, 4.0, 8.0],
            target=Target(on="ratio", op=">=", value=0.5),
        )
        assert (r.figure, r.baseline, r.ratio, r.passed) == (2.0, 4.0, 0.5, True)
        assert r.to_json({})["spread"] == {"figure": [1.0, 3.0], "baseline": [4.0, 8.0]}
        r.skipped = "no server"
        assert r.passed is None
        assert "no server" in table([r])

    def test_percentile_nearest_rank(self) -> None:
        xs = [float(i) for i in range(1, 101)]
        assert (percentile(xs, 50), percentile(xs, 99), percentile(xs, 100)) == (50, 99, 100)
        assert math.isnan(percentile([], 99))

    def test_results_file_is_a_list_of_objects(self, tmp_path: Path) -> None:
        path = write_results([Result(name="x", unit="u", samples=[1.0])], RunConfig(out=tmp_path))
        [obj] = json.loads(path.read_text())
        assert set(obj) == KEYS

    def test_chart_skipped_without_matplotlib(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without matplotlib the sweep says so and draws nothing."""
        monkeypatch.setitem(sys.modules, "matplotlib", None)
        assert draw({"relay": []}, tmp_path) is None
        assert "matplotlib is not installed" in capsys.readouterr().out
        assert not list(tmp_path.iterdir())


def test_recovery_restores_every_chat(smoke_run: tuple[str, list[dict[str, Any]]]) -> None:
    """The recovery scenario times a start that really brought back every live chat."""
    _, results = smoke_run
    (recovery,) = [r for r in results if r["name"].startswith("recovery-")]
    assert recovery["details"]["restored"] == recovery["details"]["live_chats"] > 0


def test_socketio_peer(smoke_run: tuple[str, list[dict[str, Any]]]) -> None:
    """The socket.io relay runs beside helpline, or its rows say why not and how to install it."""
    _, results = smoke_run
    rows = [r for r in results if r["name"].startswith("socketio-")]
    assert [r["name"] for r in rows] == [
        "socketio-throughput",
        "socketio-cpu-per-msg",
        "socketio-memory-20",
    ]
    reason = rows[0]["skipped"]
    if reason is not None:
        assert "pip install" in reason
        pytest.skip(f"socket.io peer not run: {reason}")
    for r in rows:
        assert r["figure"] > 0
        assert r["baseline"] > 0
    saturation = rows[0]["details"]["socketio"]["saturation"]
    assert "saturated" in saturation


def test_socketio_peer_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the bench extra the socket.io rows are skipped with the command that installs it."""
    monkeypatch.setitem(sys.modules, "socketio", None)
    rows = socketio_peer(RunConfig(mode="smoke"))
    assert len(rows) == 3
    for row in rows:
        assert row.skipped is not None
        assert "pip install -e '.[bench]'" in row.skipped
        assert row.passed is None
