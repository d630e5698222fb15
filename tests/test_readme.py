"""The README's embedding example runs as written and prints the chat's transcript."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"
DEMO = Path(__file__).parent.parent / "examples" / "demo.py"


def test_embedding_example_runs() -> None:
    """The first Python block of the README runs in a fresh interpreter and prints a transcript."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks, "README.md has no python example"
    done = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if re.match(r"\d{1,3} ", line)]
    assert lines == [
        "1 joined ann ",
        "2 message visitor Hello!",
        "3 message ann Hi Mina, yes we do.",
        "4 ended system agent_ended",
    ]


def test_demo_runs(tmp_path: Path) -> None:
    """The embedded demo goes through its story and prints one transcript and one missed chat."""
    done = subprocess.run(
        [
            sys.executable,
            str(DEMO),
            str(tmp_path / "d.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    tickets = [line.split() for line in done.stdout.splitlines() if line.startswith("  #")]
    assert [(t[1], t[3]) for t in tickets] == [
        ("transcript", "agent_ended"),
        ("missed", "no_agent_online"),
    ]
