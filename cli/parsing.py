"""Parsing of the values people type on the `swarm` command line.

Owns the small grammars Docker's CLI accepts: durations (`1m30s`), sizes
(`512M`), CPU counts (`0.5`), published ports (short `8080:80/udp` and long
`published=8080,target=80,mode=host`), `key=value` lists, placement
constraints and preferences, secret/config/network references and `--filter`
arguments. Every parser is pure and raises `UsageError` with a message that
names the flag, the bad value and the form that is expected.
"""
from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import Iterable, Mapping, NamedTuple

from proto import mountrules
from proto import objects_pb2 as pb


class UsageError(ValueError):
    """A value on the command line is malformed; the message says what is expected."""


# The ranges of the spec fields the values end in (protobuf int64, uint64, int32, uint32):
# a number beyond its field's range is refused here, naming the range, instead of
# failing in protobuf (a traceback) when the spec is built.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1


# ------------------------------------------------------------- durations ----

_DURATION_UNITS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
    "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str, flag: str = "duration", *, limited: bool = True) -> int:
    """Parses a Go-style duration ("10s", "1m30s", "500ms", "1.5h") into nanoseconds, at
    most Go's longest (int64 nanoseconds) unless `limited` is False (the caller checks
    its own range, e.g. a time back from now)."""
    s = text.strip()
    if s == "0":
        return 0
    if s.startswith("-"):
        raise UsageError(
            f'invalid duration "{text}" for {flag}: must not be negative; expected a number '
            "with a unit (ns, us, ms, s, m, h), e.g. 10s, 1m30s or 500ms")
    pos = 0
    total = Decimal(0)   # exact: a float loses nanoseconds (and overflows) on long ones
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            break
        total += Decimal(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise UsageError(
            f'invalid duration "{text}" for {flag}: expected a number with a unit '
            "(ns, us, ms, s, m, h), e.g. 10s, 1m30s or 500ms")
    nanos = int(total.to_integral_value())
    if limited and nanos > INT64_MAX:
        raise UsageError(
            f'invalid duration "{text}" for {flag}: too long; the longest duration is '
            f"{format_duration(INT64_MAX)} (about 292 years)")
    return nanos


def format_duration(nanos: int) -> str:
    """Formats nanoseconds the way Go prints a time.Duration: 1m30s, 500ms, 0s."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    n = abs(nanos)
    if n < 1_000:
        return f"{sign}{n}ns"
    if n < 1_000_000:
        return f"{sign}{_trim(n / 1_000)}µs"
    if n < 1_000_000_000:
        return f"{sign}{_trim(n / 1_000_000)}ms"
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _trim(rest / 1e9)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


# ------------------------------------------------------------ sizes, cpus ----

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s?([kmgtp])?(i)?(b)?$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str, flag: str = "size") -> int:
    """Parses a memory size ("512M", "1g", "100kb", "2048") into bytes (binary units)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise UsageError(
            f'invalid size "{text}" for {flag}: expected a number with an optional unit '
            "b, k, m, g, t (e.g. 512M or 1g)")
    unit = m.group(2).lower() if m.group(2) else None
    size = int(Decimal(m.group(1)) * _SIZE_UNITS[unit])  # exact, and no float overflow
    if size > INT64_MAX:
        raise UsageError(f'invalid size "{text}" for {flag}: too large; the largest size is '
                         f"{INT64_MAX} bytes (8 EiB)")
    return size


def format_size(num: int) -> str:
    """Formats bytes like Docker's units.BytesSize: "512MiB", "1.5GiB"."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    value = float(num)
    i = 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:.4g}{units[i]}"


def parse_cpus(text: str, flag: str = "cpus") -> int:
    """Parses a CPU count ("0.5", "2") into nano CPUs."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0 or value != value or value == float("inf"):
        raise UsageError(
            f'invalid CPU value "{text}" for {flag}: expected a non-negative number '
            "of CPUs, e.g. 0.5 or 2")
    if value * 1e9 > INT64_MAX:
        raise UsageError(f'invalid CPU value "{text}" for {flag}: too large; at most '
                         f"{INT64_MAX // 10**9} CPUs")
    return int(round(value * 1e9))


def parse_uint(text: str, flag: str, what: str = "value", maximum: int = UINT64_MAX) -> int:
    """Parses a non-negative integer up to `maximum` (the range of the field it goes
    to: UINT64_MAX, UINT32_MAX, INT32_MAX), e.g. a replica count."""
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(
            f"invalid {what} {text} for {flag}: must be a non-negative integer")
    return check_max(value, text, flag, what, maximum)


def check_max(value: int, text: str, flag: str, what: str, maximum: int) -> int:
    """`value` (parsed from `text`) if it is at most `maximum`, the largest its field
    holds; else UsageError naming the flag and the maximum."""
    if value > maximum:
        raise UsageError(f"invalid {what} {text} for {flag}: too large; at most {maximum}")
    return value


_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def parse_int(text: str, flag: str, minimum: int, maximum: int, note: str = "") -> int:
    """Parses a decimal integer in [minimum, maximum] (e.g. --oom-score-adj -500);
    `note` says what a value means ("0 = unlimited")."""
    if not _INTEGER.match(text):
        raise UsageError(f'invalid value "{text}" for {flag}: expected an integer')
    value = int(text, 10)
    if not minimum <= value <= maximum:
        extra = f"; {note}" if note else ""
        raise UsageError(f'invalid value "{text}" for {flag}: the range is {minimum} to '
                         f"{maximum}{extra}")
    return value


def parse_replicas(text: str) -> int:
    """Parses --replicas; rejects negative, non-integer and too large values."""
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"invalid replicas value {text}: must be a non-negative integer")
    if value > UINT64_MAX:
        raise UsageError(f"invalid replicas value {text}: too large; at most {UINT64_MAX}")
    return value


def parse_ratio(text: str, flag: str) -> float:
    """Parses a failure ratio between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise UsageError(f'invalid value "{text}" for {flag}: expected a number between 0 and 1')
    return value


def parse_bool(text: str, flag: str = "flag") -> bool:
    """Parses Go's boolean spellings (true/false/1/0/t/f)."""
    low = text.strip().lower()
    if low in ("1", "t", "true", "yes"):
        return True
    if low in ("0", "f", "false", "no"):
        return False
    raise UsageError(f'invalid value "{text}" for {flag}: expected true or false')


# ------------------------------------------------------------- key=value ----

def parse_kv(text: str, flag: str, require_value: bool = False) -> tuple[str, str]:
    """Splits "key=value" (or a bare "key", with value "", unless a value is required)."""
    key, sep, value = text.partition("=")
    if not key or (require_value and not sep):
        raise UsageError(f'invalid value "{text}" for {flag}: expected key=value')
    return key, value


def parse_labels(items: Iterable[str], flag: str) -> dict[str, str]:
    """Turns repeated --label k=v flags into a dict."""
    return dict(parse_kv(item, flag) for item in items)


def expand_env(item: str) -> str:
    """Docker's --env: "KEY=VALUE" as is; a bare "KEY" takes the client's value if set."""
    if "=" in item:
        if item.startswith("="):
            raise UsageError(f'invalid environment variable "{item}": expected KEY=VALUE')
        return item
    if not item:
        raise UsageError("invalid environment variable \"\": expected KEY=VALUE")
    if item in os.environ:
        return f"{item}={os.environ[item]}"
    return item


def parse_csv_options(text: str, flag: str, allowed: Iterable[str]) -> dict[str, str]:
    """Parses "a=1,b=2" (Docker's long form for --publish, --secret, --network, ...)."""
    allowed = set(allowed)
    result: dict[str, str] = {}
    for field in text.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(
                f'invalid field "{field}" in {flag} "{text}": expected key=value pairs '
                f"with keys {', '.join(sorted(allowed))}")
        if key not in allowed:
            raise UsageError(
                f'unknown field "{key}" in {flag} "{text}": expected one of '
                f"{', '.join(sorted(allowed))}")
        result[key] = value.strip()
    return result


# ---------------------------------------------------------------- ports ----

PUBLISH_FORMS = ("expected [PUBLISHED:]TARGET[/PROTOCOL] such as 8080:80 or 8080:80/udp, "
                 "or published=8080,target=80[,protocol=tcp|udp|sctp][,mode=ingress|host]")
_PROTOCOLS = {"tcp": pb.PortConfig.TCP, "udp": pb.PortConfig.UDP, "sctp": pb.PortConfig.SCTP}
_MODES = {"ingress": pb.PortConfig.INGRESS, "host": pb.PortConfig.HOST}


def _port_number(text: str, spec: str, allow_zero: bool = False) -> int:
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f'invalid port "{text}" in --publish "{spec}": {PUBLISH_FORMS}')
    value = int(text)
    if not (0 if allow_zero else 1) <= value <= 65535:
        raise UsageError(f'invalid port {value} in --publish "{spec}": ports are 1-65535')
    return value


def _port_range(text: str, spec: str) -> list[int]:
    low, sep, high = text.partition("-")
    first = _port_number(low, spec)
    last = _port_number(high, spec) if sep else first
    if last < first:
        raise UsageError(f'invalid port range "{text}" in --publish "{spec}"')
    return list(range(first, last + 1))


def parse_publish(spec: str) -> list[pb.PortConfig]:
    """Parses one --publish value into port configs (a range gives several)."""
    text = spec.strip()
    if not text:
        raise UsageError(f'invalid --publish "": {PUBLISH_FORMS}')
    if "=" in text:
        fields = parse_csv_options(text, "--publish", ("published", "target", "protocol", "mode"))
        if "target" not in fields:
            raise UsageError(f'missing target in --publish "{spec}": {PUBLISH_FORMS}')
        port = pb.PortConfig(target_port=_port_number(fields["target"], spec))
        if fields.get("published"):
            port.published_port = _port_number(fields["published"], spec)
        protocol = fields.get("protocol", "tcp").lower()
        mode = fields.get("mode", "ingress").lower()
        if protocol not in _PROTOCOLS:
            raise UsageError(f'invalid protocol "{protocol}" in --publish "{spec}": '
                             "expected tcp, udp or sctp")
        if mode not in _MODES:
            raise UsageError(f'invalid mode "{mode}" in --publish "{spec}": '
                             "expected ingress or host")
        port.protocol = _PROTOCOLS[protocol]
        port.publish_mode = _MODES[mode]
        return [port]
    ports_part, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in _PROTOCOLS:
        raise UsageError(f'invalid protocol "{protocol}" in --publish "{spec}": '
                         "expected tcp, udp or sctp")
    parts = ports_part.split(":")
    if len(parts) > 2:
        raise UsageError(f'invalid --publish "{spec}": a host IP cannot be given for a '
                         f"service port; {PUBLISH_FORMS}")
    targets = _port_range(parts[-1], spec)
    published = _port_range(parts[0], spec) if len(parts) == 2 else []
    if published and len(published) != len(targets):
        raise UsageError(f'invalid --publish "{spec}": the published and target port '
                         "ranges differ in size")
    result = []
    for i, target in enumerate(targets):
        port = pb.PortConfig(target_port=target, protocol=_PROTOCOLS[protocol])
        if published:
            port.published_port = published[i]
        result.append(port)
    return result


def port_text(port: pb.PortConfig) -> str:
    """"*:8080->80/tcp" as in Docker's PORTS column."""
    proto = pb.PortConfig.Protocol.Name(port.protocol).lower()
    published = port.published_port or ""
    return f"*:{published}->{port.target_port}/{proto}"


# ---------------------------------------------------------- constraints ----

CONSTRAINT_FORMS = ("expected <key>==<value> or <key>!=<value> with key node.id, "
                    "node.hostname, node.role, node.platform.os, node.platform.arch, "
                    "node.labels.<name> or engine.labels.<name>")
_CONSTRAINT_KEY = re.compile(
    r"^(node\.id|node\.hostname|node\.role|node\.platform\.os|node\.platform\.arch"
    r"|node\.labels\.[^\s=!]+|engine\.labels\.[^\s=!]+)$", re.IGNORECASE)


def validate_constraint(expr: str) -> str:
    """Checks a placement constraint's grammar; returns it unchanged or raises UsageError.

    The CLI keeps its own check of the grammar (key==value / key!=value with a
    known key) so that it needs no scheduler code (DESIGN §1: cli imports proto,
    pki and node); the manager checks every constraint again with the
    scheduler's parser and refuses the spec with that parser's message.
    """
    return validate_constraint_locally(expr)


def validate_constraint_locally(expr: str) -> str:
    """The CLI's own check of the constraint grammar (key==value / key!=value)."""
    ops = [op for op in ("==", "!=") if op in expr]
    if len(ops) != 1 or expr.count(ops[0]) != 1:
        raise UsageError(f'invalid constraint "{expr}": {CONSTRAINT_FORMS}')
    key, value = (part.strip() for part in expr.split(ops[0], 1))
    if not key or not value:
        raise UsageError(f'invalid constraint "{expr}": {CONSTRAINT_FORMS}')
    if not _CONSTRAINT_KEY.match(key):
        raise UsageError(f'invalid constraint "{expr}": unknown key "{key}"; {CONSTRAINT_FORMS}')
    if key.lower() == "node.role" and value.lower() not in ("manager", "worker"):
        raise UsageError(f'invalid constraint "{expr}": node.role is manager or worker')
    return expr


def parse_placement_pref(text: str) -> pb.PlacementPreference:
    """Parses --placement-pref spread=node.labels.zone."""
    strategy, sep, key = text.partition("=")
    if strategy != "spread" or not sep or not key:
        raise UsageError(f'invalid --placement-pref "{text}": expected spread=node.labels.<label>')
    if not (key.startswith("node.labels.") or key.startswith("engine.labels.")) \
            or key.endswith("."):
        raise UsageError(f'invalid --placement-pref "{text}": expected '
                         "spread=node.labels.<label> or spread=engine.labels.<label>")
    return pb.PlacementPreference(spread=key)


# ----------------------------------------------- secrets, configs, networks ----

def _file_ref_fields(text: str, flag: str) -> dict[str, str]:
    if "=" not in text:
        return {"source": text}
    fields = parse_csv_options(text, flag, ("source", "src", "target", "uid", "gid", "mode"))
    if "src" in fields:
        fields["source"] = fields.pop("src")
    if not fields.get("source"):
        raise UsageError(f'missing source in {flag} "{text}": expected NAME or '
                         "source=NAME[,target=PATH][,uid=0][,gid=0][,mode=0444]")
    return fields


def _apply_owner(ref, fields: dict[str, str], flag: str, text: str) -> None:
    """uid and gid (uint32 fields) and the file mode (octal permission bits)."""
    for key in ("uid", "gid"):
        setattr(ref, key, parse_uint(fields.get(key, "0"), f'{flag} "{text}"', key,
                                     UINT32_MAX))
    mode_text = fields.get("mode", "0444")
    try:
        mode = int(mode_text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= mountrules.MAX_FILE_MODE:
        raise UsageError(f'invalid mode {mode_text} for {flag} "{text}": expected octal '
                         f"permission bits from 0 to {mountrules.MAX_FILE_MODE:o} (e.g. 0400)")
    ref.mode = mode


def parse_secret_ref(text: str) -> pb.SecretReference:
    """Parses --secret NAME or source=NAME,target=FILE,uid=,gid=,mode=."""
    fields = _file_ref_fields(text, "--secret")
    ref = pb.SecretReference(secret_name=fields["source"],
                             target=fields.get("target") or fields["source"])
    _apply_owner(ref, fields, "--secret", text)
    return ref


def parse_config_ref(text: str) -> pb.ConfigReference:
    """Parses --config NAME or source=NAME,target=/PATH,uid=,gid=,mode=."""
    fields = _file_ref_fields(text, "--config")
    ref = pb.ConfigReference(config_name=fields["source"],
                             target=fields.get("target") or "/" + fields["source"])
    _apply_owner(ref, fields, "--config", text)
    return ref


def parse_network(text: str) -> pb.NetworkAttachmentConfig:
    """Parses --network NAME or name=NAME,alias=A[,alias=B]."""
    if "=" not in text:
        return pb.NetworkAttachmentConfig(target=text)
    attachment = pb.NetworkAttachmentConfig()
    for field in text.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("name", "target", "alias"):
            raise UsageError(f'invalid --network "{text}": expected NAME or '
                             "name=NAME[,alias=ALIAS]")
        if key == "alias":
            attachment.aliases.append(value)
        else:
            attachment.target = value
    if not attachment.target:
        raise UsageError(f'invalid --network "{text}": no network name given')
    return attachment


# -------------------------------------------------------------- filters ----

class Filter(NamedTuple):
    """One --filter key=value argument."""

    key: str
    value: str


def parse_filters(items: Iterable[str] | None, allowed: Iterable[str]) -> list[Filter]:
    """Parses repeated --filter key=value arguments, checking the keys."""
    allowed = tuple(allowed)
    result = []
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise UsageError(f'bad format of filter "{item}": expected name=value')
        if key not in allowed:
            raise UsageError(f'invalid filter "{key}": expected one of {", ".join(allowed)}')
        result.append(Filter(key, value.strip()))
    return result


def filter_values(filters: Iterable[Filter], key: str) -> list[str]:
    """The values given for one filter key."""
    return [f.value for f in filters if f.key == key]


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """Whether `labels` satisfy a `label=KEY` or `label=KEY=VALUE` filter value."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)
