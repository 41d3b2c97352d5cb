"""`swarm stack deploy|ls|services|ps|rm` against a fake Control API (cli/commands_stack.py).

Each command runs through `cli.main.main` with the node's client replaced by a
fake that records the calls and answers from a script, so the output, the
exit codes and the requests are those of the real command line.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from cli import commands_stack, context
from cli.client import FAST_METHODS, RpcFailure
from cli.compose.convert import NAMESPACE_LABEL
from cli.context import Context
from cli.main import build_parser, main
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from tests.compose_helpers import ATSEA

Change = cpb.StackChange
NOW = 1_700_000_000.0
STACK = """\
services:
  web:
    image: nginx:1
    secrets: [key]
  db:
    image: redis:7
secrets:
  key:
    file: ./key.txt
"""


class FakeClient:
    """Answers Control calls from `answers` (a response, an exception, or a function of
    the request giving either); records every call."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Any, Optional[float]]] = []
        self.fallbacks: list[str] = []

    def call(self, method: str, request: Any, timeout: Optional[float] = None) -> Any:
        self.calls.append((method, request, timeout))
        if method not in self.answers:
            raise AssertionError(f"unexpected call {method}")
        answer = self.answers[method]
        if callable(answer) and not isinstance(answer, type):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.calls]

    def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch) -> Callable[[dict[str, Any]], FakeClient]:
    def install(answers: dict[str, Any]) -> FakeClient:
        client = FakeClient(answers)
        monkeypatch.setattr(context, "Client", lambda host: client)
        # no registry here: the images go as the file names them (pinning them to
        # digests, --resolve-image, is tests/test_imagepin.py's)
        monkeypatch.setattr(commands_stack, "pin_images", lambda *args: None)
        return client
    return install


@pytest.fixture
def stack_file(tmp_path: Path) -> Path:
    (tmp_path / "key.txt").write_bytes(b"s3cret\n")
    path = tmp_path / "stack.yml"
    path.write_text(STACK)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["-H", "unix:///fake/swarm.sock", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def changes(*items: tuple[Any, str, str, str]) -> cpb.DeployStackResponse:
    return cpb.DeployStackResponse(changes=[Change(action=a, kind=k, name=n, id=i)
                                            for a, k, n, i in items])


# ----------------------------------------------------------------- deploy ----

def test_deploy_sends_the_converted_stack_and_prints_dockers_lines(capsys, fake,
                                                                   stack_file) -> None:
    response = changes((Change.CREATE, "service", "app_web", "w1"),
                       (Change.CREATE, "network", "app_default", "n1"),
                       (Change.REMOVE, "service", "app_old", "o1"),
                       (Change.UPDATE, "service", "app_db", "d1"),
                       (Change.CREATE, "secret", "app_key", "k1"))
    client = fake({"DeployStack": response})
    code, out, err = run(capsys, "stack", "deploy", "-c", str(stack_file), "--prune", "-d",
                         "app")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["Removing service app_old", "Creating network app_default",
                                "Creating secret app_key", "Creating service app_web",
                                "Updating service app_db (id: d1)"]
    ((method, request, _),) = client.calls
    assert method == "DeployStack" and request.prune and not request.dry_run
    stack = request.stack
    assert stack.name == "app"
    assert [s.annotations.name for s in stack.services] == ["app_db", "app_web"]
    assert [n.annotations.name for n in stack.networks] == ["app_default"]
    assert [(s.annotations.name, s.data) for s in stack.secrets] == [("app_key", b"s3cret\n")]
    assert all(s.annotations.labels[NAMESPACE_LABEL] == "app" for s in stack.services)


def test_up_is_deploy_and_reads_standard_input(capsys, fake, monkeypatch) -> None:
    client = fake({"DeployStack": changes((Change.CREATE, "service", "app_web", "w1"))})
    monkeypatch.setattr("sys.stdin", io.StringIO("services:\n  web: {image: 'nginx:1'}\n"))
    code, out, _ = run(capsys, "stack", "up", "-c", "-", "--detach", "app")
    assert (code, out) == (0, "Creating service app_web\n")
    assert [s.annotations.name for s in client.calls[0][1].stack.services] == ["app_web"]


def test_dry_run_prints_what_would_change_and_waits_for_nothing(capsys, fake,
                                                                stack_file) -> None:
    response = cpb.DeployStackResponse(changes=[
        Change(action=Change.UPDATE, kind="service", name="app_web", id="w1",
               fields=["task.container.image", "replicated.replicas"]),
        Change(action=Change.CREATE, kind="network", name="app_default"),
        Change(action=Change.REMOVE, kind="service", name="app_old", id="o1")])
    client = fake({"DeployStack": response})
    code, out, _ = run(capsys, "stack", "deploy", "--dry-run", "-c", str(stack_file), "app")
    assert code == 0
    assert out.splitlines() == [
        "Would remove service app_old (id: o1)", "Would create network app_default",
        "Would update service app_web (id: w1): task.container.image, replicated.replicas",
        "Dry run: nothing was changed"]
    assert client.methods() == ["DeployStack"] and client.calls[0][1].dry_run


def test_dry_run_of_an_unchanged_stack(capsys, fake, stack_file) -> None:
    fake({"DeployStack": cpb.DeployStackResponse()})
    code, out, _ = run(capsys, "stack", "deploy", "--dry-run", "-c", str(stack_file), "app")
    assert (code, out) == (0, "Dry run: nothing to do, stack app is as the files define it\n")


def test_unchanged_redeploy_says_so_and_waits_for_nothing(capsys, fake, stack_file) -> None:
    client = fake({"DeployStack": cpb.DeployStackResponse()})
    code, out, _ = run(capsys, "stack", "deploy", "-c", str(stack_file), "app")
    assert (code, out) == (0, "Stack app is up to date: nothing to change\n")
    assert client.methods() == ["DeployStack"]


@pytest.mark.parametrize("body,message", [
    ("services:\n  web: {image: 'nginx:1', replicas: 2}\n",
     'stack.yml, services.web.replicas: unknown key "replicas"'),
    ("services:\n  web: {image: 'nginx:1', secrets: [k]}\nsecrets:\n  k: {file: ./nope}\n",
     "Error: secrets.k.file: cannot read secret file"),
])
def test_a_bad_file_is_refused_before_any_call(capsys, fake, tmp_path, body,
                                               message) -> None:
    client = fake({})
    path = tmp_path / "stack.yml"
    path.write_text(body)
    code, out, err = run(capsys, "stack", "deploy", "-c", str(path), "app")
    assert code == 1 and out == ""
    assert message in err, err
    assert client.calls == []


BAD_AND_MISSING = """\
services:
  web:
    image: nginx:1
    colour: blue
    secrets: [k, here]
    networks: [outside]
    deploy: {replicas: lots}
networks:
  outside: {external: true}
secrets:
  k: {external: true}
  here: {external: true, name: present}
"""


def test_a_bad_file_also_names_the_externals_the_cluster_lacks(capsys, fake,
                                                                tmp_path) -> None:
    present = pb.Secret(id="s1")
    present.spec.annotations.name = "present"
    client = fake({"ListSecrets": cpb.ListSecretsResponse(secrets=[present]),
                   "ListNetworks": cpb.ListNetworksResponse()})
    path = tmp_path / "stack.yml"
    path.write_text(BAD_AND_MISSING)
    code, out, err = run(capsys, "stack", "deploy", "-c", str(path), "app")
    assert (code, out) == (1, "")
    lines = err.strip().splitlines()
    assert len(lines) == 4, err
    assert 'services.web.colour: unknown key "colour"' in err
    assert "services.web.deploy.replicas: must be an integer" in err
    assert 'secrets.k: secret "k" is declared as external, but could not be found' in err
    assert 'networks.outside: network "outside" is declared as external' in err
    assert '"present"' not in err
    assert sorted(client.methods()) == ["ListNetworks", "ListSecrets"]


def test_a_bad_file_without_a_cluster_still_gets_its_own_problems(capsys, fake,
                                                                  tmp_path) -> None:
    fake({"ListSecrets": RpcFailure("UNAVAILABLE", "no manager"),
          "ListNetworks": RpcFailure("UNAVAILABLE", "no manager")})
    path = tmp_path / "stack.yml"
    path.write_text(BAD_AND_MISSING)
    code, _, err = run(capsys, "stack", "deploy", "-c", str(path), "app")
    assert code == 1 and len(err.strip().splitlines()) == 2, err


def test_a_bad_stack_name_is_refused_before_any_call(capsys, fake, stack_file) -> None:
    client = fake({})
    code, _, err = run(capsys, "stack", "deploy", "-c", str(stack_file), "my stack")
    assert code == 1 and 'invalid stack name "my stack"' in err
    assert client.calls == []


def test_deploy_needs_a_compose_file(capsys, fake) -> None:
    fake({})
    code, _, err = run(capsys, "stack", "deploy", "app")
    assert code == 1 and "specify a Compose file" in err


def test_a_refused_deploy_shows_the_managers_reasons(capsys, fake, stack_file) -> None:
    why = ("stack app can't be deployed (2 problems, nothing was changed):\n"
           '- secret "k" is declared as external, but could not be found.\n'
           "- invalid constraint")
    fake({"DeployStack": RpcFailure("INVALID_ARGUMENT", why)})
    code, out, err = run(capsys, "stack", "deploy", "-c", str(stack_file), "app")
    assert (code, out) == (1, "")
    assert err == f"Error response from daemon: {why}\n"


def test_resolve_image_is_accepted_always_by_default(capsys) -> None:
    # its modes are tests/test_imagepin.py's
    ns = build_parser().parse_args(["stack", "deploy", "--resolve-image", "never", "-c", "x",
                                    "app"])
    assert ns.resolve_image == "never"
    assert build_parser().parse_args(["stack", "deploy", "-c", "x", "app"]).resolve_image \
        == "always"


# ---------------------------------------------------------------- waiting ----

def make_service(sid: str, name: str, state: int = 0, message: str = "") -> pb.Service:
    svc = pb.Service(id=sid, spec_version=2)
    svc.spec.annotations.name = name
    svc.spec.task.container.image = "nginx:1"
    svc.spec.replicated.replicas = 1
    svc.spec.update.monitor.nanos = 10**9
    svc.update_status.state = state  # type: ignore[assignment]
    svc.update_status.message = message
    return svc


def running_task(svc: pb.Service) -> pb.Task:
    task = pb.Task(id=f"t-{svc.id}", service_id=svc.id, slot=1, node_id="n1",
                   desired_state=pb.RUNNING, spec_version=svc.spec_version,
                   service_name=svc.spec.annotations.name)
    task.spec.CopyFrom(svc.spec.task)
    task.status.state = pb.RUNNING
    task.meta.created_at.CopyFrom(model.timestamp(NOW))
    return task


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def waiting_control(services: dict[str, pb.Service]) -> FakeClient:
    return FakeClient({
        "GetService": lambda r: cpb.GetServiceResponse(service=services[r.service_id]),
        "ListTasks": lambda r: cpb.ListTasksResponse(
            tasks=[running_task(services[sid]) for sid in r.filters.service_ids]),
    })


def test_deploy_waits_for_each_changed_service(capsys, fake, stack_file) -> None:
    web = make_service("w" * 25, "app_web")
    web.spec.update.monitor.nanos = 10**6       # a short stability window: this waits for real
    client = fake({"DeployStack": changes((Change.CREATE, "network", "app_default", "n1"),
                                          (Change.CREATE, "service", "app_web", web.id)),
                   **waiting_control({web.id: web}).answers})
    code, out, err = run(capsys, "stack", "deploy", "-c", str(stack_file), "app")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:3] == ["Creating network app_default", "Creating service app_web",
                         f"Waiting for service app_web (id: {web.id})"]
    # converged, then the stack's services verified stable together in one window
    assert lines[-2:] == [f"verify: Service {web.id} converged",
                          "verify: Waiting 0.001 seconds to verify that tasks are stable..."]
    assert client.methods()[:3] == ["DeployStack", "GetService", "ListTasks"]


def test_quiet_deploy_prints_the_changes_but_no_progress(capsys, fake, stack_file) -> None:
    web = make_service("w" * 25, "app_web")
    web.spec.update.monitor.nanos = 10**6
    fake({"DeployStack": changes((Change.CREATE, "service", "app_web", web.id)),
          **waiting_control({web.id: web}).answers})
    code, out, err = run(capsys, "stack", "deploy", "-q", "-c", str(stack_file), "app")
    assert (code, out, err) == (0, "Creating service app_web\n", "")


def test_waiting_names_the_service_that_rolled_back(capsys) -> None:
    good = make_service("g" * 25, "app_db", pb.UpdateStatus.COMPLETED, "update completed")
    bad = make_service("b" * 25, "app_web", pb.UpdateStatus.ROLLBACK_COMPLETED,
                       "update rolled back due to failure of task t1: unhealthy")
    control = waiting_control({good.id: good, bad.id: bad})
    out, err = io.StringIO(), io.StringIO()
    ctx = Context("unix:///fake", out=out, err=err, _client=control)  # type: ignore[arg-type]
    done = [Change(action=Change.UPDATE, kind="service", name="app_web", id=bad.id,
                   fields=["task.container.image"]),
            Change(action=Change.UPDATE, kind="service", name="app_db", id=good.id,
                   fields=["task.container.env"]),
            Change(action=Change.CREATE, kind="network", name="app_default", id="n1")]
    clock = Clock()
    code = commands_stack.wait_for_services(ctx, "app", done, quiet=False, clock=clock,
                                            sleep=clock.sleep)
    assert code == 1
    assert ("Error: service app_web: service rolled back: update rolled back due to "
            "failure of task t1: unhealthy") in err.getvalue()
    assert err.getvalue().splitlines()[-1] == ("Error: stack app: 1 service(s) did not "
                                               "converge: app_web")
    assert f"verify: Service {good.id} converged" in out.getvalue()


def test_waiting_stops_on_a_paused_update_even_after_an_earlier_wait(capsys) -> None:
    paused = make_service("p" * 25, "app_web", pb.UpdateStatus.PAUSED,
                          "update paused due to failure of task t2")
    control = waiting_control({paused.id: paused})
    out, err = io.StringIO(), io.StringIO()
    ctx = Context("unix:///fake", out=out, err=err, _client=control)  # type: ignore[arg-type]
    done = [Change(action=Change.UPDATE, kind="service", name="app_web", id=paused.id)]
    clock = Clock()
    assert commands_stack.wait_for_services(ctx, "app", done, quiet=True, clock=clock,
                                            sleep=clock.sleep) == 1
    assert out.getvalue() == ""
    assert "Error: service app_web: update paused due to failure of task t2" in err.getvalue()


def test_a_scale_only_update_does_not_expect_a_rolling_update() -> None:
    assert not commands_stack.rolls(Change(action=Change.UPDATE, kind="service",
                                           fields=["replicated.replicas"]))
    assert commands_stack.rolls(Change(action=Change.UPDATE, kind="service",
                                       fields=["replicated.replicas", "task.container.image"]))
    assert commands_stack.rolls(Change(action=Change.UPDATE, kind="service"))


def test_a_credentials_only_update_does_not_expect_a_rolling_update(capsys) -> None:
    """New registry credentials alone bump no spec version (manager/pullauth.same_task):
    the deploy must not wait for an UPDATING that never comes, nor fail on a service
    whose earlier update is paused."""
    for fields in (["task.container.pull_options.registry_auth"],
                   ["task.container.pull_options"]):
        assert not commands_stack.rolls(Change(action=Change.UPDATE, kind="service",
                                               fields=fields))
    assert commands_stack.rolls(Change(
        action=Change.UPDATE, kind="service",
        fields=["task.container.image", "task.container.pull_options.registry_auth"]))
    paused = make_service("p" * 25, "app_web", pb.UpdateStatus.PAUSED,
                          "update paused due to failure of task t2")
    paused.spec.update.monitor.nanos = 10**6
    control = waiting_control({paused.id: paused})
    out, err = io.StringIO(), io.StringIO()
    ctx = Context("unix:///fake", out=out, err=err, _client=control)  # type: ignore[arg-type]
    done = [Change(action=Change.UPDATE, kind="service", name="app_web", id=paused.id,
                   fields=["task.container.pull_options.registry_auth"])]
    clock = Clock()
    assert commands_stack.wait_for_services(ctx, "app", done, quiet=True, clock=clock,
                                            sleep=clock.sleep) == 0
    assert err.getvalue() == ""


# --------------------------------------------------------------------- ls ----

def test_ls_lists_stacks_in_natural_order(capsys, fake) -> None:
    stacks = [cpb.StackSummary(name=n, services=s)
              for n, s in (("web10", 1), ("seastack", 5), ("web2", 12))]
    fake({"ListStacks": cpb.ListStacksResponse(stacks=stacks)})
    code, out, _ = run(capsys, "stack", "ls")
    assert code == 0
    assert out.splitlines() == ["NAME       SERVICES", "seastack   5", "web2       12",
                                "web10      1"]
    code, out, _ = run(capsys, "stack", "list", "--format", "{{.Name}}: {{.Services}}")
    assert out.splitlines() == ["seastack: 5", "web2: 12", "web10: 1"]
    code, out, _ = run(capsys, "stack", "ls", "--format", "json")
    assert out.splitlines()[0] == '{"Name":"seastack","Services":"5"}'


def test_list_stacks_is_a_fast_read() -> None:
    assert "ListStacks" in FAST_METHODS


# --------------------------------------------------------------- services ----

def stack_service(name: str, sid: str) -> pb.Service:
    svc = pb.Service(id=sid)
    svc.spec.annotations.name = name
    svc.spec.annotations.labels[NAMESPACE_LABEL] = "app"
    svc.spec.task.container.image = "nginx:1"
    svc.spec.replicated.replicas = 1
    return svc


def test_services_lists_the_stacks_services_as_service_ls(capsys, fake) -> None:
    web, db = stack_service("app_web", "w" * 25), stack_service("app_db", "d" * 25)
    other = pb.Service(id="x" * 25)
    other.spec.annotations.name = "lonely"
    client = fake({"ListServices": cpb.ListServicesResponse(services=[web, other, db]),
                   "ListTasks": cpb.ListTasksResponse(tasks=[running_task(web)]),
                   "ListNodes": cpb.ListNodesResponse()})
    code, out, _ = run(capsys, "stack", "services", "app")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert [line.split()[1:4] for line in lines[1:]] == [
        ["app_db", "replicated", "0/1"], ["app_web", "replicated", "1/1"]]
    request = client.calls[0][1]
    assert dict(request.filters.labels) == {NAMESPACE_LABEL: "app"}
    code, out, _ = run(capsys, "stack", "services", "-q", "--filter", "name=app_w", "app")
    assert out.splitlines() == ["w" * 12]


def test_services_of_an_empty_stack(capsys, fake) -> None:
    fake({"ListServices": cpb.ListServicesResponse()})
    code, out, err = run(capsys, "stack", "services", "nope")
    assert (code, out, err) == (0, "", "Nothing found in stack: nope\n")


# --------------------------------------------------------------------- ps ----

def test_ps_lists_the_tasks_of_the_stacks_services(capsys, fake) -> None:
    web, db = stack_service("app_web", "w" * 25), stack_service("app_db", "d" * 25)
    node = pb.Node(id="n1")
    node.description.hostname = "node-1"
    tasks = [running_task(web), running_task(db)]
    client = fake({"ListServices": cpb.ListServicesResponse(services=[web, db]),
                   "ListNodes": cpb.ListNodesResponse(nodes=[node]),
                   "ListTasks": cpb.ListTasksResponse(tasks=tasks)})
    code, out, _ = run(capsys, "stack", "ps", "app")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "IMAGE", "NODE"]
    assert sorted(line.split()[1] for line in lines[1:]) == ["app_db.1", "app_web.1"]
    assert all("node-1" in line for line in lines[1:])
    list_tasks = [r for m, r, _ in client.calls if m == "ListTasks"][0]
    assert sorted(list_tasks.filters.service_ids) == [db.id, web.id]
    code, out, _ = run(capsys, "stack", "ps", "-q", "--no-trunc", "--filter",
                       "name=app_web", "app")
    assert out.splitlines() == [tasks[0].id]
    code, out, _ = run(capsys, "stack", "ps", "--format", "{{.Name}} {{.Node}}", "--filter",
                       "service=app_db", "app")
    assert out.splitlines() == ["app_db.1 node-1"]
    code, out, _ = run(capsys, "stack", "ps", "--no-resolve", "--format",
                       "{{.Name}} {{.Node}}", "--filter", "service=app_db", "app")
    assert out.splitlines() == ["app_db.1 n1"], "--no-resolve shows node IDs"


def test_ps_of_an_empty_stack_fails(capsys, fake) -> None:
    fake({"ListServices": cpb.ListServicesResponse()})
    code, out, err = run(capsys, "stack", "ps", "nope")
    assert (code, out, err) == (1, "", "nothing found in stack: nope\n")


def test_ps_refuses_an_unknown_filter(capsys, fake) -> None:
    fake({})
    code, _, err = run(capsys, "stack", "ps", "--filter", "colour=red", "app")
    assert code == 1 and 'invalid filter "colour"' in err


# --------------------------------------------------------------------- rm ----

def test_rm_prints_what_the_manager_removed(capsys, fake) -> None:
    removed = cpb.RemoveStackResponse(changes=[
        Change(action=Change.REMOVE, kind=k, name=n, id=i)
        for k, n, i in (("service", "app_db", "d"), ("service", "app_web", "w"),
                        ("secret", "app_key", "k"), ("config", "app_conf", "c"),
                        ("network", "app_default", "n"))])

    def answer(request: cpb.RemoveStackRequest) -> Any:
        if request.name == "app":
            return removed
        if request.name == "gone":
            return RpcFailure("NOT_FOUND", "Nothing found in stack: gone")
        return RpcFailure("FAILED_PRECONDITION", "secret used by service lonely")

    client = fake({"RemoveStack": answer})
    code, out, err = run(capsys, "stack", "rm", "app", "gone", "busy")
    assert code == 1
    assert out.splitlines() == ["Removing service app_db", "Removing service app_web",
                                "Removing secret app_key", "Removing config app_conf",
                                "Removing network app_default"]
    assert err.splitlines() == ["Nothing found in stack: gone",
                                "Error response from daemon: secret used by service lonely"]
    assert [r.name for _, r, _ in client.calls] == ["app", "gone", "busy"]
    assert all(t == commands_stack.REMOVE_TIMEOUT for _, _, t in client.calls)


@pytest.mark.parametrize("alias", ["remove", "down"])
def test_rm_aliases(capsys, fake, alias: str) -> None:
    fake({"RemoveStack": cpb.RemoveStackResponse()})
    code, out, err = run(capsys, "stack", alias, "empty")
    assert (code, out, err) == (0, "", "Nothing found in stack: empty\n")


# ------------------------------------------------------------------ AtSea ----

def test_atsea_deploys_as_one_definition(capsys, fake, tmp_path) -> None:
    path = tmp_path / "docker-stack.yml"
    path.write_text(ATSEA)
    client = fake({"DeployStack": cpb.DeployStackResponse()})
    code, _, err = run(capsys, "stack", "deploy", "-d", "-c", str(path), "atsea")
    assert (code, err) == (0, "")
    stack = client.calls[0][1].stack
    assert len(stack.services) == 5 and len(stack.networks) == 4
    assert list(stack.external_secrets) == ["postgres_password", "revprox_cert",
                                            "revprox_key", "staging_token"]
