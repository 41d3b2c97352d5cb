"""`swarm events` `--filter`: which events pass Docker's events filters.

Owns `EventFilter` (Docker's events filter: values of one key OR, different
keys AND; `label` values AND, as Docker's). The `--since`/`--until` times are
not here: `cli.timevalues` owns them (shared with `service logs`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from cli.eventmodel import ACTIONS, TYPES, Event
from cli.parsing import UsageError, filter_values, label_matches, parse_filters

FILTER_KEYS = ("type", "event", "service", "node", "label")

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
