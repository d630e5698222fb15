"""Run a real ``helpline serve`` process: start it, find its URL, stop it with a signal.

Used by the crash bench and by the end-to-end tests.

The daemon is started with ``--port 0`` on a fresh database; the two lines it prints (the admin
token on first start, then ``helpline listening on ws://...``) are read from its standard output.
A watchdog kills a daemon that does not get ready in time, so a broken start fails the test
instead of hanging it. Logs go to a file beside the database, for the post-mortem.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

START_TIMEOUT: Final = 20.0
STOP_TIMEOUT: Final = 20.0
URL_PREFIX: Final = "helpline listening on "
TOKEN_PREFIX: Final = "helpline admin token (shown once): "


def helpline(*args: str) -> list[str]:
    """The command line that runs ``helpline`` with ``args`` in this interpreter."""
    return [sys.executable, "-m", "protocol.cli", *args]


@dataclass
class Daemon:
    """A running daemon process."""

    process: subprocess.Popen[str]
    url: str
    admin_token: str | None
    db: Path
    log: Path

    def stop(self, signum: int | None = signal.SIGTERM) -> int:
        """Send ``signum`` (unless None) and wait for the process to exit; returns its status."""
        if signum is not None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(STOP_TIMEOUT)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_daemon(root: Path, *extra: str, db: Path | None = None) -> Daemon:
    """Start ``helpline serve --port 0`` with its database (and log) under ``root``."""
    db = db or root / "helpline.db"
    log = root / "daemon.log"
    with log.open("a") as log_file:
        process = subprocess.Popen(
            helpline("serve", "--port", "0", "--db", str(db), "--log-format", "json", *extra),
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    watchdog = threading.Timer(START_TIMEOUT, process.kill)
    watchdog.start()
    token = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(TOKEN_PREFIX):
                token = line[len(TOKEN_PREFIX) :].strip()
            elif line.startswith(URL_PREFIX):
                return Daemon(process, line[len(URL_PREFIX) :].strip(), token, db, log)
    finally:
        watchdog.cancel()
    process.kill()
    process.wait()
    raise RuntimeError(f"the daemon did not start:\n{log.read_text()}")
