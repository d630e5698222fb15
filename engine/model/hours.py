"""Business hours: a department's weekly schedule in a time zone, with holidays.

Theory of operation:

Rule 1. A schedule is a list of weekly spans, each written `DAYS HH:MM-HH:MM` in the department's
        time zone (an IANA name read with `zoneinfo`): `mon-fri 09:00-17:30`, `sat 10:00-14:00`.
        DAYS is one day (`mon` ... `sun`) or a range of days (`mon-fri`; `fri-mon` wraps). A span
        ending at `24:00` runs to midnight; a span may not cross midnight (write two).
Rule 2. Holidays are dates (`YYYY-MM-DD`, in the time zone) on which the department is closed all
        day, whatever the weekly spans say.
Rule 3. No spans at all means always open (the default), and holidays then close nothing: hours
        are off until a schedule is given.
Rule 4. `opens_at` walks forward day by day (at most a year) to the next start of a span on a day
        that is not a holiday; None when there is none.

Everything here is pure: times in and out are wall-clock seconds since the epoch.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DAYS", "Hours", "check_hours", "is_open", "opens_at"]

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN: Final = re.compile(r"^([a-z]{3})(?:-([a-z]{3}))? (\d\d):(\d\d)-(\d\d):(\d\d)$")
_LOOKAHEAD_DAYS: Final = 370


@dataclass(frozen=True, slots=True, kw_only=True)
class Hours:
    """A department's opening hours; no `weekly` spans means always open."""

    timezone: str = "UTC"
    weekly: tuple[str, ...] = ()  # "mon-fri 09:00-17:00"
    holidays: tuple[str, ...] = ()  # "2024-12-25"


@dataclass(frozen=True, slots=True)
class _Span:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight
    end: int


def check_hours(hours: Hours) -> None:
    """Raise ValueError, saying what is wrong, unless `hours` is a valid schedule."""
    _zone(hours.timezone)
    _spans(hours.weekly)
    _holidays(hours.holidays)


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


@cache
def _spans(weekly: tuple[str, ...]) -> tuple[_Span, ...]:
    spans = []
    for text in weekly:
        match = _SPAN.match(text.strip().lower())
        if match is None:
            raise ValueError(f"expected 'DAYS HH:MM-HH:MM' such as 'mon-fri 09:00-17:00': {text!r}")
        first, last, h1, m1, h2, m2 = match.groups()
        if first not in DAYS or (last is not None and last not in DAYS):
            raise ValueError(f"days are {', '.join(DAYS)}: {text!r}")
        a = DAYS.index(first)
        b = a if last is None else DAYS.index(last)
        days = frozenset((a + i) % 7 for i in range((b - a) % 7 + 1))
        start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
        if int(m1) > 59 or int(m2) > 59 or not 0 <= start < end <= 24 * 60:
            raise ValueError(f"a span runs from an earlier to a later time of one day: {text!r}")
        spans.append(_Span(days, start, end))
    return tuple(spans)


@cache
def _holidays(dates: tuple[str, ...]) -> frozenset[dt.date]:
    try:
        return frozenset(dt.date.fromisoformat(d) for d in dates)
    except ValueError:
        raise ValueError(f"holidays are dates written YYYY-MM-DD: {list(dates)}") from None


def is_open(hours: Hours, when: float) -> bool:
    """Whether the department is open at `when`."""
    spans = _spans(hours.weekly)
    if not spans:
        return True
    local = dt.datetime.fromtimestamp(when, _zone(hours.timezone))
    if local.date() in _holidays(hours.holidays):
        return False
    minute = local.hour * 60 + local.minute + local.second / 60
    return any(local.weekday() in s.days and s.start <= minute < s.end for s in spans)


def opens_at(hours: Hours, when: float) -> float | None:
    """When the department next opens after `when` (now, if it is open), or None if never."""
    if is_open(hours, when):
        return when
    zone = _zone(hours.timezone)
    spans = _spans(hours.weekly)
    holidays = _holidays(hours.holidays)
    today = dt.datetime.fromtimestamp(when, zone).date()
    for offset in range(_LOOKAHEAD_DAYS):
        day = today + dt.timedelta(days=offset)
        if day in holidays:
            continue
        starts = sorted(s.start for s in spans if day.weekday() in s.days)
        for start in starts:
            moment = dt.datetime.combine(day, dt.time(start // 60, start % 60), zone).timestamp()
            if moment > when:
                return moment
    return None
