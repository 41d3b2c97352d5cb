"""The small grammars of the command line: a value or a clear refusal, and round trips.

Durations, sizes, CPU counts, integers, ratios, booleans, published ports,
placement constraints and preferences, secret/config/network references,
mounts, ulimits, extra hosts, sysctls, --since/--until times and --tail
(cli/parsing.py, cli/mounts.py, cli/containeropts.py, cli/timevalues.py,
cli/servicelogs.py) are fed random text
and text built from their own grammar's pieces. Each must return a value that
fits the spec field it is for, or raise `UsageError` with a message; never
another exception. Where the manager checks the same thing again
(manager/validation.py, scheduler/constraints.py) what the CLI accepts must
pass there too, and the scheduler's constraint parser must refuse only with
its ValueError. Round trips: parse_duration(format_duration(n)) == n,
parse_timestamp(rfc3339_nano(n)) == n, published ports and constraints
rebuilt from their parts. Examples: 300 per property (derandomized).
"""
from __future__ import annotations

from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli import containeropts, parsing, servicelogs, timevalues
from cli.mounts import parse_mount
from cli.parsing import INT32_MAX, INT64_MAX, UINT64_MAX, UsageError
from manager import validation
from proto import objects_pb2 as pb
from scheduler import constraints
from tests.fuzz_helpers import VALUES, fuzz_settings

FUZZ = fuzz_settings(300)


def pieces(*parts: str) -> st.SearchStrategy[str]:
    """Text glued from a grammar's pieces and random values (reaches the deep checks)."""
    return st.lists(st.sampled_from(parts) | VALUES, min_size=1, max_size=6).map("".join)


def value_or_refusal(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except UsageError as exc:
        assert str(exc)
        return None


# ------------------------------------------------------------ durations ----

DURATIONS = pieces("0", "1", "10", "9" * 20, ".", ".5", "1.5", "ns", "us", "µs", "μs", "ms",
                   "s", "m", "h", "-", "+", " ", "e3")


@FUZZ
@given(DURATIONS | VALUES)
def test_duration_is_nanoseconds_or_refused(text: str) -> None:
    nanos = value_or_refusal(lambda t: parsing.parse_duration(t, "--update-delay"), text)
    if nanos is not None:
        assert 0 <= nanos <= INT64_MAX
        pb.Duration(nanos=nanos)


@FUZZ
@given(st.integers(0, INT64_MAX) | st.sampled_from([0, 1, 999, 1000, 10**9, INT64_MAX]))
def test_duration_round_trip(nanos: int) -> None:
    assert parsing.parse_duration(parsing.format_duration(nanos)) == nanos


# ---------------------------------------------------- sizes, cpus, numbers ----

@FUZZ
@given(pieces("0", "1", "512", ".5", "9" * 20, "k", "m", "g", "t", "p", "i", "b", " ", "e")
       | VALUES)
def test_size_cpus_and_numbers_fit_their_fields_or_are_refused(text: str) -> None:
    size = value_or_refusal(lambda t: parsing.parse_size(t, "--limit-memory"), text)
    if size is not None:
        assert 0 <= size <= INT64_MAX
    cpus = value_or_refusal(lambda t: parsing.parse_cpus(t, "--limit-cpu"), text)
    if cpus is not None:
        assert 0 <= cpus <= INT64_MAX
    for maximum in (INT32_MAX, UINT64_MAX):
        number = value_or_refusal(lambda t: parsing.parse_uint(t, "--x", "value", maximum),
                                  text)
        assert number is None or 0 <= number <= maximum
    replicas = value_or_refusal(parsing.parse_replicas, text)
    assert replicas is None or 0 <= replicas <= UINT64_MAX
    ratio = value_or_refusal(lambda t: parsing.parse_ratio(t, "--x"), text)
    assert ratio is None or 0 <= ratio <= 1
    value_or_refusal(lambda t: parsing.parse_bool(t, "--x"), text)


@FUZZ
@given(st.integers(0, INT64_MAX >> 50), st.sampled_from(["", "k", "m", "g", "t", "p"]),
       st.sampled_from(["", "b", "ib"]))
def test_size_with_a_unit_is_exact(number: int, unit: str, suffix: str) -> None:
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[unit]
    text = f"{number}{unit}{suffix if unit else suffix[-1:]}"
    if number * scale > INT64_MAX:
        with pytest.raises(UsageError, match="too large"):
            parsing.parse_size(text)
    else:
        assert parsing.parse_size(text) == number * scale


# ---------------------------------------------------------------- ports ----

PORTS = pieces("80", "8080", "0", "65535", "65536", "1-3", ":", "/", "tcp", "udp", "sctp",
               "published=", "target=", "protocol=", "mode=", "host", "ingress", ",", "-")


@FUZZ
@given(PORTS | VALUES)
def test_publish_is_ports_the_manager_takes_or_refused(text: str) -> None:
    ports = value_or_refusal(parsing.parse_publish, text)
    if ports is not None:
        assert ports
        validation.check_ports(ports)    # one --publish value never lists a port twice


@FUZZ
@given(st.integers(1, 65535), st.integers(0, 65535), st.sampled_from(["tcp", "udp", "sctp"]),
       st.sampled_from(["ingress", "host"]))
def test_publish_round_trip(target: int, published: int, protocol: str, mode: str) -> None:
    short = f"{published}:{target}/{protocol}" if published else f"{target}/{protocol}"
    long = f"target={target},published={published or ''},protocol={protocol},mode={mode}"
    for text, wanted_mode in ((short, "ingress"), (long, mode)):
        [port] = parsing.parse_publish(text)
        assert (port.target_port, port.published_port) == (target, published)
        assert pb.PortConfig.Protocol.Name(port.protocol).lower() == protocol
        assert pb.PortConfig.PublishMode.Name(port.publish_mode).lower() == wanted_mode


# ---------------------------------------------------------- constraints ----

KEYS = ("node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch",
        "node.labels.", "engine.labels.", "NODE.ROLE", "node.labels.zone", "node.label.x")
CONSTRAINTS = pieces(*KEYS, "==", "!=", "=", "!", " ", "manager", "worker", "linux", "a.b",
                     "ü", "-", "/", "_")


def scheduler_parse(expr: str) -> Any:
    try:
        return constraints.parse(expr)
    except ValueError as exc:
        assert str(exc) and type(exc) is ValueError
        return None


@FUZZ
@given(CONSTRAINTS | VALUES)
def test_constraint_cli_and_scheduler_agree(expr: str) -> None:
    """The CLI refuses with a message or passes it on; the scheduler refuses only with
    ValueError; what the scheduler accepts the CLI does not refuse."""
    by_cli = value_or_refusal(parsing.validate_constraint, expr)
    parsed = scheduler_parse(expr)
    if parsed is not None:
        assert by_cli == expr, f"the CLI refuses {expr!r}, which the scheduler accepts"
        node = pb.Node(id="n1", role=pb.WORKER)
        node.spec.annotations.labels["zone"] = "a"
        assert parsed.matches(node) in (True, False)
    if by_cli is not None and parsed is None:
        with pytest.raises(validation.InvalidSpec):   # the manager refuses it with a message
            validation.check_placement(pb.Placement(constraints=[expr]))


@FUZZ
@given(st.sampled_from(["node.id", "node.hostname", "node.platform.os", "node.labels.zone",
                        "engine.labels.a/b_c-d.e"]),
       st.sampled_from(["==", "!="]),
       st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=10))
def test_constraint_round_trip(key: str, op: str, value: str) -> None:
    parsed = constraints.parse(f" {key} {op} {value} ")
    assert (parsed.key, parsed.op, parsed.value) == (key, op, value)
    assert parsing.validate_constraint(f"{key}{op}{value}")


@FUZZ
@given(pieces("spread=", "node.labels.", "engine.labels.", "zone", ".", "=", "ü", " ") | VALUES)
def test_placement_preference_is_one_the_manager_takes_or_refused(text: str) -> None:
    pref = value_or_refusal(parsing.parse_placement_pref, text)
    if pref is not None:
        validation.check_placement(pb.Placement(preferences=[pref]))


# ------------------------------------------------ references, mounts, ... ----

REFS = pieces("s", "source=", "src=", "target=", "uid=", "gid=", "mode=", "name=", "alias=",
              "0400", "-1", "4294967296", "9" * 12, ",", "=")


@FUZZ
@given(REFS | VALUES)
def test_secret_config_network_references(text: str) -> None:
    for parse in (parsing.parse_secret_ref, parsing.parse_config_ref, parsing.parse_network):
        ref = value_or_refusal(parse, text)
        if ref is not None:
            ref.SerializeToString()


MOUNTS = pieces("type=", "volume", "bind", "tmpfs", "source=", "target=", "/t", "/", "v",
                "readonly", "ro=", "true", "bind-propagation=", "rslave", "volume-opt=",
                "volume-label=", "volume-nocopy", "tmpfs-size=", "tmpfs-mode=", "1g", "1777",
                "9" * 25, ",", "=", '"', " ")


@FUZZ
@given(MOUNTS | VALUES)
def test_mount_is_one_the_manager_takes_or_refused(text: str) -> None:
    mount = value_or_refusal(parse_mount, text)
    if mount is not None:
        validation.check_mount(mount)


CONTAINER_OPTS = pieces("nofile", "core", "x", "=", ":", "-1", "0", "10", "9" * 20, "db",
                        "10.0.0.1", "::1", "[::1]", "host-gateway", "net.core.x", "kernel.sem",
                        " ", "\t")


@FUZZ
@given(CONTAINER_OPTS | VALUES)
def test_ulimits_hosts_sysctls_and_groups(text: str) -> None:
    ulimit = value_or_refusal(lambda t: containeropts.parse_ulimit(t, "--ulimit"), text)
    if ulimit is not None:
        validation.check_ulimits([ulimit])
    host = value_or_refusal(lambda t: containeropts.parse_host(t, "--host"), text)
    if host is not None:
        validation.check_hosts([host])
    value_or_refusal(lambda t: containeropts.parse_sysctl(t, "--sysctl"), text)
    group = value_or_refusal(lambda t: containeropts.check_group(t, "--group"), text)
    if group is not None:
        validation.check_groups([group])


# ----------------------------------------------------------------- times ----

NOW = 1_796_497_200 * 10**9
TIMES = pieces("2026", "-", "12", "05", "T", " ", ":", "19", "00", ".", "5", "Z", "+01:00",
               "-0130", "99", "0000", "9999", "1796497200", "10m", "1h30m", "9" * 20)


@FUZZ
@given(TIMES | VALUES)
def test_since_until_and_tail_are_a_value_or_refused(text: str) -> None:
    nanos = value_or_refusal(lambda t: timevalues.parse_timestamp(t, NOW, "--since"), text)
    if nanos is not None:
        assert timevalues.EARLIEST <= nanos <= timevalues.LATEST
    seconds = value_or_refusal(lambda t: servicelogs.parse_time(t, "--until", NOW / 1e9), text)
    assert seconds is None or isinstance(seconds, float)
    tail = value_or_refusal(servicelogs.parse_tail, text)
    assert tail is None or tail >= -1


@FUZZ
@given(st.integers(0, timevalues.LATEST))
def test_timestamp_round_trip(nanos: int) -> None:
    assert timevalues.parse_timestamp(timevalues.rfc3339_nano(nanos), NOW, "--since") == nanos
