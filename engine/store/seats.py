"""An agent's seats in live chats (``live_members``): capacity decided by the database.

The journal's Rule 6 (``engine.store.journal``) says what they are for. ``claim`` gives an agent a
seat against its capacity in the directory, in the caller's transaction, or refuses; ``mirror``
makes the seats of written records match their members (without a check: a record only gains a
member through a seat it held already, and a restored chat keeps its agents) and the agents their
open offers are made to (checked: a seat an offer reserves is refused, and reported, when the
agent is full).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

from .writer import StoreError

if TYPE_CHECKING:
    from .contract import Connection

__all__ = ["OVER_CAPACITY", "OverCapacity", "claim", "mirror"]

OVER_CAPACITY: Final = "over_capacity"  # the StoreError code of a refused claim


class OverCapacity(StoreError):
    """A claim refused: the agent holds `held` live chats, and `capacity` is its
    capacity in the directory when the claim was checked."""

    code = OVER_CAPACITY

    def __init__(self, message: str, *, held: int, capacity: int) -> None:
        super().__init__(message)
        self.held = held
        self.capacity = capacity


def claim(conn: Connection, chat_id: str, agent_id: str) -> None:
    """Give `agent_id` a seat in `chat_id`, or refuse: `OverCapacity` if
    the agent would then be in more live chats than its capacity, `StoreError("not_found")` if
    the directory has no such agent. Run it inside a transaction (a job's savepoint): a refusal
    leaves the rows as they were once that is rolled back."""
    capacity = _capacity(conn, agent_id)
    conn.execute(
        "INSERT INTO live_members (agent_id, chat_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (agent_id, chat_id),
    )
    held = _held(conn, agent_id) - 1
    if held >= capacity:
        raise OverCapacity(
            f"{agent_id} is in {held} live chats and its capacity is {capacity}",
            held=held,
            capacity=capacity,
        )


def _capacity(conn: Connection, agent_id: str) -> int:
    """The agent's capacity in the directory; `StoreError("not_found")` if there is no such agent.

    PostgreSQL: the agent's row stays locked until the transaction ends, so that two checks for
    one agent wait for each other. SQLite has one writer at a time for the whole file, and a
    write transaction that read before another connection committed fails instead of writing, so
    a plain read is enough there (and dirties no page)."""
    lock = _locked(conn, " FOR UPDATE")
    row = conn.execute(f"SELECT capacity FROM agents WHERE id = ?{lock}", (agent_id,)).fetchone()
    if row is None:
        raise StoreError(f"no agent {agent_id!r} in the directory", code="not_found")
    return int(row[0])


def _held(conn: Connection, agent_id: str) -> int:
    """The agent's seats, as the triggers on `live_members` count them (`agent_seats`)."""
    row = conn.execute("SELECT seats FROM agent_seats WHERE agent_id = ?", (agent_id,)).fetchone()
    return 0 if row is None else int(row[0])


def _locked(conn: Connection, clause: str) -> str:
    """`clause` (a row lock) on PostgreSQL; nothing on SQLite, where one writer holds the file."""
    return "" if isinstance(conn, sqlite3.Connection) else clause


_IN_CHUNK: Final = 500  # ids per IN (...) list


def _chunks(ids: Sequence[str]) -> Iterator[tuple[Sequence[str], str]]:
    """`ids` in slices short enough for one IN (...) list, each with its placeholders."""
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        yield chunk, ",".join("?" * len(chunk))


def mirror(
    conn: Connection,
    members: Sequence[tuple[str, tuple[str, ...]]],
    reserved: Sequence[tuple[str, tuple[str, ...]]] = (),
) -> tuple[tuple[str, str], ...]:
    """Make `live_members` hold exactly these chats' members and the agents their open offers
    reserve a seat for; returns the (chat id, agent id) reservations refused.

    Members are written without a check. The reservations new to the store are checked like
    claims, with one read of the agents' capacities and seats (on PostgreSQL their rows locked,
    in agent order): an agent that would then hold more seats than its capacity, or that the
    directory no longer has, gets no seat.
    """
    ids = [chat_id for chat_id, _ in members]
    held: set[tuple[str, str]] = set()
    for chunk, marks in _chunks(ids):
        held.update(
            (row[0], row[1])
            for row in conn.execute(
                f"SELECT chat_id, agent_id FROM live_members WHERE chat_id IN ({marks})", chunk
            )
        )
    seated = {(chat_id, agent_id) for chat_id, agents in members for agent_id in agents}
    asked = {(chat_id, agent_id) for chat_id, agents in reserved for agent_id in agents}
    gone = held - seated - asked
    if gone:
        conn.executemany(
            "DELETE FROM live_members WHERE chat_id = ? AND agent_id = ?", sorted(gone)
        )
    _insert(conn, sorted(seated - held))
    return _reserve(conn, sorted(asked - seated - held, key=lambda pair: pair[::-1]))


def _reserve(conn: Connection, pairs: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Seat each (chat, agent) pair, in agent order, while the agent has room; the refused."""
    if not pairs:
        return ()
    agents = sorted({agent_id for _, agent_id in pairs})
    lock = _locked(conn, " FOR UPDATE OF a")
    capacity: dict[str, int] = {}
    held: dict[str, int] = {}
    for chunk, marks in _chunks(agents):
        for agent_id, room, seats in conn.execute(  # locked in agent order, as `_capacity` locks
            "SELECT a.id, a.capacity, coalesce(s.seats, 0) FROM agents a"
            f" LEFT JOIN agent_seats s ON s.agent_id = a.id WHERE a.id IN ({marks})"
            f" ORDER BY a.id{lock}",
            chunk,
        ):
            capacity[agent_id], held[agent_id] = int(room), int(seats)
    seated: list[tuple[str, str]] = []
    refused: list[tuple[str, str]] = []
    for chat_id, agent_id in pairs:
        count = held.get(agent_id, 0)
        if count >= capacity.get(agent_id, 0):  # full, or gone from the directory
            refused.append((chat_id, agent_id))
        else:
            held[agent_id] = count + 1
            seated.append((chat_id, agent_id))
    _insert(conn, seated)
    return tuple(refused)


def _insert(conn: Connection, pairs: Sequence[tuple[str, str]]) -> None:
    if pairs:
        conn.executemany(  # not for a chat whose record was not written (it has a ticket)
            "INSERT INTO live_members (chat_id, agent_id) SELECT ?, ?"
            " WHERE EXISTS (SELECT 1 FROM live_chats WHERE chat_id = ?)"
            " ON CONFLICT DO NOTHING",
            [(chat_id, agent_id, chat_id) for chat_id, agent_id in pairs],
        )
