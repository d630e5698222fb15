"""The daemon: an engine, its gateway on a TCP port, structured logs, and a clean stop on signals.

Theory of operation
-------------------
:func:`run_daemon` is what ``helpline serve`` runs, in this order:

1. check the database path: a file in a missing directory is a :class:`DaemonError` (a mistyped
   ``--db``); a missing file is created, and the daemon says so with its full path;
2. open the engine over the SQLite file (``synchronous=FULL``: an acknowledged write survives a
   power cut), which stores the configured departments and agents;
3. listen: a port in use is a :class:`DaemonError` that says so, before anything is printed;
4. once listening, and only then, on first start (no admin token in the store) issue an admin
   token and print it once, so that a daemon that cannot start never shows a token it then loses
   (should it fail later, it says how to issue another: ``helpline token --admin``); then print
   one line ``helpline listening on ws://HOST:PORT`` with the real port (so ``--port 0`` works for
   tests and scripts);
5. follow the command line's changes (below), and deliver the webhooks' outbox (``webhooks.py``,
   with the ``[webhooks]`` settings), until SIGINT or SIGTERM; then stop accepting, send
   every client a ``shutdown`` event and close it with 1001 (``Gateway.shutdown``), and leave the
   engine's block normally, which ends every live chat with reason ``shutdown`` and writes its
   ticket. Nothing is left unaccounted for.

The printed lines go to ``out`` (standard output); logs go to standard error through structlog,
rendered as JSON lines or for a console (:func:`configure_logging`).

Changes made by the command line
--------------------------------
``helpline agent add``, ``department chat`` and the like write the database directly, while the
daemon runs; after each change they call :func:`note_change`, which bumps a counter (one row of
the store's configuration counter). A :class:`ChangeFollower` reads that counter once a second (one
tiny read on a reader connection) and, when it moved, brings the running engine in line with the
database through the engine's own configuration calls, the ones the admin requests use: new or
changed departments (``add_department`` / ``update_department``), new or changed agents
(``add_agent``), removed agents (``remove_agent``, and their connections are closed with 1008),
and the canned messages (loaded again). Agents and departments the engine already has as stored
are left alone, so applying is idempotent. A sign-in for an agent the engine does not know yet
does not wait for the next tick: the follower catches up first (``auth.before_agent_sign_in``),
so an agent added a moment ago signs in at once.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final, TextIO

import structlog
import trio

from engine import (
    Agent,
    CannedDesk,
    CannedMessage,
    Engine,
    EngineError,
    Store,
    StoreError,
    exclusive_use,
    open_engine,
    parse_store_url,
)

from ..wire.frames import Role
from .auth import ADMIN_NAME, before_agent_sign_in, issue_token
from .gateway import SHUTDOWN_REASON, Gateway
from .registry import Registry
from .settings import DaemonConfig
from .webhooks import run_deliverer

__all__ = [
    "LOG_FORMATS",
    "ChangeFollower",
    "DaemonError",
    "configure_logging",
    "note_change",
    "run_daemon",
]

log = structlog.get_logger("helpline.daemon")

LOG_FORMATS: Final = ("console", "json")
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
RELOAD_INTERVAL: Final = 1.0
"""Seconds between two looks at the command line's change counter."""
NEW_TOKEN_HINT: Final = "'helpline token --admin' issues a new admin token at any time"


class DaemonError(Exception):
    """The daemon cannot start as asked; the message says why and what to do."""


def configure_logging(
    fmt: str = "console", *, level: str = "info", file: TextIO | None = None
) -> None:
    """Send structlog's output to ``file`` (standard error) as JSON lines or console lines."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, not {fmt!r}")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        processors.append(structlog.processors.format_exc_info)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=file or sys.stderr),
        cache_logger_on_first_use=False,
    )


async def seed_canned(engine: Engine, messages: tuple[CannedMessage, ...]) -> None:
    """Add the configured canned messages (and their categories) that the store lacks."""
    desk = engine.canned
    categories = {c.id for c in desk.categories()}
    known = {m.id for m in desk.messages()}
    for message in messages:
        if message.category not in categories:
            await desk.add_category(message.category, category_id=message.category)
            categories.add(message.category)
        if message.id not in known:
            await desk.add_message(
                message.text,
                category=message.category,
                department=message.department,
                message_id=message.id,
                title=message.title,
                shortcut=message.shortcut,
                reading=message.reading,
            )
            known.add(message.id)


# -- changes made by the command line ------------------------------------------------------------


async def note_change(store: Store) -> None:
    """Tell a running daemon that departments, agents or canned messages changed in ``store``."""
    await store.note_config_change()


def _settings_of(agent: Agent) -> tuple[object, ...]:
    return (agent.name, agent.departments, agent.capacity, agent.skills)


async def apply_changes(engine: Engine, registry: Registry) -> list[str]:
    """Bring ``engine`` in line with its store's departments, agents and canned messages, through
    the engine's configuration calls; returns what changed (as "agent ann added" and the like)."""
    store = engine.store
    changed: list[str] = []
    for department in await store.departments():
        known = engine.department_record(department.id)
        if known != department:
            await engine.add_department(department)
            changed.append(f"department {department.id} {'added' if known is None else 'changed'}")
    stored = {a.id: a for a in await store.agents()}
    for agent in stored.values():
        known_agent = engine.agent_record(agent.id)
        if known_agent is None or _settings_of(known_agent) != _settings_of(agent):
            await engine.add_agent(agent)
            changed.append(f"agent {agent.id} {'added' if known_agent is None else 'changed'}")
    for agent_id in sorted(set((await engine.inspect()).agents) - set(stored)):
        # The engine removes an agent from the store first, and the command line did already:
        # store it again for the engine to remove (its tokens stay revoked).
        record = engine.agent_record(agent_id)
        if record is not None:
            await store.save_agent(record)
            await engine.remove_agent(agent_id)
        closed = registry.close_agent(agent_id, 1008, "the agent was removed")
        changed.append(f"agent {agent_id} removed ({closed} connections closed)")
    engine.canned = await CannedDesk.open(store, engine.now)
    return changed


class ChangeFollower:
    """Applies the command line's changes to a running engine (see the module docstring)."""

    def __init__(self, engine: Engine, registry: Registry) -> None:
        self._engine = engine
        self._registry = registry
        self._lock = trio.Lock()  # one apply at a time: the engine's add_agent is not atomic
        self._seen: int | None = None

    async def catch_up(self) -> list[str]:
        """Apply what changed since the last look, if the counter moved; returns what changed."""
        async with self._lock:
            version = await self._engine.store.config_version()
            if self._seen is None:
                self._seen = version  # the engine loaded everything from the store at start
                return []
            if version == self._seen:
                return []
            changed = await apply_changes(self._engine, self._registry)
            self._seen = version
        log.info("configuration_reloaded", version=version, changes=changed)
        return changed

    async def before_sign_in(self, agent_id: str) -> None:
        """An agent signs in: catch up first when the engine does not know it (yet)."""
        if self._engine.agent_record(agent_id) is None:
            await self.catch_up()

    async def run(
        self,
        interval: float = RELOAD_INTERVAL,
        *,
        task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Look every ``interval`` seconds until the scope handed to ``task_status`` is
        cancelled."""
        with trio.CancelScope() as scope:
            await self.catch_up()
            before_agent_sign_in(self._engine.store, self.before_sign_in)
            task_status.started(scope)
            try:
                while True:
                    await trio.sleep(interval)
                    try:
                        await self.catch_up()
                    except (StoreError, EngineError) as exc:  # tried again at the next tick
                        log.warning("configuration_reload_failed", error=str(exc))
            finally:
                before_agent_sign_in(self._engine.store, None)


# -- running -------------------------------------------------------------------------------------


def check_db_path(db: str | os.PathLike[str]) -> str | None:
    """None if the database file at ``db`` exists (or ``db`` is a PostgreSQL store), else the full
    path where it will be created; DaemonError if its directory does not exist."""
    where = parse_store_url(db)
    if where.kind != "sqlite":
        return None
    path = Path(where.target)
    if path.exists():
        if path.is_dir():
            raise DaemonError(f"--db {os.fspath(db)} is a directory; name a database file")
        return None
    parent = path.parent
    if not parent.is_dir():
        raise DaemonError(
            f"cannot create the database {os.fspath(db)}: the directory {os.fspath(parent)} "
            "does not exist (is --db mistyped?)"
        )
    return str(path.absolute())


@asynccontextmanager
async def _serving(db: str | os.PathLike[str]) -> AsyncIterator[None]:
    """Hold the store for this daemon (``engine.exclusive_use``); another daemon's is a
    DaemonError."""
    try:
        async with exclusive_use(db):
            yield
    except StoreError as exc:
        if exc.code != "store_in_use":
            raise
        raise DaemonError(str(exc)) from None


async def _listen(nursery: trio.Nursery, gateway: Gateway, config: DaemonConfig) -> str:
    """Start the gateway; its URL once it listens. A port in use is a DaemonError."""
    try:
        url: str = await nursery.start(gateway.serve)
    except OSError as exc:
        where = f"{config.server.host}:{config.server.port}"
        if exc.errno == errno.EADDRINUSE:
            reason = (
                "the port is in use (by another helpline, or another program); stop that one "
                "or pick another port with --port"
            )
        else:
            reason = exc.strerror or str(exc)
        raise DaemonError(f"cannot listen on {where}: {reason}") from exc
    return url


def _tune_gc() -> None:
    """Collect garbage less often: every live chat holds a few dozen small tracked objects, and
    full collections over a large heap stall every chat at once. What exists after start-up (the
    loaded configuration, modules) is frozen out of the collector's way."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def run_daemon(
    config: DaemonConfig,
    *,
    db: str | os.PathLike[str],
    out: TextIO | None = None,
    reload_interval: float = RELOAD_INTERVAL,
) -> None:
    """Run until SIGINT or SIGTERM (see the module docstring)."""
    out = out or sys.stdout
    where = check_db_path(db)
    if where is not None:
        print(f"helpline: creating a new database at {where}", file=out, flush=True)
        log.info("database_created", db=where)
    token_shown = False
    try:
        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async with (
                _serving(db),
                open_engine(config.engine, db=db, synchronous="FULL") as engine,
            ):
                await seed_canned(engine, config.canned)
                _tune_gc()
                gateway = Gateway(engine, config.server)
                async with trio.open_nursery() as nursery:
                    url = await _listen(nursery, gateway, config)
                    if await engine.store.count_tokens(role=Role.ADMIN.value) == 0:
                        token = await issue_token(
                            engine.store, Role.ADMIN, ADMIN_NAME, now=engine.now()
                        )
                        print(f"helpline admin token (shown once): {token}", file=out, flush=True)
                        token_shown = True
                        log.info("admin_token_created", admin=ADMIN_NAME)
                    follower = ChangeFollower(engine, gateway.registry)
                    following = await nursery.start(follower.run, reload_interval)
                    delivering = await nursery.start(run_deliverer, engine, config.webhooks)
                    print(f"helpline listening on {url}", file=out, flush=True)
                    async for signum in signals:
                        log.info("signal", signal=signal.Signals(signum).name)
                        break
                    following.cancel()
                    delivering.cancel()  # what is not delivered stays in the outbox
                    gateway.shutdown(SHUTDOWN_REASON)
                log.info("gateway_stopped")
    except BaseException:
        if token_shown:
            log.error("stopped_after_admin_token", hint=NEW_TOKEN_HINT)
            print(
                f"helpline: the admin token printed above stays valid; {NEW_TOKEN_HINT}",
                file=sys.stderr,
                flush=True,
            )
        raise
    log.info("daemon_stopped", store=str(parse_store_url(db)))
