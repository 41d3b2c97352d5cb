"""Values that start with a dash reach their flag's parser (issue 18).

`--restart-delay -5s` used to end in argparse's "expected one argument": it
took "-5s" for an option. Docker's flag parser takes the word after a value
flag as its value, and refuses a negative duration as such; so does `swarm`
for every duration and number flag (cli.lazyparse reads a dash and a digit
as a value), without touching the container's own arguments after IMAGE.
"""
from __future__ import annotations


import pytest

from cli import commands_swarm, specs
from cli.commands_ca import parse_ca_flags
from cli.main import main, parse_command_line
from cli.parsing import UsageError
from proto import objects_pb2 as pb

SERVICE_DURATIONS = ("--stop-grace-period", "--restart-delay", "--restart-window",
                     "--update-delay", "--update-monitor", "--rollback-delay",
                     "--rollback-monitor", "--health-interval", "--health-timeout",
                     "--health-start-period", "--health-start-interval")
SERVICE_NUMBERS = {
    "--replicas": "invalid replicas value -1: must be a non-negative integer",
    "--restart-max-attempts": "invalid max attempts -1 for --restart-max-attempts: must be "
                              "a non-negative integer",
    "--replicas-max-per-node": "invalid value -1 for --replicas-max-per-node: must be a "
                               "non-negative integer",
    "--update-parallelism": "invalid parallelism -1 for --update-parallelism",
    "--rollback-parallelism": "invalid parallelism -1 for --rollback-parallelism",
    "--health-retries": "invalid retries -1 for --health-retries",
    "--update-max-failure-ratio": 'invalid value "-1" for --update-max-failure-ratio: '
                                  "expected a number between 0 and 1",
    "--rollback-max-failure-ratio": "--rollback-max-failure-ratio: expected a number "
                                    "between 0 and 1",
    "--limit-cpu": 'invalid CPU value "-1" for --limit-cpu: expected a non-negative number',
    "--reserve-cpu": 'invalid CPU value "-1" for --reserve-cpu',
    "--limit-memory": 'invalid size "-1" for --limit-memory',
    "--reserve-memory": 'invalid size "-1" for --reserve-memory',
}


def _service(verb: str, argv: list[str]) -> pb.ServiceSpec:
    if verb == "create":
        return specs.create_spec(parse_command_line(["service", "create", *argv, "busybox"]))
    current = specs.create_spec(parse_command_line(["service", "create", "busybox"]))
    return specs.update_spec(current, parse_command_line(["service", "update", *argv, "web"]))


@pytest.mark.parametrize("verb", ["create", "update"])
@pytest.mark.parametrize("flag", SERVICE_DURATIONS)
def test_a_negative_duration_is_refused_as_negative(verb: str, flag: str) -> None:
    with pytest.raises(UsageError, match=f'invalid duration "-5s" for {flag}: must not be '
                                         "negative"):
        _service(verb, [flag, "-5s"])


@pytest.mark.parametrize("verb", ["create", "update"])
@pytest.mark.parametrize("flag,message", sorted(SERVICE_NUMBERS.items()))
def test_a_negative_number_is_refused_with_its_range(verb: str, flag: str, message: str
                                                     ) -> None:
    with pytest.raises(UsageError) as refused:
        _service(verb, [flag, "-1"])
    assert message in str(refused.value)


@pytest.mark.parametrize("value", ["-5s", "-1.5h", "-.5s", "-0"])
def test_dash_words_are_values_for_the_flag_before_them(value: str) -> None:
    ns = parse_command_line(["service", "create", "--restart-delay", value, "busybox"])
    assert ns.restart_delay == value and ns.image == "busybox"


def test_the_container_s_own_arguments_are_left_alone() -> None:
    spec = _service("create", ["--restart-delay", "5s"])
    ns = parse_command_line(["service", "create", "busybox", "sleep", "--restart-delay", "-5s"])
    assert ns.image == "busybox" and ns.command == ["sleep", "--restart-delay", "-5s"]
    assert spec.task.restart.delay.nanos == 5 * 10**9


def test_a_dash_word_that_is_not_a_number_is_still_an_option() -> None:
    with pytest.raises(SystemExit):
        parse_command_line(["service", "create", "--restart-delay", "-x", "busybox"])


@pytest.mark.parametrize("argv,flag", [
    (["update", "--dispatcher-heartbeat", "-5s"], "--dispatcher-heartbeat"),
    (["update", "--cert-expiry", "-1h"], "--cert-expiry"),
])
def test_swarm_update_refuses_negative_durations(argv: list[str], flag: str) -> None:
    with pytest.raises(UsageError, match=f"for {flag}: must not be negative"):
        commands_swarm.parse_changes(parse_command_line(argv))


def test_swarm_update_keeps_a_negative_history_limit() -> None:
    """Docker: a negative --task-history-limit keeps every task; it is a value, not a flag."""
    changes = commands_swarm.parse_changes(parse_command_line(
        ["update", "--task-history-limit", "-1"]))
    assert changes.task_history_limit == -1


def test_swarm_ca_refuses_a_negative_cert_expiry() -> None:
    with pytest.raises(UsageError, match='"-1h" for --cert-expiry: must not be negative'):
        parse_ca_flags(parse_command_line(["ca", "--cert-expiry", "-1h"]))


def test_swarm_init_refuses_a_negative_heartbeat(capsys: pytest.CaptureFixture[str],
                                                 tmp_path) -> None:
    code = main(["init", "--data-dir", str(tmp_path / "node"), "--dispatcher-heartbeat",
                 "-5s"])
    assert code == 1
    assert capsys.readouterr().err.startswith(
        'Error: invalid duration "-5s" for --dispatcher-heartbeat: must not be negative')
    assert not (tmp_path / "node").exists()


def test_events_since_a_negative_duration_is_a_value() -> None:
    """`--since -10s` is ten seconds after now (cli.timevalues), not an unknown option."""
    ns = parse_command_line(["events", "--since", "-10s", "--until", "-1s"])
    assert (ns.since, ns.until) == ("-10s", "-1s")


def test_replicas_minus_one_on_scale(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-H", "unix:///nonexistent/dir/swarm.sock", "service", "scale", "web=-1"])
    assert code == 1
    assert "invalid replicas value -1: must be a non-negative integer" in capsys.readouterr().err
