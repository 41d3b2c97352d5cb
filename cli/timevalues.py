"""Docker's `--since`/`--until` values and its time stamps, for `swarm events` and
`swarm service logs`.

Owns `parse_timestamp`: a point in time as RFC 3339 with or without a fraction
and zone (no zone: local time, as Docker reads it), a date, unix seconds with
an optional fraction, or a duration back from now (`10m`, `1h30m`; `-10s` is
ten seconds after now), within the years 0001 to 9999 (what a protobuf
Timestamp holds). And `rfc3339_nano`, the one RFC 3339 form with nine
fraction digits both commands print. Pure: the caller passes the current time.
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
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
TIME_FORMS = ("an RFC 3339 time (2026-12-05T19:00:00Z, 2026-12-05T19:00:00.5+01:00), "
              "a date (2026-12-05), unix seconds (1796497200 or 1796497200.123) "
              "or a duration back from now (10m, 1h30m)")
# the range of a protobuf Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z
EARLIEST = -62_135_596_800 * 1_000_000_000
LATEST = 253_402_300_800 * 1_000_000_000 - 1


def parse_timestamp(value: str, now_nano: int, flag: str) -> int:
    """A --since/--until value as unix nanoseconds (times without a zone are local);
    UsageError, naming `flag`, for a malformed value or one outside the years 0001-9999."""
    nanos = _parse_nanos(value, now_nano, flag)
    if not EARLIEST <= nanos <= LATEST:
        raise UsageError(f'invalid value "{value}" for {flag}: the time is out of range '
                         "(years 0001 to 9999)")
    return nanos


def _parse_nanos(value: str, now_nano: int, flag: str) -> int:
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
        return now_nano - sign * parse_duration(text[1:] if text[:1] in "+-" else text, flag,
                                                limited=False)  # the range is checked above
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
        seconds = int(moment.timestamp())
    except (ValueError, OverflowError) as exc:
        raise UsageError(f'invalid value "{value}" for {flag}: {exc}') from None
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


def rfc3339_nano(nanos: int) -> str:
    """Unix nanoseconds as RFC 3339 in UTC with nine fraction digits (Docker pads them so
    that lines align): 2026-12-05T19:00:00.123456789Z."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    stamp = _EPOCH + _dt.timedelta(seconds=seconds)
    return f"{stamp.replace(tzinfo=None).isoformat()}.{fraction:09d}Z"


def nanos_of_seconds(seconds: float) -> int:
    """Unix seconds with a fraction (a float) as unix nanoseconds, the fraction rounded."""
    whole = int(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


