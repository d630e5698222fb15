"""``helpline nodes``: the nodes of a desk shared by several (README: Running several nodes).

One line per node that joined: its name, advertised URL, whether it holds the routing lease (and
so every department) or relays to the holder, when it was last seen (database clock) and how many
client connections it has. A node not seen for longer than the lease was killed or cut off; its
row stays until a node of that name starts again. The line above says who holds the lease, at
which epoch, and when it expires.
"""

from __future__ import annotations

import argparse
from typing import Any

import psycopg

from engine import lease, parse_store_url

from .common import EXIT_OK, CommandError, existing_db_option

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    """Add ``helpline nodes`` to ``commands``."""
    nodes = commands.add_parser(
        "nodes",
        help="list the nodes of a desk on PostgreSQL",
        description=(
            "List the nodes that run one desk on a PostgreSQL store (helpline serve --node): "
            "which node holds the routing lease and so runs every department, the lease's "
            "epoch and expiry, when each node was last seen and its client connections."
        ),
    )
    existing_db_option(nodes)
    nodes.set_defaults(run=_nodes)


def _read(url: str) -> tuple[lease.Holder, list[lease.NodeRow], list[str]] | None:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        found = conn.execute("SELECT to_regclass('cluster_nodes') IS NOT NULL").fetchone()
        if not found or not found[0]:
            return None
        departments = [r[0] for r in conn.execute("SELECT id FROM departments ORDER BY id")]
        return lease.holder(conn), lease.nodes(conn), departments


def _nodes(args: argparse.Namespace) -> int:
    where = parse_store_url(args.db)
    if where.kind != "postgresql":
        raise CommandError("several nodes share a PostgreSQL store; pass --store postgresql://...")
    try:
        found = _read(where.target)
    except psycopg.Error as exc:
        raise CommandError(f"cannot read the PostgreSQL store: {exc}") from exc
    if found is None or not found[1]:
        print("no node has joined this store (helpline serve --node NAME)")
        return EXIT_OK
    holder, rows, departments = found
    if holder.name is None:
        print("lease: never taken")
    else:
        state = (
            f"expires in {holder.expires_in:.1f} s"
            if holder.expires_in >= 0
            else f"expired {-holder.expires_in:.1f} s ago"
        )
        print(f"lease: held by {holder.name}, epoch {holder.epoch}, {state}")
    table = [("NODE", "URL", "DEPARTMENTS", "SCHEMA", "SEEN", "CONNECTIONS")]
    for row in rows:
        holds = row.name == holder.name and holder.expires_in >= 0
        table.append(
            (
                row.name,
                row.url,
                ",".join(departments) if holds else "-",
                str(row.schema_version),
                f"{row.seen_ago:.1f} s ago",
                str(row.connections),
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())
    return EXIT_OK
