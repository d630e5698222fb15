"""The README's daemon script runs against a real daemon, and the commands it lists read what the
chats left behind while the daemon still runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from bench._daemonproc import helpline, start_daemon

README = Path(__file__).parent.parent / "README.md"


def daemon_script() -> str:
    """The Python block of the README's section "The daemon"."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## The daemon\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert section, "README.md has no section 'The daemon'"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.DOTALL)
    assert 1 == len(blocks)
    return str(blocks[0])


def test_readme_lists_every_command() -> None:
    """Each command of the command line has its line in the README's daemon section."""
    text = README.read_text(encoding="utf-8")
    for command in ("serve", "agent", "department", "token", "tickets export", "ratings"):
        assert f"- `helpline {command}" in text, command


def test_daemon_script_runs(tmp_path: Path) -> None:
    """The script talks through a daemon twice; export and ratings read its database meanwhile."""
    daemon = start_daemon(tmp_path)
    try:
        assert daemon.admin_token is not None
        env = {**os.environ, "HELPLINE_URL": daemon.url, "HELPLINE_ADMIN_TOKEN": daemon.admin_token}
        for run in (1, 2):  # the second run finds ann added already
            done = subprocess.run(
                [sys.executable, "-c", daemon_script()],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
                check=False,
            )
            assert 0 == done.returncode, done.stderr
            assert ["Mina reads: Hi Mina, yes we do.", f"ticket {run}"] == done.stdout.splitlines()

        export = subprocess.run(
            helpline("tickets", "export", "--db", str(daemon.db)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (0, "") == (export.returncode, export.stderr)
        tickets = [json.loads(line) for line in export.stdout.splitlines()]
        assert [2, 1] == [t["id"] for t in tickets]
        assert [
            ("message", "visitor", "Hello!"),
            ("message", "ann", "Hi Mina, yes we do."),
        ] == [(e["kind"], e["author"], e["text"]) for e in tickets[0]["entries"][1:3]]
        ratings = subprocess.run(
            helpline("ratings", "--db", str(daemon.db)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (0, "") == (ratings.returncode, ratings.stderr)
        assert ratings.stdout.endswith("\nNo rated chats.\n")
    finally:
        assert 0 == daemon.stop(signal.SIGTERM)
