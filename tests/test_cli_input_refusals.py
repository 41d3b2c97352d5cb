"""The command line's refusals of values the CLI once crashed on (found by fuzzing).

Each test here is the regression test of a bug the property-based tests
(tests/test_fuzz_*.py) found: a value that raised a traceback instead of a
one-line usage error, hung, or parsed to something else. The CLI's ordinary
parsing tests are in tests/test_cli_units.py.
"""
from __future__ import annotations

import re
import time

import pytest

from cli import commands_stack, environment, parsing
from cli.client import CLIError, parse_target
from cli.main import main
from cli.parsing import UsageError
from cli.templates import render
from manager.ca import raft_addr_problem
from node.state import split_addr
from tests.test_cli_units import base_spec, create, parse, update
from worker.podman_wire import signal_number
from worker.runtime import RuntimeError_


@pytest.mark.parametrize("argv,message", [
    # found by tests/test_fuzz_cli_service.py: each was a ValueError or OverflowError traceback
    (["--update-delay", "99999999999999999999h", "busybox"],
     'invalid duration "99999999999999999999h" for --update-delay: too long; the longest '
     "duration is 2562047h47m16.854775807s"),
    (["--stop-grace-period", "2562048h", "busybox"], "--stop-grace-period: too long"),
    (["--health-timeout", "1" + "0" * 400 + "s", "busybox"], "--health-timeout: too long"),
    (["--reserve-memory", "9223372036854775808", "busybox"],
     'invalid size "9223372036854775808" for --reserve-memory: too large; the largest size is '
     "9223372036854775807 bytes"),
    (["--limit-memory", "9" * 400 + "k", "busybox"], "--limit-memory: too large"),
    (["--mount", "type=tmpfs,target=/t,tmpfs-size=" + "9" * 30, "busybox"],
     "invalid value for tmpfs-size"),
    (["--limit-cpu", "5.8e16", "busybox"],
     'invalid CPU value "5.8e16" for --limit-cpu: too large; at most 9223372036 CPUs'),
    (["--reserve-cpu", "1e309", "busybox"], "non-negative number of CPUs"),
    (["--replicas", "9" * 25, "busybox"],
     f"invalid replicas value {'9' * 25}: too large; at most 18446744073709551615"),
    (["--health-retries", "2147483648", "busybox"],
     "invalid retries 2147483648 for --health-retries: too large; at most 2147483647"),
    (["--restart-max-attempts", "18446744073709551616", "busybox"], "too large"),
    (["--ulimit", "nproc=" + "9" * 20, "busybox"],
     f'invalid value "nproc={"9" * 20}" for --ulimit: {"9" * 20} is too large; limits are at '
     "most 9223372036854775807, or -1 for unlimited"),
    (["--log-opt", "max-size=" + "9" * 400, "busybox"], "max-size .* is too large"),
])
def test_numbers_beyond_a_field_s_range_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        create(argv)


def test_the_largest_values_still_fit() -> None:
    spec = create(["--update-delay", "2562047h47m16.854775807s", "--limit-memory",
                   "9223372036854775807", "--replicas", "18446744073709551615",
                   "--health-retries", "2147483647", "--ulimit", "nofile=9223372036854775807",
                   "busybox"])
    assert spec.update.delay.nanos == 2**63 - 1
    assert spec.task.resources.limits.memory_bytes == 2**63 - 1
    assert spec.replicated.replicas == 2**64 - 1
    assert spec.task.container.healthcheck.retries == 2**31 - 1
    assert spec.task.container.ulimits[0].soft == 2**63 - 1
    assert parsing.parse_duration("1.000000001s") == 1_000_000_001  # exact, no float rounding
    assert parsing.parse_size("0.5k") == 512


def test_a_double_dash_given_as_a_flag_s_value_is_that_value() -> None:
    # argparse handed [] for `--mount-rm=--` (TypeError: unhashable type 'list' in
    # update_mounts) and for `--cap-add=--` (AttributeError): found by the fuzz tests
    assert parse(["service", "update", "--mount-rm=--", "--cap-add=--", "web"]).mount_rm == ["--"]
    assert parse(["service", "create", "--hostname=--", "busybox"]).hostname == "--"
    assert parse(["service", "create", "busybox", "sh", "--x=--"]).command == ["sh", "--x=--"]
    assert parse(["-H=--", "node", "ls"]).host == "--"
    assert update(base_spec(), ["--mount-rm=--"]) == base_spec()


def test_an_argument_that_is_not_utf8_is_a_usage_error(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    # undecodable bytes reach Python as lone surrogates: the spec's string fields refused
    # them with a UnicodeEncodeError traceback (found by the fuzz tests)
    assert main(["service", "create", "--name", "web\udcff", "busybox"]) == 1
    assert capsys.readouterr().err == (
        'Error: the argument "web\ufffd" is not valid UTF-8 text: give names and values in '
        "UTF-8 (check the encoding of the terminal or of the script that runs swarm)\n")


def test_a_digit_that_is_not_ascii_is_not_a_number() -> None:
    # "²".isdigit() is True but int("²") raises ValueError: each of these was a traceback
    # (or a worker failing to start a task), found by tests/test_fuzz_values.py
    with pytest.raises(UsageError, match='invalid port "²" in --publish "²"'):
        create(["-p", "²", "busybox"])
    with pytest.raises(UsageError, match="max-file must be a positive number"):
        create(["--log-opt", "max-file=²", "busybox"])
    with pytest.raises(CLIError, match="invalid host"):
        parse_target("10.0.0.1:²")
    with pytest.raises(ValueError, match="invalid address '10.0.0.1:²'"):
        split_addr("10.0.0.1:²", 2377)
    with pytest.raises(RuntimeError_):
        signal_number("²")
    assert signal_number("15") == 15
    assert raft_addr_problem("10.0.0.1:²") is not None
    assert environment.raft_snapshot_entries({"SHOAL_RAFT_SNAPSHOT_ENTRIES": "²"}) == 0
    assert sorted(["s10", "s²", "s2"], key=commands_stack._natural_key) == ["s2", "s10", "s²"]


def test_update_publish_add_of_a_whole_port_range_is_quick() -> None:
    # each added port scanned every port: `--publish-add 1-65535` took about half an hour
    # (4,000 ports: 7 s), found by the fuzz tests; now linear
    started = time.monotonic()
    new = update(base_spec(), ["--publish-add", "1-65535", "--publish-add", "8080:80/udp"])
    assert time.monotonic() - started < 10
    assert len(new.endpoint.ports) == 65535 + 3
    again = update(new, ["--publish-add", "1-65535", "--publish-rm", "80/udp"])
    assert time.monotonic() - started < 20
    assert len(again.endpoint.ports) == 65535 + 2   # each replaces itself; 80/udp removed
    assert (again.endpoint.ports[0].published_port, again.endpoint.ports[-1].target_port) == (
        8080, 65535)


@pytest.mark.parametrize("fmt,message", [
    # TypeError or ValueError tracebacks before, found by tests/test_fuzz_templates.py
    ("{{json}}", 'action "{{json}}": json takes 1 argument, not 0; e.g. {{json .}}'),
    ("{{lower}}", "lower takes 1 argument, not 0; e.g. {{lower .Name}}"),
    ("{{truncate .ID}}", "truncate takes 2 arguments, not 1; e.g. {{truncate .ID 12}}"),
    ('{{truncate .ID "x"}}', "truncate takes a field and a number"),
    ("{{.ID | truncate 3}}", "truncate takes a field and a number"),
    ("{{.ID json}}", 'the function "json" cannot be an argument; pipe into it instead'),
    ("{{.ID .Name}}", '".ID" is not a function and takes no arguments'),
    ("{{.ID | .Name}}", '".Name" is not a function'),
    ('{{"a"b}}', 'unknown function "b"'),
    ("{{²}}", 'unknown function "²"'),
])
def test_a_template_that_could_not_run_is_refused_before_rendering(fmt: str, message: str
                                                                   ) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        render(fmt, [{"ID": "abc", "Name": "web"}], ("ID",), ("ID", "Name"))
    assert render("{{.ID | upper}} {{println .Name 1}}", [{"ID": "abc", "Name": "w"}],
                  ("ID",), ("ID", "Name")) == "ABC w 1\n"
