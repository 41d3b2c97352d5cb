"""A task's log options (`TaskSpec.log_driver_options`) end to end, without podman.

The rules (proto/logrules.py), the manager's refusal of what podman cannot honour
(for every API caller), and the agent's path: task -> ContainerConfig.log_max_size ->
libpod's `log_configuration.size`; a task whose options the engine cannot honour is
rejected before a container is made. `service create`/`update` take Docker's
`--log-driver`/`--log-opt` and refuse what the manager would. The real-podman behaviour is in
tests/test_podman_logopts.py.
"""
from __future__ import annotations

import argparse

import pytest

from cli import specs
from cli.flags import rewrite_bool_assignments
from cli.main import build_parser
from cli.parsing import UsageError
from manager.controlapi import services
from manager.controlapi.common import Code, Refusal
from proto import control_pb2 as cpb
from proto import logrules
from proto import objects_pb2 as pb
from tests.test_worker_controller import Harness
from tests.test_worker_fakes import FakeRuntime, make_task
from worker import taskspec
from worker.podman_wire import container_spec
from worker.runtime import ContainerConfig

MAX_FILE_REFUSAL = ('log option max-file "3" is not supported: podman keeps one log file per '
                    "task and starts it afresh when it reaches max-size (Docker's max-file 1); "
                    'remove max-file (or set it to "1") and choose max-size for how much '
                    "output to keep")


# ------------------------------------------------------------------ rules --

@pytest.mark.parametrize("options, size", [
    ({}, 0),
    ({"max-size": "10m"}, 10 << 20),
    ({"max-size": "10M", "max-file": "1"}, 10 << 20),
    ({"max-size": "1k"}, 1024),
    ({"max-size": "1.5k"}, 1536),
    ({"max-size": "2048"}, 2048),
    ({"max-size": "10MB"}, 10 << 20),
    ({"max-size": "10MiB"}, 10 << 20),
    ({"max-size": "1g"}, 1 << 30),
    ({"max-file": "1"}, 0),
])
def test_max_size_in_bytes_as_docker_reads_it(options: dict[str, str], size: int) -> None:
    assert logrules.log_max_size(options) == size


@pytest.mark.parametrize("options, message", [
    ({"max-size": "big"}, 'invalid size "big" for log option max-size: expected a number of '
                          "bytes with an optional unit b, k, m, g, t (e.g. 10m)"),
    ({"max-size": "-1"}, 'invalid size "-1" for log option max-size'),
    ({"max-size": "0"}, 'max-size must be a positive size, not "0" (e.g. 10m); leave max-size '
                        "out for an unlimited log"),
    # was an OverflowError (a float of 400 digits), in the manager as in the CLI
    ({"max-size": "9" * 400}, f'max-size "{"9" * 400}" is too large: at most '
                              "9223372036854775807 bytes (8 EiB)"),
    ({"max-size": "8e"}, 'invalid size "8e"'),
    ({"max-size": "10m", "max-file": "3"}, MAX_FILE_REFUSAL),
    ({"max-file": "0"}, 'max-file must be a positive number, not "0"'),
    ({"max-file": "two"}, 'max-file must be a positive number, not "two"'),
    ({"compress": "true"}, 'log option "compress" is not supported: Shoal keeps each task\'s '
                           "output in podman's log file, which takes max-size and max-file "
                           '"1" only'),
    ({"max-size": "1m", "labels": "a"}, 'log option "labels" is not supported'),
])
def test_what_podman_cannot_honour_is_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(logrules.LogOptionError) as caught:
        logrules.log_max_size(options)
    assert str(caught.value).startswith(message)


# ---------------------------------------------------------------- manager --

def service_spec(**options: str) -> pb.ServiceSpec:
    spec = pb.ServiceSpec()
    spec.annotations.name = "web"
    spec.task.container.image = "busybox:latest"
    spec.replicated.replicas = 1
    spec.task.log_driver_options.update(options)
    return spec


def create(spec: pb.ServiceSpec) -> pb.Service:
    return services.new_service(cpb.CreateServiceRequest(spec=spec), services.Refs())


def test_the_manager_stores_the_options_as_sent() -> None:
    svc = create(service_spec(**{"max-size": "10m", "max-file": "1"}))
    assert dict(svc.spec.task.log_driver_options) == {"max-size": "10m", "max-file": "1"}


@pytest.mark.parametrize("options, message", [
    ({"max-size": "10m", "max-file": "3"}, MAX_FILE_REFUSAL),
    ({"max-size": "0"}, 'max-size must be a positive size, not "0" (e.g. 10m); leave max-size '
                        "out for an unlimited log"),
    # was an OverflowError, an internal error instead of a refusal
    ({"max-size": "9" * 400}, f'max-size "{"9" * 400}" is too large: at most '
                              "9223372036854775807 bytes (8 EiB); leave max-size out for an "
                              "unlimited log"),
    ({"mode": "non-blocking"}, 'log option "mode" is not supported: Shoal keeps each task\'s '
                               "output in podman's log file, which takes max-size and "
                               'max-file "1" only'),
])
def test_the_manager_refuses_what_podman_cannot_honour(options: dict[str, str],
                                                       message: str) -> None:
    with pytest.raises(Refusal) as caught:
        create(service_spec(**options))
    assert (caught.value.code, caught.value.message) == (Code.INVALID_ARGUMENT, message)


# ------------------------------------------------------------------ agent --

def test_the_task_s_max_size_reaches_libpod_in_bytes() -> None:
    task = make_task()
    task.spec.log_driver_options.update({"max-size": "1k", "max-file": "1"})
    config = taskspec.container_config(task, "node1", grantable_caps=[])
    assert config.log_max_size == 1024
    assert container_spec(config)["log_configuration"] == {"driver": "k8s-file", "size": 1024}


def test_without_options_the_log_is_unlimited_as_before() -> None:
    config = taskspec.container_config(make_task(), "node1", grantable_caps=[])
    assert config.log_max_size == 0
    assert container_spec(config)["log_configuration"] == {"driver": "k8s-file"}
    assert container_spec(ContainerConfig(name="a", image="busybox"))["log_configuration"] \
        == {"driver": "k8s-file"}


async def test_a_task_whose_options_podman_cannot_honour_is_rejected() -> None:
    """A spec the manager would refuse (sent by an older manager, say) never makes a
    container with its options silently dropped."""
    task = make_task()
    task.spec.log_driver_options.update({"max-size": "10m", "max-file": "3"})
    runtime = FakeRuntime()
    rejected = await Harness(task, runtime).until(pb.REJECTED)
    assert (rejected.message, rejected.err) == ("preparing", MAX_FILE_REFUSAL)
    assert runtime.count("create") == 0


# -------------------------------------------------------------------- CLI --

def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(rewrite_bool_assignments(list(argv)))


def test_service_create_and_update_log_flags() -> None:
    spec = specs.create_spec(parse("service", "create", "--log-driver", "json-file",
                                   "--log-opt", "max-size=10m", "--log-opt", "max-file=1",
                                   "busybox"))
    assert dict(spec.task.log_driver_options) == {"max-size": "10m", "max-file": "1"}
    assert not specs.create_spec(parse("service", "create", "busybox")).task.log_driver_options
    # other flags leave them alone; --log-opt replaces them as a whole
    kept = specs.update_spec(spec, parse("service", "update", "--replicas", "2", "web"))
    assert dict(kept.task.log_driver_options) == {"max-size": "10m", "max-file": "1"}
    changed = specs.update_spec(spec, parse("service", "update", "--log-opt", "max-size=1m",
                                            "web"))
    assert dict(changed.task.log_driver_options) == {"max-size": "1m"}
    cleared = specs.update_spec(spec, parse("service", "update", "--log-driver", "json-file",
                                            "web"))
    assert dict(cleared.task.log_driver_options) == {}


def test_the_local_driver_limits_its_file_as_docker_s_does() -> None:
    """Docker's `local` driver keeps 20 MB files when no max-size is given: so does
    Shoal's (one file), from the CLI and from a Compose file's logging section."""
    local = specs.create_spec(parse("service", "create", "--log-driver", "local", "busybox"))
    assert dict(local.task.log_driver_options) == {"max-size": "20m"}
    given = specs.create_spec(parse("service", "create", "--log-driver", "local",
                                    "--log-opt", "max-size=1m", "busybox"))
    assert dict(given.task.log_driver_options) == {"max-size": "1m"}
    plain = specs.create_spec(parse("service", "create", "--log-driver", "json-file",
                                    "busybox"))
    assert dict(plain.task.log_driver_options) == {}


@pytest.mark.parametrize("argv, message", [
    (["--log-opt", "max-size=10m", "--log-opt", "max-file=3"], MAX_FILE_REFUSAL + " (--log-opt)"),
    (["--log-opt", "max-size"], 'invalid --log-opt "max-size": expected KEY=VALUE such as '
                                "max-size=10m"),
    (["--log-driver", "syslog"], 'log driver "syslog" is not supported for --log-driver: Shoal '
                                 "runs tasks with podman, which keeps their output in its own "
                                 "log file (json-file, local), in the node's journal (journald) "
                                 "or nowhere (none); use one of json-file, local, journald, none"),
    (["--log-opt", "compress=true"], 'log option "compress" is not supported: Shoal keeps each '
                                     "task's output in podman's log file, which takes max-size "
                                     'and max-file "1" only (--log-opt)'),
])
def test_the_cli_refuses_what_the_manager_would(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        specs.create_spec(parse("service", "create", *argv, "busybox"))
    assert str(caught.value) == message
