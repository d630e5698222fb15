"""Several nodes: ``helpline serve --store postgresql://... --node NAME``, one node of one desk.

Theory of operation
-------------------
Every node listens and accepts any client. One node at a time holds the desk's routing lease
(``engine.lease``) and runs the engine; the others run none and relay each client connection,
byte for byte, to the holder's advertised URL (``relay.py``), so a client on any node sees the
whole desk. Followers keep no state of their own, so they need no notifications from the
database: everything the desk knows is in the holder's engine and the store.

:func:`run_node` goes through these steps:

1. check the cluster before touching the schema: a live node (seen within the lease time) with
   another schema version refuses this one (``schema_mismatch``); then migrate, join the node
   table, listen, and print ``helpline listening on ws://HOST:PORT``;
2. **follow**: every ``renew`` seconds mark this node seen (with its connection count), read who
   holds the lease and where it listens, and try to take the lease (it is free, or expired);
3. **lead**, once the lease is taken at epoch E: open the engine on the store with the fence at
   E (every write transaction checks the epoch, in the same transaction), which restores the
   live chats, offers, queues and deadlines from the journal; serve the clients that connect from
   then on, issue the first admin token if there is none, follow the command line's changes,
   deliver webhooks, and renew the lease every ``renew`` seconds;
4. **step down** when the lease is lost: a renewal matches no row, a write was refused with
   ``lease_lost``, or renewals kept failing for the lease time (another node may have taken it).
   Close every client with 1012 (they reconnect, to this node or another, and resume), leave the
   engine without ending any chat (``end_chats_on_exit=False``), and follow again;
5. **stop** on SIGINT or SIGTERM: a holder hands the desk over the same way and then releases the
   lease, so another node takes it at its next look rather than after the lease time; every
   node closes its clients and leaves the node table.

A holder killed outright leaves its lease to expire: within ``lease + renew`` seconds another
node takes it (epoch + 1) and restores the desk from the store.

``/nodes`` (``http.py``) on the holder lists its advertised URL, then those of the other nodes
seen within the lease time, by name; a follower relays the request to the holder like any other.
The list is read from the node table at most once every ``NODES_CACHE`` seconds.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
from dataclasses import dataclass
from typing import Any, Final, TextIO

import psycopg
import structlog
import trio

from engine import Engine, StoreError, exclusive_use, lease, open_engine, parse_store_url
from engine.store.migrate import latest, migrate
from engine.store.postgres import MIGRATION_LOCK, PgConnection

from ..wire.frames import Role
from .auth import ADMIN_NAME, issue_token
from .daemon import (
    NEW_TOKEN_HINT,
    RELOAD_INTERVAL,
    STOP_SIGNALS,
    ChangeFollower,
    DaemonError,
    _tune_gc,
    seed_canned,
)
from .gateway import Gateway
from .http import HttpRequest, nodes_route
from .relay import relay
from .settings import DaemonConfig
from .webhooks import run_deliverer

__all__ = ["HANDOVER_REASON", "NodeSettings", "run_node"]

log = structlog.get_logger("helpline.node")

HANDOVER_REASON: Final = "this node hands the desk over; reconnect"
DB_TIMEOUT: Final = 10.0
NODES_CACHE: Final = 1.0  # seconds a /nodes answer is reused


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSettings:
    """A node's name, the URL other nodes relay to (default: where it listens), and the lease:
    how long it lasts on the database's clock and how often it is renewed (and looked at)."""

    name: str
    advertise: str | None = None
    lease: float = 5.0
    renew: float = 1.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a node needs a name")
        if not 0 < self.renew < self.lease:
            raise ValueError("the renewal interval must be shorter than the lease")


class _Db:
    """The node's own connection for the lease and the node table, used from one task at a
    time; a failure closes it and the next call connects again."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = trio.Lock()

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            with trio.fail_after(DB_TIMEOUT):
                return await trio.to_thread.run_sync(
                    self._call, fn, args, kwargs, abandon_on_cancel=True
                )

    def _call(self, fn: Any, args: Any, kwargs: Any) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        try:
            return fn(self._conn, *args, **kwargs)
        except psycopg.Error:
            self._conn.close()
            self._conn = None
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _check_and_migrate(conn: psycopg.Connection[Any], name: str, live_within: float) -> int:
    """Refuse a cluster of another schema version, then migrate; returns the version."""
    version = latest("postgresql")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        exists = conn.execute("SELECT to_regclass('cluster_nodes') IS NOT NULL").fetchone()
        if exists and exists[0]:
            other = conn.execute(
                "SELECT name, schema_version FROM cluster_nodes WHERE schema_version <> %s"
                " AND seen_at > now() - make_interval(secs => %s) AND name <> %s LIMIT 1",
                (version, live_within, name),
            ).fetchone()
            if other is not None:
                raise StoreError(
                    f"node {other[0]} runs schema version {other[1]} and this helpline "
                    f"{version}; run one version of helpline on every node of a cluster",
                    code=lease.SCHEMA_MISMATCH,
                )
        migrate(PgConnection(conn), "postgresql")
    return version


class Node:
    """One node (see the module docstring)."""

    def __init__(self, config: DaemonConfig, db: str, settings: NodeSettings, out: TextIO):
        self.config = config
        self.db = db
        self.settings = settings
        self.out = out
        self.instance = secrets.token_hex(8)
        self.url = ""
        self.gateway: Gateway | None = None
        self.holder: lease.Holder | None = None
        self.stopping = trio.Event()
        self._relays: set[trio.CancelScope] = set()
        self._db = _Db(parse_store_url(db).target)
        self._listed: tuple[float, list[str]] | None = None  # /nodes: (good until, urls)
        self._listing = trio.Lock()

    # -- clients -------------------------------------------------------------------------------

    async def handle_stream(self, stream: trio.SocketStream) -> None:
        """A client: served here while this node holds the lease, else relayed to the holder."""
        gateway = self.gateway
        if gateway is not None and await gateway.adopt(stream):
            return
        holder = self.holder
        upstream = holder.url if holder and holder.url and holder.url != self.url else None
        with trio.CancelScope() as scope:
            self._relays.add(scope)
            try:
                await relay(
                    stream,
                    _peer(stream),
                    upstream,
                    holder.secret if holder else "",
                    self.config.server,
                )
            finally:
                self._relays.discard(scope)

    def connections(self) -> int:
        gateway = self.gateway
        served = len(gateway.registry.connections) if gateway is not None else 0
        return served + len(self._relays)

    def close_relays(self) -> None:
        for scope in list(self._relays):
            scope.cancel()

    async def node_urls(self, request: HttpRequest) -> list[str]:
        """``/nodes``: this node's URL, then the other live nodes' (see the module docstring);
        on a database error the last list read, or this node alone."""
        async with self._listing:
            now = trio.current_time()
            if self._listed is not None and now < self._listed[0]:
                return self._listed[1]
            try:
                rows: list[lease.NodeRow] = await self._db.run(lease.nodes)
            except (psycopg.Error, trio.TooSlowError) as exc:
                log.warning("node_list_failed", error=str(exc))
                return self._listed[1] if self._listed else [self.url]
            live = self.settings.lease
            others = [r.url for r in rows if r.seen_ago <= live and r.url != self.url]
            self._listed = (now + NODES_CACHE, [self.url, *others])
            return self._listed[1]

    # -- the lease -----------------------------------------------------------------------------

    async def look(self) -> int | None:
        """Mark this node seen, read the holder, try to take the lease: its epoch if taken."""
        s = self.settings
        await self._db.run(lease.heartbeat, self.instance, self.connections())
        epoch: int | None = await self._db.run(lease.take, s.name, self.instance, s.lease)
        self.holder = await self._db.run(lease.holder)
        return epoch

    async def follow(self) -> int | None:
        """Look every ``renew`` seconds until the lease is taken (its epoch) or the node stops
        (None)."""
        while not self.stopping.is_set():
            try:
                epoch = await self.look()
            except (psycopg.Error, StoreError, trio.TooSlowError) as exc:
                log.warning("node_look_failed", error=str(exc))
            else:
                if epoch is not None:
                    return epoch
            with trio.move_on_after(self.settings.renew):
                await self.stopping.wait()
        return None

    async def keep(self, epoch: int, lost: trio.Event) -> None:
        """Renew every ``renew`` seconds; set ``lost`` when the lease is (or may be) lost."""
        s = self.settings
        good_until = trio.current_time() + s.lease
        while not lost.is_set():
            await trio.sleep(s.renew)
            try:
                await self._db.run(lease.heartbeat, self.instance, self.connections())
                if not await self._db.run(lease.renew, self.instance, epoch, s.lease):
                    log.warning("lease_lost", epoch=epoch)
                    lost.set()
                    return
                self.holder = await self._db.run(lease.holder)
                good_until = trio.current_time() + s.lease
            except (psycopg.Error, StoreError, trio.TooSlowError) as exc:
                log.warning("lease_renewal_failed", error=str(exc))
                if trio.current_time() + s.renew >= good_until:
                    lost.set()

    # -- holding the desk ----------------------------------------------------------------------

    async def lead(self, epoch: int) -> None:
        """Run the engine under the fence at ``epoch`` until the lease is lost or the node
        stops (see the module docstring)."""
        lost = trio.Event()
        token = trio.lowlevel.current_trio_token()
        check = lease.fence(epoch)

        def fenced(raw: Any) -> None:
            try:
                check(raw)
            except StoreError:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(lost.set)  # step down at once
                raise

        log.info("lease_taken", node=self.settings.name, epoch=epoch)
        print(
            f"helpline node {self.settings.name} holds the desk (epoch {epoch})",
            file=self.out,
            flush=True,
        )
        try:
            async with open_engine(
                self.config.engine, db=self.db, end_chats_on_exit=False, fence=fenced
            ) as engine:
                await seed_canned(engine, self.config.canned)
                await self._serve(engine, epoch, lost)
        except (StoreError, ExceptionGroup) as exc:  # the lease lost, or the database gone
            if isinstance(exc, ExceptionGroup):
                if exc.subgroup(lambda e: not isinstance(e, StoreError | ExceptionGroup)):
                    raise
            log.warning("engine_stopped", epoch=epoch, error=str(exc))
        finally:
            self.gateway = None
        if self.stopping.is_set():
            try:
                await self._db.run(lease.release, self.instance, epoch)
            except (psycopg.Error, trio.TooSlowError) as exc:
                log.warning("lease_release_failed", error=str(exc))
        log.info("stepped_down", node=self.settings.name, epoch=epoch)

    async def _serve(self, engine: Engine, epoch: int, lost: trio.Event) -> None:
        gateway = Gateway(engine, self.config.server)
        gateway.relay_secret = self.holder.secret if self.holder else ""
        nodes_route(gateway.routes, self.node_urls)
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve_adopted)
            nursery.start_soon(self.keep, epoch, lost)
            self.close_relays()  # they went to a holder that is gone
            self.gateway = gateway
            if await engine.store.count_tokens(role=Role.ADMIN.value) == 0:
                token = await issue_token(engine.store, Role.ADMIN, ADMIN_NAME, now=engine.now())
                print(f"helpline admin token (shown once): {token}", file=self.out, flush=True)
                log.info("admin_token_created", admin=ADMIN_NAME, hint=NEW_TOKEN_HINT)
            follower = ChangeFollower(engine, gateway.registry)
            following = await nursery.start(follower.run, RELOAD_INTERVAL)
            delivering = await nursery.start(run_deliverer, engine, self.config.webhooks)
            async with trio.open_nursery() as waiting:
                waiting.start_soon(_set_then_cancel, lost, waiting.cancel_scope)
                waiting.start_soon(_set_then_cancel, self.stopping, waiting.cancel_scope)
            self.gateway = None
            following.cancel()
            delivering.cancel()
            gateway.shutdown(HANDOVER_REASON, 1012)
            lost.set()  # ends the renewals

    # -- the whole life ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        s = self.settings
        server = self.config.server
        try:
            await self._db.run(_check_and_migrate, s.name, s.lease)
        except psycopg.Error as exc:
            raise DaemonError(f"cannot open the PostgreSQL store: {exc}") from exc
        listeners = await trio.open_tcp_listeners(server.port, host=server.host)
        host, port = listeners[0].socket.getsockname()[:2]
        self.url = f"ws://{f'[{host}]' if ':' in host else host}:{port}"
        advertise = s.advertise or self.url
        await self._db.run(
            lease.join,
            s.name,
            self.instance,
            advertise,
            latest("postgresql"),
            live_within=s.lease,
        )
        self.url = advertise
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self.handle_stream, listeners)
            print(f"helpline listening on {self.url}", file=self.out, flush=True)
            log.info("node_joined", node=s.name, url=advertise)
            task_status.started()
            _tune_gc()
            while (epoch := await self.follow()) is not None:
                await self.lead(epoch)
            nursery.cancel_scope.cancel()
            self.close_relays()
        try:
            await self._db.run(lease.leave, self.instance)
        except (psycopg.Error, trio.TooSlowError) as exc:
            log.warning("node_leave_failed", error=str(exc))
        self._db.close()


async def _set_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _peer(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "unknown"
    return f"{host}:{port}"


async def run_node(
    config: DaemonConfig, *, db: str, node: NodeSettings, out: TextIO | None = None
) -> None:
    """Run one node until SIGINT or SIGTERM (see the module docstring)."""
    out = out or sys.stdout
    if parse_store_url(db).kind != "postgresql":
        raise DaemonError("--node needs a PostgreSQL store (--store postgresql://...)")
    me = Node(config, db, node, out)
    refused: StoreError | None = None
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:

        async def stop_on_signal() -> None:
            async for signum in signals:
                log.info("signal", signal=signal.Signals(signum).name)
                me.stopping.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_signal)
            try:
                async with exclusive_use(db, shared=True):
                    await me.run()
            except StoreError as exc:
                refused = exc
            finally:
                nursery.cancel_scope.cancel()
    if refused is not None:
        raise DaemonError(str(refused))
    log.info("node_stopped", node=node.name)
