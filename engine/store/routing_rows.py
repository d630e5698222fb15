"""Rows <-> records for the routing settings: a department's options, an agent's skills, a
ticket's tags.

A department's routing options (overflow, silence, skills wait, business hours) live in one JSON
column, `departments.options`, so that an option added later needs no migration; an option a
row does not have takes the Department record's default. An agent's skills are a JSON list in
`agents.skills`. A ticket's tags are rows of `ticket_tags`, in order, indexed by tag.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..model.hours import Hours
from ..model.records import Department

if TYPE_CHECKING:
    from .contract import Connection

__all__ = ["insert_tags", "options_json", "select_tags", "skills_json", "skills_of", "with_options"]

_NUMBERS = ("overflow_wait", "silence_timeout", "skills_wait")


def options_json(d: Department) -> str:
    """The routing options of a department as the `options` column holds them."""
    doc: dict[str, Any] = {name: getattr(d, name) for name in _NUMBERS}
    doc["overflow_queue"] = d.overflow_queue
    doc["overflow_to"] = list(d.overflow_to)
    doc["hours"] = {
        "timezone": d.hours.timezone,
        "weekly": list(d.hours.weekly),
        "holidays": list(d.hours.holidays),
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def with_options(d: Department, text: str) -> Department:
    """`d` with the options of an `options` column (missing ones keep their defaults)."""
    doc = json.loads(text or "{}")
    changes: dict[str, Any] = {n: float(doc[n]) for n in _NUMBERS if n in doc}
    if "overflow_queue" in doc:
        changes["overflow_queue"] = int(doc["overflow_queue"])
    if "overflow_to" in doc:
        changes["overflow_to"] = tuple(doc["overflow_to"])
    hours = doc.get("hours")
    if isinstance(hours, dict):
        changes["hours"] = Hours(
            timezone=str(hours.get("timezone", "UTC")),
            weekly=tuple(hours.get("weekly", ())),
            holidays=tuple(hours.get("holidays", ())),
        )
    return dataclasses.replace(d, **changes)


def skills_json(skills: Sequence[str]) -> str:
    return json.dumps(list(skills), ensure_ascii=False)


def skills_of(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text or "[]"))


def insert_tags(conn: Connection, ticket_id: int, tags: Sequence[str]) -> None:
    conn.executemany(
        "INSERT INTO ticket_tags (ticket_id, position, tag) VALUES (?, ?, ?)",
        [(ticket_id, position, tag) for position, tag in enumerate(tags)],
    )


def select_tags(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The tags of each ticket in `ids` (those with none are left out)."""
    found: dict[int, list[str]] = {}
    marks = ", ".join("?" * len(ids))
    for ticket_id, tag in conn.execute(
        f"SELECT ticket_id, tag FROM ticket_tags WHERE ticket_id IN ({marks})"
        " ORDER BY ticket_id, position",
        list(ids),
    ):
        found.setdefault(ticket_id, []).append(tag)
    return {k: tuple(v) for k, v in found.items()}
