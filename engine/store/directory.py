"""The directory's queries, written once for SQLite and PostgreSQL (mixed into ``StoreQueries``).

Departments and their settings, agents with their departments, status, ringtone and skills, access
tokens (their hashes only, with a supervisor's departments), and the counter a command bumps when
it changes any of these in the store directly, so that a running daemon reloads them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from ..model.records import (
    Agent,
    AgentStatus,
    Department,
    RoutingMode,
)
from . import routing_rows as rr
from .contract import Connection
from .tickets import (
    NotFound,
)
from .writer import StoreError

__all__ = ["DirectoryQueries"]

T = TypeVar("T")


class _Backend(Protocol):
    def write(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...

    def read(self, fn: Callable[[Connection], T]) -> Awaitable[T]: ...


def _upsert_agent(conn: Connection, a: Agent) -> None:
    conn.execute(
        "INSERT INTO agents (id, name, capacity, status, ringtone, skills)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, capacity = excluded.capacity,"
        " status = excluded.status, ringtone = excluded.ringtone, skills = excluded.skills",
        (a.id, a.name, a.capacity, a.status.value, int(a.ringtone), rr.skills_json(a.skills)),
    )
    conn.execute("DELETE FROM agent_departments WHERE agent_id = ?", (a.id,))
    conn.executemany(
        "INSERT INTO agent_departments (agent_id, position, department) VALUES (?, ?, ?)",
        [(a.id, position, dept) for position, dept in enumerate(a.departments)],
    )


def _select_agents(conn: Connection) -> list[Agent]:
    departments: dict[str, list[str]] = {}
    for agent_id, dept in conn.execute(
        "SELECT agent_id, department FROM agent_departments ORDER BY agent_id, position"
    ):
        departments.setdefault(agent_id, []).append(dept)
    return [
        Agent(
            id=agent_id,
            name=name,
            departments=tuple(departments.get(agent_id, ())),
            capacity=capacity,
            status=AgentStatus(status),
            ringtone=bool(ringtone),
            skills=rr.skills_of(skills),
        )
        for agent_id, name, capacity, status, ringtone, skills in conn.execute(
            "SELECT id, name, capacity, status, ringtone, skills FROM agents ORDER BY id"
        )
    ]


def _delete(conn: Connection, table: str, key: str, what: str) -> None:
    if conn.execute(f"DELETE FROM {table} WHERE id = ?", (key,)).rowcount == 0:
        raise NotFound(f"no {what} {key!r}")


class DirectoryQueries:
    """Departments, agents, tokens and configuration changes of the store contract."""

    # -- departments and agents ---------------------------------------------------------------

    async def save_department(self: _Backend, d: Department) -> None:
        """Insert or replace a department's settings."""
        await self.write(
            lambda conn: conn.execute(
                "INSERT INTO departments (id, name, chat_enabled, routing, offer_window,"
                " queue_timeout, queue_limit, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                " chat_enabled = excluded.chat_enabled, routing = excluded.routing,"
                " offer_window = excluded.offer_window, queue_timeout = excluded.queue_timeout,"
                " queue_limit = excluded.queue_limit, options = excluded.options",
                (
                    d.id,
                    d.name,
                    int(d.chat_enabled),
                    d.routing.value,
                    d.offer_window,
                    d.queue_timeout,
                    d.queue_limit,
                    rr.options_json(d),
                ),
            )
        )

    async def departments(self: _Backend) -> list[Department]:
        """Every department, by id."""

        def select(conn: Connection) -> list[Department]:
            rows = conn.execute(
                "SELECT id, name, chat_enabled, routing, offer_window, queue_timeout, queue_limit,"
                " options FROM departments ORDER BY id"
            )
            return [
                rr.with_options(
                    Department(
                        id=row[0],
                        name=row[1],
                        chat_enabled=bool(row[2]),
                        routing=RoutingMode(row[3]),
                        offer_window=row[4],
                        queue_timeout=row[5],
                        queue_limit=row[6],
                    ),
                    row[7],
                )
                for row in rows
            ]

        return await self.read(select)

    async def save_agent(self: _Backend, a: Agent) -> None:
        """Insert or replace an agent's settings, departments, status and ringtone."""
        await self.write(lambda conn: _upsert_agent(conn, a))

    async def agents(self: _Backend) -> list[Agent]:
        """Every agent, by id."""
        return await self.read(_select_agents)

    async def remove_agent(self: _Backend, agent_id: str) -> None:
        """Delete an agent; ``NotFound`` if there is none."""
        await self.write(lambda conn: _delete(conn, "agents", agent_id, "agent"))

    # -- access tokens (hashes only) ----------------------------------------------------------

    async def save_token(
        self: _Backend,
        *,
        token_hash: str,
        role: str,
        subject: str,
        created_at: float,
        departments: Sequence[str] = (),
    ) -> None:
        """Store a token's hash with its role, subject and departments (a supervisor's scope);
        ``StoreError`` if the hash exists."""

        def insert(conn: Connection) -> None:
            cursor = conn.execute(
                "INSERT INTO tokens (token_hash, role, subject, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (token_hash) DO NOTHING",
                (token_hash, role, subject, created_at),
            )
            if cursor.rowcount == 0:
                raise StoreError("that token is already stored", code="token_exists")
            conn.executemany(
                "INSERT INTO token_departments (token_hash, department) VALUES (?, ?)",
                [(token_hash, d) for d in dict.fromkeys(departments)],
            )

        await self.write(insert)

    async def token_departments(self: _Backend, token_hash: str) -> tuple[str, ...]:
        """The departments stored with the token with that hash, by id (none: empty)."""

        def select(conn: Connection) -> tuple[str, ...]:
            rows = conn.execute(
                "SELECT department FROM token_departments WHERE token_hash = ? ORDER BY department",
                (token_hash,),
            )
            return tuple(row[0] for row in rows)

        return await self.read(select)

    async def token(self: _Backend, token_hash: str) -> tuple[str, str] | None:
        """``(role, subject)`` of the token with that hash, or None."""

        def select(conn: Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT role, subject FROM tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            return None if row is None else (row[0], row[1])

        return await self.read(select)

    async def revoke_tokens(self: _Backend, *, subject: str) -> int:
        """Delete every token of ``subject``; returns how many there were."""
        return await self.write(
            lambda conn: conn.execute("DELETE FROM tokens WHERE subject = ?", (subject,)).rowcount
        )

    async def count_tokens(self: _Backend, *, role: str) -> int:
        """How many tokens have that role."""

        def count(conn: Connection) -> int:
            (n,) = conn.execute("SELECT count(*) FROM tokens WHERE role = ?", (role,)).fetchone()
            return int(n)

        return await self.read(count)

    # -- changes made outside the daemon -------------------------------------------------------

    async def note_config_change(self: _Backend) -> None:
        """Bump the configuration counter, committed (see ``config_version``)."""

        def bump(conn: Connection) -> None:
            conn.execute("UPDATE config_changes SET version = version + 1 WHERE id = 1")

        await self.write(bump)

    async def config_version(self: _Backend) -> int:
        """A counter that grows whenever a command changed departments, agents or canned messages
        in the store directly; a running daemon compares it to reload what changed."""

        def read(conn: Connection) -> int:
            (version,) = conn.execute("SELECT version FROM config_changes WHERE id = 1").fetchone()
            return int(version)

        return await self.read(read)
