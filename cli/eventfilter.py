"""`swarm events` options that are pure: `--filter` matching and `--since`/`--until` times.

Owns `EventFilter` (Docker's events filter: values of one key OR, different
keys AND; `label` values AND, as Docker's) and `parse_timestamp`, Docker's
forms of a point in time: RFC 3339 with or without a fraction and zone, a
date, unix seconds with an optional fraction, or a duration back from now
(`10m`, `1h30m`; `-10s` is ten seconds from now). Pure: the caller passes the current time.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Iterable, Optional

from cli.eventmodel import ACTIONS, TYPES, Event
from cli.parsing import UsageError, filter_values, label_matches, parse_duration, parse_filters

FILTER_KEYS = ("type", "event", "service", "node", "label")

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


def _fuzzy(values: list[str], *candidates: str) -> bool:
    """Docker's fuzzy match: a value equals a candidate or is a prefix of it."""
    return any(c and c.startswith(v) for v in values for c in candidates)


@dataclass(frozen=True)
class EventFilter:
    """The parsed --filter options of one `swarm events` run."""

    types: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @classmethod
    def parse(cls, items: Optional[Iterable[str]]) -> "EventFilter":
        """From repeated `--filter key=value`; refuses unknown keys, types and events."""
        filters = parse_filters(items, FILTER_KEYS)
        types = filter_values(filters, "type")
        for t in types:
            if t not in TYPES:
                raise UsageError(f'invalid filter "type={t}": swarm events are of type '
                                 + ", ".join(TYPES))
        events = filter_values(filters, "event")
        for e in events:
            if e not in ACTIONS:
                raise UsageError(f'invalid filter "event={e}": swarm events are '
                                 + ", ".join(ACTIONS))
        for key in ("service", "node", "label"):
            if any(not v for v in filter_values(filters, key)):
                raise UsageError(f'invalid filter "{key}=": give a value')
        return cls(tuple(types), tuple(events), tuple(filter_values(filters, "service")),
                   tuple(filter_values(filters, "node")), tuple(filter_values(filters, "label")))

    def matches(self, event: Event) -> bool:
        """Whether the event passes every filter key given."""
        attrs = event.attributes
        if self.types and event.type not in self.types:
            return False
        if self.events and event.action not in self.events:
            return False
        if self.services:
            if event.type == "service":
                ok = _fuzzy(list(self.services), event.id, attrs.get("name", ""))
            elif event.type == "task":
                ok = _fuzzy(list(self.services), attrs.get("service.id", ""),
                            attrs.get("service.name", ""))
            else:
                ok = False
            if not ok:
                return False
        if self.nodes:
            if event.type == "node":
                ok = _fuzzy(list(self.nodes), event.id, attrs.get("name", ""))
            elif event.type == "task":
                ok = _fuzzy(list(self.nodes), attrs.get("node.id", ""), attrs.get("node.name", ""))
            else:
                ok = False
            if not ok:
                return False
        return all(label_matches(attrs, wanted) for wanted in self.labels)
