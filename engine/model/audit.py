"""The audit log's record: who did what to which thing, when, and the state before and after."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["AUDIT_ACTIONS", "AuditEntry"]

AUDIT_ACTIONS: Final = (
    "department_added",
    "department_changed",
    "agent_added",
    "agent_changed",
    "agent_removed",
    "token_issued",
    "token_revoked",
    "canned_changed",
    "monitor",
    "whisper",
    "barge",
    "reassign",
    "tag",
)
"""The actions recorded: changes by admins and the command line, and supervisors' acts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One recorded action: `actor` ("admin:NAME", "supervisor:NAME" or "cli") did `action` to
    `target` at `at`; `before` and `after` are the thing's state as JSON-ready maps (None when
    there was none, or nothing changed in it)."""

    at: float
    actor: str
    action: str
    target: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    id: int | None = None  # assigned by the store
