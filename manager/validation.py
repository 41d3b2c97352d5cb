"""Validation of user-supplied specs before they reach the store.

Pure functions: each raises `InvalidSpec` with a message that says what was
wrong and what form is expected. The control API maps it to INVALID_ARGUMENT.
The container's mounts, capabilities, sysctls, ulimits, extra hosts and groups,
and the task's log options (proto/logrules.py), are checked here for every caller
of the API; the `swarm` CLI refuses the same mounts (cli/mounts.py) and the
compose loader the same log options with the same words before they call.
The health check test, stop signal and DNS settings are checked as the worker
reads them, and no enum field may hold a number the API does not define
(`check_enums`: proto3 enums are open, any number parses).
"""
from __future__ import annotations

import ipaddress
import re
import secrets
import signal
from typing import Iterable, Mapping

from google.protobuf.message import Message

from proto import genericres, logrules, mountrules
from proto import objects_pb2 as pb
from proto.mountrules import mount_target
from scheduler import constraints as constraint_parser
from proto.containerrules import (ALL_CAPABILITIES, CAPABILITIES, NAMESPACED_SYSCTLS,
                                 NAMESPACED_SYSCTL_PREFIXES)

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_NAME = 63
ENV_KEY_RE = re.compile(r"^[^=\s]+$")

_ADJECTIVES = ("brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen",
               "lucid", "merry", "nifty", "proud", "quiet", "sharp", "tender", "witty")
_NOUNS = ("anchovy", "barracuda", "cod", "dory", "eel", "flounder", "grouper", "herring",
          "marlin", "perch", "salmon", "sardine", "snapper", "trout", "tuna", "wrasse")


class InvalidSpec(ValueError):
    """A spec a person sent is not acceptable; the message says why."""


def random_name() -> str:
    """A readable name for a service created without --name, as Docker makes."""
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"


def check_name(kind: str, name: str) -> None:
    if not name:
        raise InvalidSpec(f"{kind} name must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidSpec(f"invalid {kind} name {name!r}: longer than {MAX_NAME} characters")
    if not NAME_RE.match(name):
        raise InvalidSpec(
            f"invalid {kind} name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def undefined_enums(msg: Message, where: str = "") -> list[tuple[str, int, list[str]]]:
    """Every enum field of `msg` (nested messages included) that holds a number its
    enum does not define: (dotted path, number, the names defined). The API's enums
    are open (proto3), so a client can send any number; nothing acts on an
    undefined one as it would be meant."""
    found = []
    for field, value in msg.ListFields():
        path = f"{where}.{field.name}" if where else field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            holder = field.message_type.fields_by_name["value"]
            items = list(value.values()) if holder.message_type is not None else []
        else:
            items = list(value) if field.is_repeated else [value]
        for item in items:
            if field.enum_type is not None and item not in field.enum_type.values_by_number:
                found.append((path, item, [v.name for v in field.enum_type.values]))
            elif isinstance(item, Message):
                found.extend(undefined_enums(item, path))
    return found


def check_enums(kind: str, msg: Message, where: str = "") -> None:
    """Refuses a spec whose enum fields hold numbers the API does not define (`where`:
    the path of `msg` in the spec)."""
    for path, number, names in undefined_enums(msg, where)[:1]:
        raise InvalidSpec(f"invalid {kind} spec: {path} is {number}, which is not a known "
                          f"value: expected one of {', '.join(names)}")


def _check_duration(what: str, d: pb.Duration) -> None:
    if d.nanos < 0:
        raise InvalidSpec(f"{what} must not be negative")


ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


def normalize_capability(name: str) -> str:
    """"net_admin" and "CAP_NET_ADMIN" are one capability: upper case, CAP_ prefix."""
    cap = name.strip().upper()
    return cap if cap == ALL_CAPABILITIES or cap.startswith("CAP_") else "CAP_" + cap


def check_mount(m: pb.Mount) -> None:
    """One mount, by the rules in proto.mountrules (shared with the CLI)."""
    try:
        mountrules.check_mount(m)
    except mountrules.MountError as err:
        raise InvalidSpec(str(err)) from None


def check_mounts(mounts: Iterable[pb.Mount]) -> None:
    """Each mount, and no two at one target."""
    seen: set[str] = set()
    for m in mounts:
        check_mount(m)
        target = mount_target(m.target)
        if target in seen:
            raise InvalidSpec(f"duplicate mount point: {m.target} (two mounts have this target)")
        seen.add(target)


def check_capabilities(c: pb.ContainerSpec) -> None:
    for what, caps in (("cap_add", c.cap_add), ("cap_drop", c.cap_drop)):
        for cap in caps:
            if cap != ALL_CAPABILITIES and cap not in CAPABILITIES:
                raise InvalidSpec(f'unknown capability: "{cap}" in {what}: expected a Linux '
                                  "capability such as NET_ADMIN or SYS_PTRACE (the CAP_ prefix "
                                  "is optional), or ALL")


def check_sysctls(sysctls: Iterable[tuple[str, str]]) -> None:
    for key, value in sysctls:
        if not key or any(ch.isspace() for ch in key) or not value:
            raise InvalidSpec(f'invalid sysctl "{key}={value}": expected KEY=VALUE such as '
                              "net.core.somaxconn=1024")
        if key not in NAMESPACED_SYSCTLS and not key.startswith(NAMESPACED_SYSCTL_PREFIXES):
            raise InvalidSpec(f'sysctl "{key}" is not allowed in a container: only namespaced '
                              "sysctls can be set (net.*, fs.mqueue.*, kernel.msgmax, "
                              "kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, "
                              "kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced)")


def check_ulimits(ulimits: Iterable[pb.Ulimit]) -> None:
    seen: set[str] = set()
    for u in ulimits:
        if u.name not in ULIMIT_NAMES:
            raise InvalidSpec(f'invalid ulimit type "{u.name}": expected one of '
                              + ", ".join(ULIMIT_NAMES))
        if u.name in seen:
            raise InvalidSpec(f"ulimit {u.name} is given twice")
        seen.add(u.name)
        if u.soft < -1 or u.hard < -1:
            raise InvalidSpec(f"invalid ulimit {u.name}={u.soft}:{u.hard}: limits are numbers "
                              ">= 0, or -1 for unlimited")
        if u.hard != -1 and (u.soft == -1 or u.soft > u.hard):
            raise InvalidSpec(f"invalid ulimit {u.name}={u.soft}:{u.hard}: the soft limit "
                              "must be less than or equal to the hard limit")


def check_hosts(lines: Iterable[str]) -> None:
    for line in lines:
        parts = line.split()
        valid = len(parts) >= 2 and all(":" not in name for name in parts[1:])
        if valid:
            try:
                ipaddress.ip_address(parts[0])
            except ValueError:
                valid = False
        if not valid:
            raise InvalidSpec(f'invalid extra host entry "{line}": expected "IP_ADDRESS '
                              'HOSTNAME [ALIAS...]" such as "10.0.0.5 db"')


def check_groups(groups: Iterable[str]) -> None:
    for group in groups:
        if not group or any(ch.isspace() for ch in group):
            raise InvalidSpec(f'invalid supplementary group "{group}": expected a group name '
                              "or GID")


def check_health_test(test: list[str]) -> None:
    """A health check's test in one of the forms the worker runs (worker/health.py):
    none (the image's), NONE, CMD with a command, CMD-SHELL with a command."""
    kind = test[0].upper() if test else ""
    if test and kind != "NONE" and not (kind in ("CMD", "CMD-SHELL") and len(test) > 1):
        raise InvalidSpec(f"invalid health check test {test!r}: expected [\"CMD\", command, "
                          "arg...], [\"CMD-SHELL\", command] or [\"NONE\"] (--health-cmd, "
                          "--no-healthcheck)")


MAX_SIGNAL = 64  # Linux: 1 to SIGRTMAX


def check_stop_signal(name: str) -> None:
    """A stop signal as the worker reads it (worker/podman_wire.signal_number): a name
    with or without SIG, any case, or a number; "" is SIGTERM."""
    text = name.strip().upper()
    if not name:
        return
    if text.isdigit():
        known = 1 <= int(text) <= MAX_SIGNAL
    else:
        known = (text if text.startswith("SIG") else "SIG" + text) in signal.Signals.__members__
    if not known:
        raise InvalidSpec(f'invalid stop signal "{name}": expected a signal name such as '
                          f"SIGTERM or SIGQUIT, or a number from 1 to {MAX_SIGNAL}")


def check_dns(c: pb.ContainerSpec) -> None:
    """DNS servers are IP addresses; search domains and options single words (each is
    written on a resolv.conf line of the task, or handed to podman)."""
    for server in c.dns_nameservers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidSpec(f'invalid DNS server "{server}": expected an IP address such '
                              "as 10.0.0.2 (--dns)") from None
    for what, flag, values in (("DNS search domain", "--dns-search", c.dns_search),
                               ("DNS option", "--dns-option", c.dns_options)):
        for value in values:
            if not value or any(ch.isspace() for ch in value):
                raise InvalidSpec(f'invalid {what} "{value}": it must not be empty nor '
                                  f"contain white space ({flag})")


def check_container(c: pb.ContainerSpec) -> None:
    if not c.image.strip():
        raise InvalidSpec("no image given: a service needs an image reference, e.g. busybox:latest")
    if any(ch.isspace() for ch in c.image):
        raise InvalidSpec(f"invalid image reference {c.image!r}: it contains white space")
    for entry in c.env:
        key = entry.split("=", 1)[0]
        if not key or not ENV_KEY_RE.match(key):
            raise InvalidSpec(f"invalid environment entry {entry!r}: expected KEY=VALUE")
    _check_duration("stop grace period", c.stop_grace_period)
    check_stop_signal(c.stop_signal)
    check_dns(c)
    if c.HasField("healthcheck"):
        h = c.healthcheck
        for what, d in (("health interval", h.interval), ("health timeout", h.timeout),
                        ("health start period", h.start_period),
                        ("health start interval", h.start_interval)):
            _check_duration(what, d)
        if h.retries < 0:
            raise InvalidSpec("health retries must not be negative")
        check_health_test(list(h.test))
    check_mounts(c.mounts)
    check_capabilities(c)
    check_sysctls(c.sysctls.items())
    check_ulimits(c.ulimits)
    check_hosts(c.hosts)
    check_groups(c.groups)
    check_oom_score_adj(c.oom_score_adj)


OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX = -1000, 1000   # the kernel's range


def check_oom_score_adj(value: int) -> None:
    if not OOM_SCORE_ADJ_MIN <= value <= OOM_SCORE_ADJ_MAX:
        raise InvalidSpec(f"invalid OOM score adjustment {value}: the range is "
                          f"[{OOM_SCORE_ADJ_MIN}, {OOM_SCORE_ADJ_MAX}]")


def check_resources(r: pb.ResourceRequirements) -> None:
    for which, res in (("limit", r.limits), ("reservation", r.reservations)):
        if res.nano_cpus < 0:
            raise InvalidSpec(f"CPU {which} must not be negative")
        if res.memory_bytes < 0:
            raise InvalidSpec(f"memory {which} must not be negative")
    if r.limits.pids < 0:
        raise InvalidSpec(f"invalid pids limit {r.limits.pids}: must not be negative "
                          "(0 = unlimited)")
    if r.reservations.pids:
        raise InvalidSpec("pids can be limited, not reserved: set resources.limits.pids")
    if r.limits.memory_bytes and r.reservations.memory_bytes > r.limits.memory_bytes:
        raise InvalidSpec("memory reservation is larger than the memory limit")
    if r.limits.nano_cpus and r.reservations.nano_cpus > r.limits.nano_cpus:
        raise InvalidSpec("CPU reservation is larger than the CPU limit")
    if r.limits.generic_resources:
        raise InvalidSpec("generic resources can be reserved, not limited: set "
                          "resources.reservations.generic_resources")
    problem = genericres.check_request(r.reservations.generic_resources)
    if problem:
        raise InvalidSpec(problem)


def check_placement(p: pb.Placement) -> None:
    for expr in p.constraints:
        try:
            constraint_parser.parse(expr)
        except ValueError as exc:
            raise InvalidSpec(str(exc)) from None
    for pref in p.preferences:
        key = pref.spread
        if not (key.startswith("node.labels.") or key.startswith("engine.labels.")) \
                or key.endswith("."):
            raise InvalidSpec(
                f"invalid placement preference spread={key!r}: expected "
                "spread=node.labels.<label> or spread=engine.labels.<label>")


def check_ports(ports: Iterable[pb.PortConfig]) -> None:
    seen: set[tuple[int, int]] = set()
    for port in ports:
        if not 1 <= port.target_port <= 65535:
            raise InvalidSpec(f"invalid target port {port.target_port}: must be 1-65535")
        if port.published_port > 65535:
            raise InvalidSpec(f"invalid published port {port.published_port}: must be 0-65535")
        check_enums("service", port, "endpoint.ports")  # the names below need known ones
        if port.published_port:
            key = (port.published_port, port.protocol)
            if key in seen:
                proto_name = pb.PortConfig.Protocol.Name(port.protocol).lower()
                raise InvalidSpec(
                    f"published port {port.published_port}/{proto_name} is listed twice")
            seen.add(key)


def check_update_config(what: str, u: pb.UpdateConfig) -> None:
    _check_duration(f"{what} delay", u.delay)
    _check_duration(f"{what} monitor", u.monitor)
    if not 0.0 <= u.max_failure_ratio <= 1.0:
        raise InvalidSpec(f"{what} max failure ratio must be between 0 and 1")


def check_service_spec(spec: pb.ServiceSpec) -> None:
    """Raises InvalidSpec if the service spec cannot be accepted."""
    check_name("service", spec.annotations.name)
    task = spec.task
    check_container(task.container)
    check_resources(task.resources)
    r = task.restart
    _check_duration("restart delay", r.delay)
    _check_duration("restart window", r.window)
    check_placement(task.placement)
    if spec.WhichOneof("mode") in ("global", "global_job") and task.placement.max_replicas:
        raise InvalidSpec("max replicas per node applies to replicated services only")
    check_ports(spec.endpoint.ports)
    if spec.endpoint.mode == pb.EndpointSpec.DNSRR:
        for port in spec.endpoint.ports:
            if port.publish_mode == pb.PortConfig.INGRESS:
                raise InvalidSpec("port published with ingress mode can't be used with "
                                  "dnsrr endpoint mode: use mode=host")
    check_update_config("update", spec.update)
    check_update_config("rollback", spec.rollback)
    check_log_options(task.log_driver, task.log_driver_options)
    check_enums("service", spec)  # last: the checks above name their own enums better


def check_log_options(driver: str, options: Mapping[str, str]) -> None:
    """The task's log driver and options, as podman can honour them (proto/logrules.py)."""
    try:
        logrules.podman_log(driver, options)
    except logrules.LogOptionError as exc:
        raise InvalidSpec(str(exc)) from None


def normalise_service_spec(spec: pb.ServiceSpec) -> None:
    """Fills defaults a Docker user relies on: a name, replicated mode with 1 replica."""
    if not spec.annotations.name:
        spec.annotations.name = random_name()
    if spec.WhichOneof("mode") is None:
        spec.replicated.replicas = 1
    c = spec.task.container
    if not c.HasField("stop_grace_period"):
        c.stop_grace_period.nanos = 10 * 10**9
    for caps in (c.cap_add, c.cap_drop):  # API callers may send "net_admin", as Docker's
        names = list(dict.fromkeys(normalize_capability(cap) for cap in caps))
        del caps[:]
        caps.extend(names)
