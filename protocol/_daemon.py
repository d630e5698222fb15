"""The daemon: an engine, its gateway on a TCP port, structured logs, and a clean stop on signals.

Theory of operation
-------------------
:func:`run_daemon` is what ``helpline serve`` runs, in this order:

1. open the engine over the SQLite file (``synchronous=FULL``: an acknowledged write survives a
   power cut), which stores the configured departments and agents;
2. on first start (no admin token in the store) issue an admin token and print it once;
3. listen, and print one line ``helpline listening on ws://HOST:PORT`` with the real port (so
   ``--port 0`` works for tests and scripts);
4. wait for SIGINT or SIGTERM; then stop accepting, send every client a ``shutdown`` event and
   close it with 1001 (``Gateway.shutdown``), and leave the engine's block normally, which ends
   every live chat with reason ``shutdown`` and writes its ticket. Nothing is left unaccounted for.

The two printed lines go to ``out`` (standard output); logs go to standard error through structlog,
rendered as JSON lines or for a console (:func:`configure_logging`).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from typing import Final, TextIO

import structlog
import trio

from engine import CannedMessage, Engine, open_engine

from ._auth import ADMIN_NAME, issue_token
from ._frames import Role
from ._gateway import SHUTDOWN_REASON, Gateway
from ._settings import DaemonConfig

__all__ = ["LOG_FORMATS", "configure_logging", "run_daemon"]

log = structlog.get_logger("helpline.daemon")

LOG_FORMATS: Final = ("console", "json")
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


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
            )
            known.add(message.id)


def _tune_gc() -> None:
    """Collect garbage less often: every live chat holds a few dozen small tracked objects, and
    full collections over a large heap stall every chat at once. What exists after start-up (the
    loaded configuration, modules) is frozen out of the collector's way."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def run_daemon(
    config: DaemonConfig, *, db: str | os.PathLike[str], out: TextIO | None = None
) -> None:
    """Run until SIGINT or SIGTERM (see the module docstring)."""
    out = out or sys.stdout
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with open_engine(config.engine, db=db, synchronous="FULL") as engine:
            if await engine.store.count_tokens(role=Role.ADMIN.value) == 0:
                token = await issue_token(engine.store, Role.ADMIN, ADMIN_NAME, now=engine.now())
                print(f"helpline admin token (shown once): {token}", file=out, flush=True)
                log.info("admin_token_created", admin=ADMIN_NAME)
            await seed_canned(engine, config.canned)
            _tune_gc()
            gateway = Gateway(engine, config.server)
            async with trio.open_nursery() as nursery:
                url = await nursery.start(gateway.serve)
                print(f"helpline listening on {url}", file=out, flush=True)
                async for signum in signals:
                    log.info("signal", signal=signal.Signals(signum).name)
                    break
                gateway.shutdown(SHUTDOWN_REASON)
            log.info("gateway_stopped")
    log.info("daemon_stopped", db=os.fspath(db))
