"""`service create/update` --env-file, --limit-pids, --oom-score-adj and the log drivers
podman has, without podman.

Each flag is followed from the command line to the spec, through the manager's
checks (for every API caller), to what the agent asks podman for (libpod's create
body, `worker.podman_wire.container_spec`), and to `inspect --pretty`. The
real-podman check is in tests/test_e2e_services.py (test_pids_oom_env_file_and_log).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cli import envfile, pretty, servicelogs, specs
from cli.client import CLIError
from cli.compose.errors import ComposeError
from cli.flags import rewrite_bool_assignments
from cli.main import build_parser
from cli.parsing import UsageError
from manager.validation import InvalidSpec, check_service_spec, normalise_service_spec
from proto import logrules
from proto import objects_pb2 as pb
from tests.test_compose_convert import definition, svc
from tests.test_worker_fakes import make_task
from worker import taskspec
from worker.caps import CapabilityError
from worker.podman_wire import container_spec


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(rewrite_bool_assignments(list(argv)))


def create(*argv: str) -> pb.ServiceSpec:
    return specs.create_spec(parse("service", "create", *argv, "busybox"))


def update(spec: pb.ServiceSpec, *argv: str) -> pb.ServiceSpec:
    return specs.update_spec(spec, parse("service", "update", *argv, "web"))


def body(spec: pb.ServiceSpec, grantable: tuple[str, ...] = ("CAP_SYS_RESOURCE",)) -> dict:
    """libpod's create body for a task of `spec` on a node that can grant `grantable`."""
    task = make_task()
    task.spec.CopyFrom(spec.task)
    return container_spec(taskspec.container_config(task, "node1", grantable_caps=grantable))


def check(spec: pb.ServiceSpec) -> None:
    spec.annotations.name = "web"
    normalise_service_spec(spec)
    check_service_spec(spec)


# ---------------------------------------------------------------- env files --

ENV = {"FROM_CLIENT": "client value"}


@pytest.mark.parametrize("text, entries", [
    (b"A=1\nB=two words \n", ["A=1", "B=two words "]),       # trailing space kept
    (b"# a comment\n\n   \n  C=3\n", ["C=3"]),                 # leading space dropped
    (b"\xef\xbb\xbfBOM=1\r\nCRLF=2\r\n", ["BOM=1", "CRLF=2"]),
    (b'Q="quoted"\nE=\nX=a=b', ['Q="quoted"', "E=", "X=a=b"]),  # as is, no newline at end
    (b"FROM_CLIENT\nNOT_SET\n", ["FROM_CLIENT=client value"]),  # bare key: the client's
    (b"#=not a var\n", []),
])
def test_env_file_lines_as_docker_reads_them(text: bytes, entries: list[str]) -> None:
    assert envfile.parse_env_file("app.env", text, ENV) == entries


@pytest.mark.parametrize("text, message", [
    (b"A=1\n=2\n", 'invalid env file "app.env", line 2: no variable name in "=2" '
                   "(expected KEY=VALUE)"),
    (b"MY VAR=1\n", 'invalid env file "app.env", line 1: the variable name "MY VAR" '
                    "contains white space (expected KEY=VALUE)"),
    (b"A\tB=1\n", 'invalid env file "app.env", line 1: the variable name "A\tB" contains'),
    (b"A=1\n\nB=\xff\n", 'invalid env file "app.env", line 3: not UTF-8 text'),
])
def test_a_bad_env_file_line_is_named(text: bytes, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        envfile.parse_env_file("app.env", text, ENV)
    assert str(caught.value).startswith(message)


def test_env_files_come_before_env_which_wins(tmp_path: Path) -> None:
    first = tmp_path / "first.env"
    first.write_text("A=from-first\nB=from-first\nC=from-first\n")
    second = tmp_path / "second.env"
    second.write_text("B=from-second\n")
    spec = create("--env-file", str(first), "--env-file", str(second), "-e", "C=from-flag",
                  "-e", "D=4")
    assert list(spec.task.container.env) == ["A=from-first", "B=from-second", "C=from-flag",
                                            "D=4"]
    assert body(spec)["env"] == {"A": "from-first", "B": "from-second", "C": "from-flag",
                                 "D": "4"}


def test_a_missing_env_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    with pytest.raises(UsageError) as caught:
        create("--env-file", str(missing))
    assert str(caught.value) == (f'cannot read the env file "{missing}" (--env-file): '
                                 "no such file or directory")


def test_service_update_has_no_env_file_as_docker() -> None:
    with pytest.raises(SystemExit):
        parse("service", "update", "--env-file", "x.env", "web")


# ------------------------------------------------------------- pids limit --

def test_limit_pids_on_create_and_update() -> None:
    spec = create("--limit-pids", "100")
    assert spec.task.resources.limits.pids == 100
    assert body(spec)["resource_limits"]["pids"] == {"limit": 100}
    assert update(spec, "--replicas", "2").task.resources.limits.pids == 100
    unlimited = update(spec, "--limit-pids", "0")
    assert unlimited.task.resources.limits.pids == 0
    check(unlimited)


def test_no_pids_limit_is_unlimited_as_docker_not_podman_s_default() -> None:
    """Left out, podman would apply its containers.conf default (2048)."""
    assert body(create())["resource_limits"]["pids"] == {"limit": 0}
    assert body(create("--limit-pids", "0"))["resource_limits"]["pids"] == {"limit": 0}


@pytest.mark.parametrize("value, message", [
    ("-1", 'invalid value "-1" for --limit-pids: the range is 0 to 9223372036854775807; '
           "0 = unlimited"),
    ("1" + "0" * 19, 'invalid value "10000000000000000000" for --limit-pids: the range is 0'),
    ("ten", 'invalid value "ten" for --limit-pids: expected an integer'),
    ("1_000", 'invalid value "1_000" for --limit-pids: expected an integer'),
    ("1.5", 'invalid value "1.5" for --limit-pids: expected an integer'),
])
def test_a_bad_pids_limit_is_refused(value: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        create("--limit-pids", value)
    assert str(caught.value).startswith(message)


def test_the_manager_refuses_a_negative_or_reserved_pids_count() -> None:
    spec = create()
    spec.task.resources.limits.pids = -5
    with pytest.raises(InvalidSpec, match=r"invalid pids limit -5: must not be negative "
                                          r"\(0 = unlimited\)"):
        check(spec)
    spec = create()
    spec.task.resources.reservations.pids = 5
    with pytest.raises(InvalidSpec, match="pids can be limited, not reserved"):
        check(spec)


# ---------------------------------------------------------- OOM score adj --

@pytest.mark.parametrize("value", ["-1000", "-500", "0", "1000", "+7"])
def test_oom_score_adj_in_range(value: str) -> None:
    spec = create("--oom-score-adj", value)
    assert spec.task.container.oom_score_adj == int(value)
    check(spec)
    if int(value):
        assert body(spec)["oom_score_adj"] == int(value)
    else:
        assert "oom_score_adj" not in body(spec)


def test_oom_score_adj_on_update() -> None:
    spec = update(create("--oom-score-adj", "300"), "--oom-score-adj", "-200")
    assert spec.task.container.oom_score_adj == -200
    assert update(spec, "--replicas", "3").task.container.oom_score_adj == -200


def test_a_node_without_cap_sys_resource_rejects_a_negative_score() -> None:
    """The kernel lets only CAP_SYS_RESOURCE lower a score; the runtime's own error
    would be "write child: broken pipe"."""
    assert body(create("--oom-score-adj", "500"), grantable=())["oom_score_adj"] == 500
    with pytest.raises(CapabilityError) as caught:
        body(create("--oom-score-adj", "-1"), grantable=())
    assert str(caught.value) == (
        "--oom-score-adj -1 needs CAP_SYS_RESOURCE to lower the OOM score, and this node's "
        "engine runs without it (e.g. inside a container that drops it): use a value of 0 "
        "or more, or place the service on nodes that have it")


@pytest.mark.parametrize("value", ["1001", "-1001", "99999999999999999999"])
def test_oom_score_adj_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        create("--oom-score-adj", value)
    assert str(caught.value) == (f'invalid value "{value}" for --oom-score-adj: the range is '
                                 "-1000 to 1000")
    spec = create()
    spec.task.container.oom_score_adj = 1001
    with pytest.raises(InvalidSpec, match=r"invalid OOM score adjustment 1001: the range is "
                                          r"\[-1000, 1000\]"):
        check(spec)


# ------------------------------------------------------------ log drivers --

@pytest.mark.parametrize("argv, driver, log", [
    ([], "", {"driver": "k8s-file"}),
    (["--log-driver", "json-file", "--log-opt", "max-size=1m", "--log-opt", "max-file=1"],
     "json-file", {"driver": "k8s-file", "size": 1 << 20}),
    (["--log-driver", "local"], "local", {"driver": "k8s-file", "size": 20 << 20}),
    (["--log-driver", "journald"], "journald", {"driver": "journald"}),
    (["--log-driver", "journald", "--log-opt", "tag={{.Name}}"], "journald",
     {"driver": "journald", "options": {"tag": "{{.Name}}"}}),
    (["--log-driver", "none"], "none", {"driver": "none"}),
])
def test_each_driver_reaches_podman(argv: list[str], driver: str, log: dict) -> None:
    spec = create(*argv)
    assert spec.task.log_driver == driver
    check(spec)
    assert body(spec)["log_configuration"] == log


@pytest.mark.parametrize("argv, message", [
    (["--log-driver", "journald", "--log-opt", "max-size=1m"],
     'log option "max-size" is not supported by the journald log driver: it takes tag only '
     "(--log-opt)"),
    (["--log-driver", "none", "--log-opt", "tag=x"],
     'log option "tag" is not supported by the none log driver: it keeps no log, so it '
     "takes no options (--log-opt)"),
    # conmon: "k8s-file doesn't support --log-tag"; the container would never start
    (["--log-driver", "json-file", "--log-opt", "tag=web"],
     'log option "tag" is not supported by the json-file log driver: podman\'s log file '
     "keeps no tag (conmon refuses one); use --log-driver journald for tagged output"),
    (["--log-opt", "tag=web"], 'log option "tag" is not supported by the json-file log'),
    (["--log-driver", "local", "--log-opt", "tag=web"],
     'log option "tag" is not supported by the local log driver'),
    (["--log-driver", "gelf"], 'log driver "gelf" is not supported for --log-driver: Shoal '
                               "runs tasks with podman"),
    (["--log-driver", "k8s-file"], 'log driver "k8s-file" is not supported for --log-driver'),
])
def test_what_a_driver_does_not_take_is_refused(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        create(*argv)
    assert str(caught.value).startswith(message)


def test_update_keeps_the_driver_for_log_opt_alone_and_checks_against_it() -> None:
    spec = create("--log-driver", "journald", "--log-opt", "tag=a")
    tagged = update(spec, "--log-opt", "tag=b")
    assert (tagged.task.log_driver, dict(tagged.task.log_driver_options)) == \
        ("journald", {"tag": "b"})
    with pytest.raises(UsageError, match='"max-size" is not supported by the journald'):
        update(spec, "--log-opt", "max-size=1m")
    with pytest.raises(UsageError, match='"tag" is not supported by the json-file'):
        update(spec, "--log-driver", "json-file", "--log-opt", "tag=b")
    silent = update(spec, "--log-driver", "none")
    assert (silent.task.log_driver, dict(silent.task.log_driver_options)) == ("none", {})
    assert update(silent, "--replicas", "2").task.log_driver == "none"


@pytest.mark.parametrize("driver, options, message", [
    ("syslog", {}, 'log driver "syslog" is not supported: Shoal runs tasks with podman'),
    ("journald", {"max-file": "1"}, 'log option "max-file" is not supported by the journald'),
    ("none", {"max-size": "1m"}, 'log option "max-size" is not supported by the none'),
    ("", {"tag": "x"}, 'log option "tag" is not supported by the json-file log driver'),
])
def test_the_manager_refuses_what_podman_cannot_run(driver: str, options: dict[str, str],
                                                    message: str) -> None:
    spec = create()
    spec.task.log_driver = driver
    spec.task.log_driver_options.update(options)
    with pytest.raises(InvalidSpec) as caught:
        check(spec)
    assert str(caught.value).startswith(message)
    with pytest.raises(logrules.LogOptionError):
        body(spec)   # nor does the agent make such a container


def test_service_logs_of_a_driver_that_keeps_none_says_so() -> None:
    servicelogs.check_readable(create("--log-driver", "journald").task)
    with pytest.raises(CLIError) as caught:
        servicelogs.check_readable(create("--log-driver", "none").task)
    assert str(caught.value).startswith("Error: configured logging driver does not support "
                                        'reading: the log driver is "none"')


# ------------------------------------------------------------------ pretty --

def test_inspect_pretty_shows_pids_and_the_log_driver() -> None:
    svc = pb.Service(id="s1")
    svc.spec.CopyFrom(create("--name", "web", "--limit-pids", "64", "--log-driver",
                             "json-file", "--log-opt", "max-size=1m"))
    lines = [line.rstrip() for line in pretty.service_text(svc).splitlines()]
    at = lines.index("Log Driver:")
    assert [" ".join(x.split()) for x in lines[at:at + 4]] == \
        ["Log Driver:", "Name: json-file", "LogOpts:", "max-size: 1m"]
    at = lines.index("Resources:")
    assert [" ".join(x.split()) for x in lines[at:at + 3]] == ["Resources:", "Limits:",
                                                               "PIDs: 64"]
    plain = pb.Service(id="s2")
    plain.spec.CopyFrom(create("--name", "web"))
    text = pretty.service_text(plain)
    assert "Log Driver:" not in text and "PIDs:" not in text


# ----------------------------------------------------------------- compose --

def test_a_stack_sets_them_as_service_create_does() -> None:
    """Docker's stack deploy maps deploy.resources.limits.pids, oom_score_adj and
    logging.driver; env_file is read by the loader (cli/compose/paths.py)."""
    spec = svc(definition(
        "version: '3.9'\nservices:\n  web:\n    image: busybox\n    oom_score_adj: 200\n"
        "    logging:\n      driver: journald\n      options: {tag: web}\n"
        "    deploy:\n      resources:\n        limits: {pids: 50}\n"), "app_web")
    assert spec.task.resources.limits.pids == 50
    assert spec.task.container.oom_score_adj == 200
    assert (spec.task.log_driver, dict(spec.task.log_driver_options)) == ("journald",
                                                                           {"tag": "web"})
    assert body(spec)["log_configuration"] == {"driver": "journald", "options": {"tag": "web"}}


def test_a_stack_s_log_options_are_checked_against_its_driver() -> None:
    with pytest.raises(ComposeError) as caught:
        definition("version: '3.9'\nservices:\n  web:\n    image: busybox\n    logging:\n"
                   "      driver: journald\n      options: {max-size: 1m}\n")
    assert 'log option "max-size" is not supported by the journald log driver' in \
        str(caught.value)
