"""Placement constraints: parsing `KEY==VALUE` / `KEY!=VALUE` and matching nodes.

This module owns the constraint language of `--constraint` and the node
attributes it can see (`node.id`, `node.hostname`, `node.role`,
`node.platform.os`, `node.platform.arch`, `node.labels.<name>`,
`engine.labels.<name>`), plus the `Placement.platforms` check.  Values compare
case-insensitively, as in Docker; label names are exact.  A label a node does
not carry never equals anything, so `!=` matches it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from proto import objects_pb2 as pb

ACCEPTED_FORM = (
    "expected KEY==VALUE or KEY!=VALUE, where KEY is node.id, node.hostname, node.role, "
    "node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>"
)

_SIMPLE_KEYS = ("node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch")
_LABEL_PREFIXES = ("node.labels.", "engine.labels.")
_EXPR = re.compile(r"^\s*([^=!\s]+)\s*(==|!=)\s*(.*?)\s*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9_.\-/]+$")

# Architecture spellings that mean the same machine (uname vs Go/OCI names).
_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armhf": "arm",
    "i386": "386",
    "i686": "386",
}


@dataclass(frozen=True)
class Constraint:
    """One parsed constraint: `key` (known keys lower-cased), `op` ("==" or "!=")."""

    key: str
    op: str
    value: str
    expr: str

    def matches(self, node: pb.Node) -> bool:
        """True when `node` satisfies this constraint."""
        found = _node_values(self.key, node)
        if self.key == "node.platform.arch":
            wanted = normalize_arch(self.value)
            equal = any(normalize_arch(v) == wanted for v in found)
        else:
            wanted = self.value.casefold()
            equal = any(v.casefold() == wanted for v in found)
        return equal if self.op == "==" else not equal


def _bad(expr: str, why: str) -> ValueError:
    return ValueError(f"invalid constraint {expr!r}: {why}; {ACCEPTED_FORM}")


def parse(expr: str) -> Constraint:
    """Parses one constraint expression; raises ValueError saying what is wrong."""
    m = _EXPR.match(expr)
    if m is None:
        if "==" not in expr and "!=" not in expr:
            raise _bad(expr, "no == or != operator")
        raise _bad(expr, "malformed expression")
    raw_key, op, value = m.groups()
    if not value:
        raise _bad(expr, "the value is empty")
    if "==" in value or "!=" in value:
        raise _bad(expr, "more than one operator")
    lowered = raw_key.lower()
    if lowered in _SIMPLE_KEYS:
        key = lowered
    else:
        key = ""
        for prefix in _LABEL_PREFIXES:
            if lowered.startswith(prefix):
                name = raw_key[len(prefix):]
                if not name or not _LABEL_NAME.match(name):
                    raise _bad(expr, f"invalid label name {name!r}")
                key = prefix + name
                break
        if not key:
            raise _bad(expr, f"unknown key {raw_key!r}")
    if key == "node.role" and value.lower() not in ("manager", "worker"):
        raise _bad(expr, f"node.role must be manager or worker, not {value!r}")
    return Constraint(key=key, op=op, value=value, expr=expr)


def parse_all(exprs: Iterable[str]) -> list[Constraint]:
    """Parses every expression (the first bad one raises ValueError)."""
    return [parse(e) for e in exprs]


def match_all(constraints: Iterable[Constraint], node: pb.Node) -> bool:
    """True when `node` satisfies every constraint."""
    return all(c.matches(node) for c in constraints)


def normalize_arch(arch: str) -> str:
    """Maps architecture spellings (x86_64, amd64, aarch64, ...) to one name."""
    a = arch.strip().lower()
    return _ARCH_ALIASES.get(a, a)


def platform_matches(platforms: Iterable[pb.Platform], node: pb.Node) -> bool:
    """True when the node's platform is one of `platforms` (empty list: any).

    An empty os or architecture in a wanted platform matches anything.
    """
    wanted = list(platforms)
    if not wanted:
        return True
    have = node.description.platform
    for p in wanted:
        if p.os and p.os.lower() != have.os.lower():
            continue
        if p.architecture and normalize_arch(p.architecture) != normalize_arch(have.architecture):
            continue
        return True
    return False


def label_value(key: str, node: pb.Node) -> Optional[str]:
    """The value of `node.labels.X` / `engine.labels.X` on a node, None if absent."""
    if key.startswith("node.labels."):
        labels = node.spec.annotations.labels
        name = key[len("node.labels."):]
    elif key.startswith("engine.labels."):
        labels = node.description.engine_labels
        name = key[len("engine.labels."):]
    else:
        raise ValueError(f"{key!r} is not a node.labels.<name> or engine.labels.<name> key")
    return labels[name] if name in labels else None


def _node_values(key: str, node: pb.Node) -> tuple[str, ...]:
    if key == "node.id":
        return (node.id,)
    if key == "node.hostname":
        return (node.description.hostname,)
    if key == "node.role":
        return ("manager" if node.role == pb.MANAGER else "worker",)
    if key == "node.platform.os":
        return (node.description.platform.os,)
    if key == "node.platform.arch":
        return (node.description.platform.architecture,)
    value = label_value(key, node)
    return () if value is None else (value,)
