"""A task's health in the CLI: `service ps --format` (Docker's State.Health under
`Health`, nested fields in templates) and `swarm inspect TASK` (pure, no daemon:
the Control API is a stub); `--health-start-interval` on create and update."""
from __future__ import annotations

import argparse
import json

import pytest

from cli import format as fmt
from cli.client import CLIError, RpcFailure
from cli.commands_inspect import inspect
from cli.main import build_parser
from cli.parsing import UsageError
from cli.templates import render
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from tests.test_cli_units import create, update

NOW = 1_700_000_000.0


def unhealthy_task() -> pb.Task:
    t = pb.Task(id="t" * 25, service_id="s" * 25, slot=1, node_id="n1", service_name="web",
                desired_state=pb.SHUTDOWN)
    t.spec.container.image = "busybox"
    t.status.state = pb.FAILED
    t.status.err = "unhealthy container"
    t.status.timestamp.CopyFrom(model.timestamp(NOW - 5))
    t.status.health.status = "unhealthy"
    t.status.health.failing_streak = 3
    for i in range(3):
        t.status.health.log.add(start=model.timestamp(NOW - 10 + i), end=model.timestamp(NOW - 9.5 + i),
                                exit_code=1, output=f"no /tmp/ok ({i})\n")
    return t


def plain_task() -> pb.Task:
    t = pb.Task(id="u" * 25, service_id="s" * 25, slot=2, node_id="n1", service_name="web",
                desired_state=pb.RUNNING)
    t.status.state = pb.RUNNING
    return t


def test_ps_json_shows_health_status_streak_and_last_results() -> None:
    rows = fmt.task_rows([unhealthy_task(), plain_task()], {}, now=NOW)
    lines = render("{{json .}}", rows, fmt.TASK_FIELDS, fmt.TASK_TEMPLATE_FIELDS).splitlines()
    sick = json.loads(lines[0])
    assert sick["Health"]["Status"] == "unhealthy" and sick["Health"]["FailingStreak"] == 3
    log = sick["Health"]["Log"]
    assert [r["Output"] for r in log] == [f"no /tmp/ok ({i})\n" for i in range(3)]
    assert log[0]["ExitCode"] == 1 and log[0]["Start"] == "2023-11-14T22:13:10Z"
    assert log[0]["End"] == "2023-11-14T22:13:10.500Z"
    assert "Health" not in json.loads(lines[1])   # no healthcheck: no health


def test_health_fields_in_templates_but_not_in_the_default_table() -> None:
    rows = fmt.task_rows([unhealthy_task(), plain_task()], {}, now=NOW)
    text = render("{{.Name}} {{.Health.Status}} {{.Health.FailingStreak}}", rows,
                  fmt.TASK_FIELDS, fmt.TASK_TEMPLATE_FIELDS)
    assert text.splitlines() == ["web.1 unhealthy 3", "web.2 <no value> <no value>"]
    table = render(None, rows, fmt.TASK_FIELDS, fmt.TASK_TEMPLATE_FIELDS)
    assert "HEALTH" not in table


class NotFound(RpcFailure):
    def __init__(self) -> None:
        super().__init__("NOT_FOUND", "not found")


class StubContext:
    """What `inspect` uses of a Context: a task store, a service and a node."""

    host = "unix:///nowhere"
    debug = False

    def __init__(self) -> None:
        self.tasks = {t.id: t for t in (unhealthy_task(), plain_task())}
        self.out: list[str] = []
        self.errors: list[str] = []

    def call(self, method: str, request: cpb.GetTaskRequest) -> cpb.GetTaskResponse:
        assert method == "GetTask"
        found = [t for tid, t in self.tasks.items() if tid.startswith(request.task_id)]
        if len(found) != 1:
            raise NotFound()
        return cpb.GetTaskResponse(task=found[0])

    def get_service(self, ref: str) -> pb.Service:
        if ref != "web":
            raise NotFound()
        svc = pb.Service(id="s" * 25)
        svc.spec.annotations.name = "web"
        return svc

    def resolve_node(self, ref: str) -> pb.Node:
        raise CLIError(f"Error: No such node: {ref}")

    def print(self, text: str = "") -> None:
        self.out.append(text)

    def warn(self, text: str) -> None:
        self.errors.append(text)


def run_inspect(ctx: StubContext, *argv: str) -> int:
    ns = build_parser().parse_args(["inspect", *argv])
    assert isinstance(ns, argparse.Namespace)
    return inspect(ctx, ns)  # type: ignore[arg-type]


def test_inspect_task_shows_its_health() -> None:
    ctx = StubContext()
    assert run_inspect(ctx, "ttt") == 0
    (task,) = json.loads(ctx.out[0])
    health = task["status"]["health"]
    assert health["status"] == "unhealthy" and health["failing_streak"] == 3
    assert health["log"][-1]["output"] == "no /tmp/ok (2)\n"
    assert health["log"][-1]["exit_code"] == 1
    assert task["status"]["err"] == "unhealthy container"


def test_inspect_falls_back_to_services_and_reports_what_is_missing() -> None:
    ctx = StubContext()
    assert run_inspect(ctx, "web", "nothing") == 1
    (service,) = json.loads(ctx.out[0])
    assert service["spec"]["annotations"]["name"] == "web"
    assert ctx.errors == ["Error: No such object: nothing"]
    ctx = StubContext()
    assert run_inspect(ctx, "--type", "node", "web") == 1
    assert ctx.errors == ["Error: No such node: web"] and json.loads(ctx.out[0]) == []


def test_health_start_interval_is_stored_by_create_and_update() -> None:
    spec = create(["--name", "web", "--health-cmd", "true", "--health-start-period", "10s",
                   "--health-start-interval", "500ms", "busybox"])
    assert spec.task.container.healthcheck.start_interval.nanos == 10**9 // 2
    spec = update(spec, ["--health-start-interval", "2s"])
    assert spec.task.container.healthcheck.start_interval.nanos == 2 * 10**9
    assert list(spec.task.container.healthcheck.test) == ["CMD-SHELL", "true"]


def test_a_negative_health_start_interval_is_refused() -> None:
    with pytest.raises(UsageError, match="--health-start-interval: must not be negative"):
        create(["--name", "web", "--health-start-interval", "-1s", "busybox"])
