"""Docker's `--since`/`--until` values, for `swarm events` and `swarm service logs`.

Owns `parse_timestamp`: a point in time as RFC 3339 with or without a fraction
and zone (no zone: local time, as Docker reads it), a date, unix seconds with
an optional fraction, or a duration back from now (`10m`, `1h30m`; `-10s` is
ten seconds after now). Pure: the caller passes the current time.
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Optional

from cli.parsing import UsageError, parse_duration

_UNIX = re.compile(r"^(\d+)(?:\.(\d{1,9}))?$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$", re.IGNORECASE)
TIME_FORMS = ("an RFC 3339 time (2026-12-05T19:00:00Z, 2026-12-05T19:00:00.5+01:00), "
              "a date (2026-12-05), unix seconds (1796497200 or 1796497200.123) "
              "or a duration back from now (10m, 1h30m)")


def parse_timestamp(value: str, now_nano: int, flag: str) -> int:
    """A --since/--until value as unix nanoseconds (times without a zone are local)."""
    text = value.strip()
    unix = _UNIX.match(text)
    if unix:
        return int(unix.group(1)) * 1_000_000_000 + int((unix.group(2) or "0").ljust(9, "0"))
    moment = _DATETIME.match(text)
    if moment:
        return _datetime_nanos(moment, value, flag)
    try:
        # a duration back from now; a negative one ("-5s") is after now, as in Docker
        sign = -1 if text.startswith("-") else 1
        return now_nano - sign * parse_duration(text[1:] if text[:1] in "+-" else text, flag)
    except UsageError:
        raise UsageError(f'invalid value "{value}" for {flag}: expected {TIME_FORMS}') from None


def _datetime_nanos(m: re.Match, value: str, flag: str) -> int:
    year, month, day, hour, minute, second = (int(g or 0) for g in m.groups()[:6])
    fraction, zone = m.group(7) or "", m.group(8) or ""
    tz: Optional[_dt.tzinfo] = None       # no zone: local time, as Docker
    if zone.upper() == "Z":
        tz = _dt.timezone.utc
    elif zone:
        digits = zone[1:].replace(":", "")
        offset = _dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        tz = _dt.timezone(offset if zone[0] == "+" else -offset)
    try:
        moment = _dt.datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError as exc:
        raise UsageError(f'invalid value "{value}" for {flag}: {exc}') from None
    return int(moment.timestamp()) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


