"""The audit log's part of the ``helpline`` command: ``helpline audit``, and recording what the
other commands change (actor ``cli``).

``helpline audit`` lists the audit log newest first (the ``audit_list`` request of SPEC.md section
6.4 on the server host), filtered by ``--since``, ``--actor`` and ``--action``, at most
``--limit`` entries, as a table or, with ``--json``, one JSON object per line shaped like the
Audit entry record.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from engine import AUDIT_ACTIONS, AuditEntry, Store

from ..wire.records import audit_record
from .common import CommandError, with_store

__all__ = ["CLI_ACTOR", "add_audit_command", "format_audit", "record", "run_audit"]

CLI_ACTOR: Final = "cli"


async def record(
    store: Store,
    action: str,
    target: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Write one change made by the command line to the audit log."""
    await store.record_audit(
        AuditEntry(
            at=time.time(),
            actor=CLI_ACTOR,
            action=action,
            target=target,
            before=before,
            after=after,
        )
    )


def add_audit_command(
    commands: Any,
    db_option: Callable[[argparse.ArgumentParser], None],
    parse_time: Callable[[str], float],
    run: Callable[[argparse.Namespace], int],
) -> None:
    """The ``audit`` command's parser."""
    audit = commands.add_parser(
        "audit",
        help="list the audit log",
        description=(
            "List what admins, supervisors and the command line did, newest first: changes to "
            "departments, agents, tokens and canned messages, and supervisors' monitor, whisper, "
            "barge and reassign, with the state before and after."
        ),
    )
    audit.add_argument("--since", type=parse_time, metavar="TIME", help="only entries from TIME")
    audit.add_argument(
        "--actor", help="only this actor's: admin:NAME, supervisor:NAME, or cli (this command)"
    )
    audit.add_argument("--action", choices=AUDIT_ACTIONS, help="only this action")
    audit.add_argument(
        "--limit", type=int, default=100, help="at most this many entries (1..1000, default 100)"
    )
    audit.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of a table"
    )
    db_option(audit)
    audit.set_defaults(run=run)


def format_audit(entries: Sequence[AuditEntry], *, as_json: bool) -> str:
    """The entries as JSON lines, or as a table of time, actor, action, target and change."""
    if as_json:
        return "".join(json.dumps(audit_record(e), ensure_ascii=False) + "\n" for e in entries)
    if not entries:
        return "No audit entries.\n"
    rows = [("time", "actor", "action", "target", "change")]
    for e in entries:
        when = datetime.datetime.fromtimestamp(e.at, datetime.UTC).isoformat(timespec="seconds")
        rows.append((when.replace("+00:00", "Z"), e.actor, e.action, e.target, _change(e)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        + "\n"
        for row in rows
    )


def _change(entry: AuditEntry) -> str:
    def show(state: Mapping[str, Any] | None) -> str:
        return "-" if state is None else json.dumps(state, ensure_ascii=False, sort_keys=True)

    if entry.before is None and entry.after is None:
        return ""
    return f"{show(entry.before)} -> {show(entry.after)}"


def run_audit(args: argparse.Namespace) -> int:
    """``helpline audit``: print the entries of the audit log that match."""
    if not 1 <= args.limit <= 1000:
        raise CommandError("--limit must be 1..1000")

    async def job(store: Store) -> None:
        entries = await store.audit(
            since=args.since, actor=args.actor, action=args.action, limit=args.limit
        )
        print(format_audit(entries, as_json=args.json), end="")

    return with_store(args, job)
