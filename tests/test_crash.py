"""A real daemon killed with SIGKILL 10 times under load: nothing acknowledged is lost.

The scenario lives in `bench/_crash.py` (the bench runs a longer version of it); here every loss
count must be zero. Time is real (a process is killed); the random moments come from a seed
printed on failure (set HELPLINE_CRASH_SEED to replay one).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Final

import trio

from bench._crash import crash_run

KILLS: Final = 10
PAUSE: Final = (0.5, 1.5)  # seconds of load between a restart and the next kill
DEADLINE: Final = 300.0  # seconds: a safety net for a busy machine; the test takes about 30


async def test_sigkill_under_load_loses_nothing(tmp_path: Path) -> None:
    """10 times SIGKILL under load: no acknowledged message, chat or ticket lost or doubled."""
    seed = int(os.environ.get("HELPLINE_CRASH_SEED", random.randrange(2**32)))
    with trio.fail_after(DEADLINE):
        report = await crash_run(tmp_path, kills=KILLS, seed=seed, pause=PAUSE)
    summary = report.summary()
    print(summary)
    assert report.stop_status == 0, summary
    assert report.kills == KILLS, summary
    assert report.acknowledged > 500, summary  # the load was real
    assert (report.lost_messages, report.messages_twice, report.lost_chats) == ([], [], []), summary
    assert report.tickets_twice == 0, summary
    assert report.integrity == [("ok",)], summary
    assert report.journal_left == (0, 0), summary
    assert report.gapless, summary
