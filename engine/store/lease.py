"""Several nodes on one PostgreSQL store: the routing lease, its fence, and the node table.

Theory of operation
===================
The desk has one routing lease (the row of ``cluster_lease``): the node that holds it runs the
engine for every department; the other nodes run none and relay their clients to it. Times are
the database's (``now()``), so the nodes' clocks do not matter.

- **Taking** (:func:`take`) is one UPDATE that succeeds when the row is free, expired, or already
  this process's; the epoch grows when the holder changes, never otherwise. A node is one process
  (``instance``, random per start): a node restarted under the same name takes a new epoch.
- **Renewing** (:func:`renew`) pushes the expiry on while holder and epoch are still this
  process's; a renewal that matches no row means the lease was lost.
- **Fencing** (:func:`fence`): the holder's store runs a check in every write transaction, just
  before its COMMIT (``before_commit``), ``SELECT epoch ... FOR SHARE``, and the transaction
  fails with ``StoreError(code="lease_lost")`` unless the epoch is the one the lease was taken
  under. The share lock makes a taker's UPDATE wait for the transaction to end, so each
  committed write of the old holder comes before the change of hands, and none after it: a
  paused node that wakes up after losing the lease can never write under its old epoch. (Expiry
  alone does not refuse: until another node takes the lease, nobody else writes.)
- **Releasing** (:func:`release`) on a clean stop expires the lease at once, so another node
  takes over at its next look instead of after the lease time.

The node table (``cluster_nodes``) lists who joined, with the advertised URL (where followers
relay to), the schema version, the times it started and was last seen, and its connection count.
A node whose schema version differs from that of another live node is refused (:func:`join`).

Every function here takes a psycopg connection in autocommit mode and is blocking: run it in a
thread. Command-line writes from other processes are not fenced.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from .writer import StoreError

__all__ = [
    "LEASE_LOST",
    "SCHEMA_MISMATCH",
    "Holder",
    "NodeRow",
    "fence",
    "heartbeat",
    "holder",
    "join",
    "leave",
    "nodes",
    "release",
    "renew",
    "sign_peer",
    "take",
    "verify_peer",
]

LEASE_LOST: Final = "lease_lost"
SCHEMA_MISMATCH: Final = "schema_mismatch"

_TAKE: Final = """
UPDATE cluster_lease
   SET epoch = CASE WHEN instance IS NOT DISTINCT FROM %(instance)s THEN epoch ELSE epoch + 1 END,
       holder = %(name)s, instance = %(instance)s,
       expires_at = now() + make_interval(secs => %(seconds)s)
 WHERE id = 1 AND (instance = %(instance)s OR instance IS NULL OR expires_at < now())
RETURNING epoch
"""
_RENEW: Final = """
UPDATE cluster_lease SET expires_at = now() + make_interval(secs => %(seconds)s)
 WHERE id = 1 AND instance = %(instance)s AND epoch = %(epoch)s
RETURNING epoch
"""
_RELEASE: Final = """
UPDATE cluster_lease SET expires_at = now() - interval '1 second'
 WHERE id = 1 AND instance = %(instance)s AND epoch = %(epoch)s
"""
_FENCE: Final = "SELECT epoch FROM cluster_lease WHERE id = 1 FOR SHARE"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds the lease: node name, its advertised URL, epoch, seconds until it expires."""

    name: str | None
    url: str | None
    epoch: int
    expires_in: float
    secret: str


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One row of ``cluster_nodes``, with how long ago it was seen (database clock)."""

    name: str
    url: str
    schema_version: int
    started_at: datetime
    seen_at: datetime
    seen_ago: float
    connections: int


def take(conn: Any, name: str, instance: str, seconds: float) -> int | None:
    """Take (or keep) the lease for ``seconds``; its epoch, or None while another holds it."""
    row = conn.execute(_TAKE, {"name": name, "instance": instance, "seconds": seconds}).fetchone()
    return None if row is None else int(row[0])


def renew(conn: Any, instance: str, epoch: int, seconds: float) -> bool:
    """Push the expiry on; False if this process no longer holds the lease at ``epoch``."""
    row = conn.execute(
        _RENEW, {"instance": instance, "epoch": epoch, "seconds": seconds}
    ).fetchone()
    return row is not None


def release(conn: Any, instance: str, epoch: int) -> None:
    """Let the lease go at once (a clean stop), if this process still holds it."""
    conn.execute(_RELEASE, {"instance": instance, "epoch": epoch})


def fence(epoch: int) -> Any:
    """The check a store runs in each write transaction before COMMIT (see the module
    docstring)."""

    def check(conn: Any) -> None:
        row = conn.execute(_FENCE).fetchone()
        current = None if row is None else int(row[0])
        if current != epoch:
            raise StoreError(
                f"this node lost the routing lease (epoch {epoch}, now {current}); "
                "the write is refused",
                code=LEASE_LOST,
            )

    return check


def holder(conn: Any) -> Holder:
    """The lease row, with the holder's advertised URL when it is a known node."""
    row = conn.execute(
        "SELECT l.holder, n.url, l.epoch, extract(epoch FROM l.expires_at - now()), l.secret"
        " FROM cluster_lease l LEFT JOIN cluster_nodes n"
        " ON n.name = l.holder AND n.instance = l.instance WHERE l.id = 1"
    ).fetchone()
    return Holder(row[0], row[1], int(row[2]), float(row[3]), str(row[4]))


def join(
    conn: Any, name: str, instance: str, url: str, version: int, *, live_within: float
) -> None:
    """Add this node to the table (replacing an earlier process of the same name).

    ``StoreError(code="schema_mismatch")`` if a node seen in the last ``live_within`` seconds
    runs another schema version; ``StoreError(code="node_taken")`` if a live node of another
    process already has this name.
    """
    with conn.transaction():
        conn.execute("LOCK TABLE cluster_nodes IN EXCLUSIVE MODE")
        live = conn.execute(
            "SELECT name, instance, schema_version FROM cluster_nodes"
            " WHERE seen_at > now() - make_interval(secs => %s)",
            (live_within,),
        ).fetchall()
        for other, other_instance, other_version in live:
            if other_version != version:
                raise StoreError(
                    f"node {other} runs schema version {other_version} and this helpline "
                    f"{version}; run one version of helpline on every node of a cluster",
                    code=SCHEMA_MISMATCH,
                )
            if other == name and other_instance != instance:
                raise StoreError(
                    f"a node named {name} is running; give this one another --node name",
                    code="node_taken",
                )
        conn.execute(
            "INSERT INTO cluster_nodes"
            " (name, instance, url, schema_version, started_at, seen_at, connections)"
            " VALUES (%s, %s, %s, %s, now(), now(), 0)"
            " ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, url = excluded.url,"
            " schema_version = excluded.schema_version, started_at = now(), seen_at = now(),"
            " connections = 0",
            (name, instance, url, version),
        )


def heartbeat(conn: Any, instance: str, connections: int) -> bool:
    """Mark this node seen now with its connection count; False if its row is gone."""
    row = conn.execute(
        "UPDATE cluster_nodes SET seen_at = now(), connections = %s WHERE instance = %s"
        " RETURNING name",
        (connections, instance),
    ).fetchone()
    return row is not None


def leave(conn: Any, instance: str) -> None:
    """Remove this node's row (a clean stop)."""
    conn.execute("DELETE FROM cluster_nodes WHERE instance = %s", (instance,))


def nodes(conn: Any) -> list[NodeRow]:
    """Every node row, by name."""
    rows = conn.execute(
        "SELECT name, url, schema_version, started_at, seen_at,"
        " extract(epoch FROM now() - seen_at), connections FROM cluster_nodes ORDER BY name"
    ).fetchall()
    return [NodeRow(r[0], r[1], int(r[2]), r[3], r[4], float(r[5]), int(r[6])) for r in rows]


def sign_peer(secret: str, peer: str) -> str:
    """The value of the header a relaying node passes a client's address in: ``peer;mac``."""
    mac = hmac.new(secret.encode(), peer.encode(), "sha256").hexdigest()
    return f"{peer};{mac}"


def verify_peer(secret: str, value: str) -> str | None:
    """The client address in a relay header signed with ``secret``; None if forged or garbled."""
    peer, _, mac = value.rpartition(";")
    if not peer or not secret:
        return None
    expected = hmac.new(secret.encode(), peer.encode(), "sha256").hexdigest()
    return peer if hmac.compare_digest(mac, expected) else None
