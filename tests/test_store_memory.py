"""The in-memory SQLite store (engine.store.sqlite, Rule 6), and the hand-written JSON of traces
and ticket items that replaces dataclasses.asdict on the write path."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading

import pytest
import trio

from engine import open_store
from engine.model.records import Entry, Handoff
from engine.model.trace import Candidate, TraceStep
from engine.store import traces
from engine.store.sqlite import StoreError
from engine.store.tickets import dumps_items


def _writer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("helpline-store-writer")]


async def test_a_memory_store_runs_no_thread_and_keeps_what_it_committed() -> None:
    before = _writer_threads()
    async with open_store(":memory:") as store:
        assert _writer_threads() == before
        await store.write(lambda c: c.execute("CREATE TABLE t (x INTEGER)"))
        await store.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
        rows = await store.read(lambda c: c.execute("SELECT x FROM t").fetchall())
        assert rows == [(1,)]


async def test_submit_calls_back_on_a_later_tick_and_a_failed_job_undoes_only_itself() -> None:
    async with open_store(":memory:") as store:
        await store.write(lambda c: c.execute("CREATE TABLE t (x INTEGER UNIQUE)"))
        outcomes: list[object] = []
        done = trio.Event()

        def on_done(outcome: object) -> None:
            outcomes.append(outcome)
            if len(outcomes) == 3:
                done.set()

        store.submit(lambda c: c.execute("INSERT INTO t VALUES (1)").rowcount, on_done)
        store.submit(lambda c: c.execute("INSERT INTO t VALUES (1)").rowcount, on_done)
        store.submit(lambda c: c.execute("INSERT INTO t VALUES (2)").rowcount, on_done)
        assert outcomes == []  # never from inside submit
        await done.wait()
        assert outcomes[0] == 1
        assert outcomes[2] == 1
        assert isinstance(outcomes[1], StoreError)
        assert isinstance(outcomes[1].__cause__, sqlite3.IntegrityError)
        rows = await store.read(lambda c: c.execute("SELECT x FROM t ORDER BY x").fetchall())
        assert rows == [(1,), (2,)]


async def test_a_read_cannot_write_and_the_store_writes_on() -> None:
    async with open_store(":memory:") as store:
        await store.write(lambda c: c.execute("CREATE TABLE t (x INTEGER)"))
        with pytest.raises(StoreError, match="readonly"):
            await store.read(lambda c: c.execute("INSERT INTO t VALUES (1)"))
        await store.write(lambda c: c.execute("INSERT INTO t VALUES (2)"))
        assert await store.read(lambda c: c.execute("SELECT x FROM t").fetchall()) == [(2,)]


async def test_closing_delivers_what_was_submitted() -> None:
    outcomes: list[object] = []
    async with open_store(":memory:") as store:
        await store.write(lambda c: c.execute("CREATE TABLE t (x INTEGER)"))
        for x in range(3):
            store.submit(
                lambda c, x=x: c.execute("INSERT INTO t VALUES (?)", (x,)).rowcount, outcomes.append
            )
    assert outcomes == [1, 1, 1]


def test_trace_json_holds_every_field_as_asdict_would() -> None:
    steps = (
        TraceStep(
            at=1.5,
            kind="offered",
            department="sales",
            detail="assigned",
            candidates=(
                Candidate(
                    agent="ann",
                    verdict="chosen",
                    reason="least_loaded",
                    load=1,
                    capacity=3,
                    idle=2.25,
                    detail="d",
                ),
                Candidate(
                    agent="bob", verdict="skipped", reason="full", load=3, capacity=3, idle=0.0
                ),
            ),
        ),
        TraceStep(at=2.0, kind="missed", department="sales", detail="queue_timeout"),
    )
    doc = json.loads(traces.dumps(steps, 4))
    as_asdict = {"dropped": 4, "steps": [dataclasses.asdict(s) for s in steps]}
    assert doc == json.loads(json.dumps(as_asdict))  # tuples become lists either way
    assert traces.loads("c", traces.dumps(steps, 4)).steps == steps


def test_ticket_items_json_holds_every_field_as_asdict_would() -> None:
    entries = [
        Entry(seq=1, at=1.0, kind="message", author="visitor", text="hé", client_msg_id="m1"),
        Entry(seq=2, at=2.0, kind="joined", author="system"),
    ]
    handoffs = [
        Handoff(
            kind="transfer",
            from_agent="ann",
            to_agent="bob",
            to_department="",
            note="n",
            outcome="accepted",
            at=3.0,
        ),
    ]
    assert json.loads(dumps_items(entries)) == [dataclasses.asdict(e) for e in entries]
    assert json.loads(dumps_items(handoffs)) == [dataclasses.asdict(h) for h in handoffs]
    assert dumps_items([]) == "[]"
