"""Routing traces in the store: a finished chat's flight-recorder steps, kept for some days.

Theory of operation:

Rule 1. The router writes a chat's trace (`routing_traces`, one row per chat, keyed by chat id like
        its ticket) with the journal write of the iteration that finished the chat, so the trace
        is committed before anyone hears the chat ended. A trace written again replaces the row.
Rule 2. Rows are kept for `EngineConfig.trace_days` days after the chat ended; older rows are
        deleted when the engine starts (`prune`).
Rule 3. The steps are JSON, read back leniently: an unknown key is ignored and a missing one
        takes its default, so traces written by another version still read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..model.trace import Candidate, RoutingTrace, TraceStep

if TYPE_CHECKING:
    from .contract import Connection

__all__ = ["TraceRow", "dumps", "loads", "prune", "read", "write"]

TraceRow = tuple[str, str, float, str]  # chat id, department, ended at, steps as JSON


def dumps(steps: Sequence[TraceStep], dropped: int) -> str:
    """Steps as compact JSON (every field of each step and candidate, by name)."""
    doc = {"dropped": dropped, "steps": [s.doc() for s in steps]}
    return _ENCODER.encode(doc)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def loads(chat_id: str, text: str) -> RoutingTrace:
    """A stored trace; ValueError if it is not JSON of the expected shape."""
    try:
        doc = json.loads(text)
        steps = tuple(_step(s) for s in doc.get("steps", ()))
        return RoutingTrace(chat_id=chat_id, live=False, steps=steps, dropped=int(doc["dropped"]))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"trace of chat {chat_id}: {exc!r}") from exc


def _known(cls: type, doc: dict[str, Any]) -> dict[str, Any]:
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    return {k: v for k, v in doc.items() if k in fields}


def _step(doc: dict[str, Any]) -> TraceStep:
    known = _known(TraceStep, doc)
    known["candidates"] = tuple(
        Candidate(**_known(Candidate, c)) for c in known.get("candidates", ())
    )
    return TraceStep(**known)


def write(conn: Connection, rows: Sequence[TraceRow]) -> None:
    """Store finished chats' traces (a row written again replaces the old one)."""
    conn.executemany(
        "INSERT INTO routing_traces (chat_id, department, ended_at, steps) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (chat_id) DO UPDATE SET department = excluded.department,"
        " ended_at = excluded.ended_at, steps = excluded.steps",
        rows,
    )


def read(conn: Connection, chat_id: str) -> RoutingTrace | None:
    """The stored trace of a chat, or None."""
    row = conn.execute("SELECT steps FROM routing_traces WHERE chat_id = ?", (chat_id,)).fetchone()
    return None if row is None else loads(chat_id, row[0])


def prune(conn: Connection, before: float) -> int:
    """Delete the traces of chats that ended before `before`; returns how many."""
    return conn.execute("DELETE FROM routing_traces WHERE ended_at < ?", (before,)).rowcount
