"""`--with-registry-auth` without a lab: the CLI puts the `swarm login` credentials of the
image's registry in the spec; the managers keep them (an update without the flag keeps
them, one with it replaces them, new credentials alone replace no task), never answer
them (service and task reads, Watch events, stack records), and the worker hands them
to podman's pull as X-Registry-Auth only when they hold credentials.

The CLI runs in process against the real Control API over the seeded in-memory
cluster (tests/cliserver.py)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from cli import imagepin, registry, registryauth
from cli.dockerconfig import DockerConfig, Login, registry_auth
from cli.parsing import UsageError
from manager import pullauth, redact
from manager.controlapi import services, stacks
from manager.controlapi.common import Refusal
from manager.orchestrator.slots import is_dirty
from manager.watchapi import outgoing
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb
from raft import actions
from tests.cliserver import InProcessClient, run, serve
from tests.test_stack_rules import Store, definition, svc_spec
from worker.podman_wire import pull_auth_header

REGISTRY = "10.99.7.1:5443"
IMAGE = f"{REGISTRY}/team/app:1"
PASSWORD = "pw-0f1e2d3c"


def decoded(value: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def auth_of(svc: pb.Service) -> dict:
    return decoded(svc.spec.task.container.pull_options.registry_auth)


DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """The digest look-ups of the commands (cli/imagepin.py), answered without a
    registry: (image, credentials) of each."""
    asked: list[tuple[str, object]] = []

    def resolve(image: str, creds: object) -> str:
        asked.append((image, creds))
        return DIGEST
    monkeypatch.setattr(imagepin, "_default_resolver", resolve)
    return asked


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
            resolved: list[tuple[str, object]]) -> InProcessClient:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    DockerConfig().store(REGISTRY, Login("alice", PASSWORD))
    return serve(monkeypatch)


def stored(cluster: InProcessClient, name: str) -> pb.Service:
    return next(s for s in cluster.control.store.list("service")
                if s.spec.annotations.name == name)


def swarm(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out


# ------------------------------------------------------------------ the CLI --

def test_create_with_registry_auth_sends_the_login_and_no_read_returns_it(
        cluster: InProcessClient, capsys: pytest.CaptureFixture[str],
        resolved: list[tuple[str, object]]) -> None:
    swarm(capsys, "service", "create", "-d", "--with-registry-auth", "--name", "priv", IMAGE)
    assert resolved == [(IMAGE, registry.Credentials("alice", PASSWORD))]   # digest look-up
    svc = stored(cluster, "priv")
    assert svc.spec.task.container.image == f"{IMAGE}@{DIGEST}"
    assert auth_of(svc) == {"username": "alice", "password": PASSWORD, "serveraddress": REGISTRY}
    encoded = svc.spec.task.container.pull_options.registry_auth
    shown = swarm(capsys, "service", "inspect", "priv") + \
        swarm(capsys, "service", "inspect", "--pretty", "priv") + \
        swarm(capsys, "service", "ls") + \
        swarm(capsys, "inspect", "priv")
    assert PASSWORD not in shown and encoded not in shown and "pull_options" not in shown
    got = cluster.control.ok("GetService", cpb.GetServiceRequest(service_id=svc.id)).service
    assert not got.spec.task.container.HasField("pull_options")
    listed = cluster.control.ok("ListServices", cpb.ListServicesRequest()).services
    assert not any(s.spec.task.container.HasField("pull_options") for s in listed)


def test_create_without_the_flag_sends_nothing(cluster: InProcessClient,
                                               capsys: pytest.CaptureFixture[str],
                                               resolved: list[tuple[str, object]]) -> None:
    swarm(capsys, "service", "create", "-d", "--name", "anon", IMAGE)
    assert resolved == [(IMAGE, None)]         # the digest is looked up anonymously
    swarm(capsys, "service", "create", "-d", "--with-registry-auth=false", "--name", "anon2",
          IMAGE)
    assert not stored(cluster, "anon").spec.task.container.HasField("pull_options")
    assert not stored(cluster, "anon2").spec.task.container.HasField("pull_options")


def test_update_keeps_the_auth_without_the_flag_and_replaces_it_with(
        cluster: InProcessClient, capsys: pytest.CaptureFixture[str]) -> None:
    swarm(capsys, "service", "create", "-d", "--with-registry-auth", "--name", "priv", IMAGE)
    swarm(capsys, "service", "update", "-d", "--env-add", "A=1", "priv")
    svc = stored(cluster, "priv")
    assert auth_of(svc)["password"] == PASSWORD and list(svc.spec.task.container.env) == ["A=1"]
    assert auth_of(svc) == decoded(svc.previous_spec.task.container.pull_options.registry_auth)
    DockerConfig().store(REGISTRY, Login("alice", "rotated"))
    version = svc.spec_version
    swarm(capsys, "service", "update", "-d", "--with-registry-auth", "priv")
    svc = stored(cluster, "priv")
    assert auth_of(svc)["password"] == "rotated"
    assert svc.spec_version == version          # new credentials alone replace no task
    DockerConfig().erase(REGISTRY)
    swarm(capsys, "service", "update", "-d", "--with-registry-auth", "priv")
    assert auth_of(stored(cluster, "priv")) == {"serveraddress": REGISTRY}   # anonymous


def test_docker_hub_images_use_the_hub_login(cluster: InProcessClient,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    DockerConfig().store("https://index.docker.io/v1/", Login("hubber", "hubpw"))
    swarm(capsys, "service", "create", "-d", "--with-registry-auth", "--name", "hub", "redis")
    assert auth_of(stored(cluster, "hub")) == {"username": "hubber", "password": "hubpw",
                                               "serveraddress": "https://index.docker.io/v1/"}


def test_task_reads_carry_no_auth(cluster: InProcessClient,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    swarm(capsys, "service", "create", "-d", "--with-registry-auth", "--name", "priv", IMAGE)
    svc = stored(cluster, "priv")
    task = pb.Task(id="t" * 25, service_id=svc.id, node_id="w1", slot=1)
    task.spec.CopyFrom(svc.spec.task)
    cluster.control.store.commit([actions.create(task)])
    got = cluster.control.ok("GetTask", cpb.GetTaskRequest(task_id=task.id)).task
    assert got.service_id == svc.id and not got.spec.container.HasField("pull_options")
    listed = cluster.control.ok("ListTasks", cpb.ListTasksRequest()).tasks
    assert listed and not any(t.spec.container.HasField("pull_options") for t in listed)
    out = swarm(capsys, "inspect", task.id) + swarm(capsys, "service", "ps", "priv")
    assert PASSWORD not in out
    assert cluster.control.store.get("task", task.id).spec.container.HasField("pull_options")


# ------------------------------------------------------------ manager rules --

def _service_with(auth: str) -> pb.Service:
    svc = pb.Service(id="s1", spec_version=3)
    svc.spec.annotations.name = "web"
    svc.spec.task.container.image = IMAGE
    svc.spec.replicated.replicas = 1
    if auth:
        svc.spec.task.container.pull_options.registry_auth = auth
    return svc


def test_bad_auth_values_are_refused_without_quoting_them() -> None:
    spec = _service_with("").spec
    spec.task.container.pull_options.registry_auth = "not base64 $$$"
    with pytest.raises(Refusal) as caught:
        services.new_service(cpb.CreateServiceRequest(spec=spec), services.Refs())
    assert "X-Registry-Auth" in caught.value.message and "$$$" not in caught.value.message
    spec.task.container.pull_options.registry_auth = base64.urlsafe_b64encode(b"[1]").decode()
    with pytest.raises(Refusal, match="not a JSON object"):
        services.new_service(cpb.CreateServiceRequest(spec=spec), services.Refs())
    spec.task.container.pull_options.registry_auth = ""
    made = services.new_service(cpb.CreateServiceRequest(spec=spec), services.Refs())
    assert not made.spec.task.container.HasField("pull_options")


def test_rollback_takes_the_previous_specs_auth() -> None:
    old = registry_auth(Login("a", "old"), REGISTRY)
    new = registry_auth(Login("a", "new"), REGISTRY)
    svc = _service_with(new)
    svc.previous_spec.CopyFrom(_service_with(old).spec)
    svc.previous_spec.task.container.image = f"{REGISTRY}/team/app:0"
    back = services.updated_service(svc, cpb.UpdateServiceRequest(rollback=True),
                                    services.Refs())
    assert back is not None and decoded(
        back.spec.task.container.pull_options.registry_auth)["password"] == "old"


def test_tasks_differing_in_auth_only_are_not_dirty() -> None:
    svc = _service_with(registry_auth(Login("a", "new"), REGISTRY))
    task = pb.Task(spec_version=2)
    task.spec.CopyFrom(_service_with(registry_auth(Login("a", "old"), REGISTRY)).spec.task)
    assert not is_dirty(task, svc)
    task.spec.container.image = "other:1"
    assert is_dirty(task, svc)
    assert pullauth.same_task(pb.TaskSpec(), pb.TaskSpec())


def test_stack_records_keep_no_auth_and_a_redeploy_without_it_keeps_the_services() -> None:
    store = Store()
    spec = svc_spec("web", image=IMAGE)
    spec.task.container.pull_options.registry_auth = registry_auth(Login("a", PASSWORD),
                                                                   REGISTRY)
    store.deploy(definition(spec))
    record = store.state.by_name("stack", "app")
    assert isinstance(record, pb.Stack)
    assert PASSWORD.encode() not in record.SerializeToString()
    assert not record.definition.services[0].task.container.HasField("pull_options")
    svc = store.service("app_web")
    assert decoded(svc.spec.task.container.pull_options.registry_auth)["password"] == PASSWORD
    assert store.deploy(definition(svc_spec("web", image=IMAGE))) == []   # nothing changes
    again = svc_spec("web", image=f"{REGISTRY}/team/app:2")
    store.deploy(definition(again))
    svc = store.service("app_web")
    assert decoded(svc.spec.task.container.pull_options.registry_auth)["password"] == PASSWORD
    assert stacks.stored_definition(definition(spec)).services[0].task.container \
        .HasField("pull_options") is False


def test_watch_events_strip_auth_from_services_tasks_and_stacks() -> None:
    auth = registry_auth(Login("a", PASSWORD), REGISTRY)
    svc = _service_with(auth)
    svc.previous_spec.CopyFrom(svc.spec)
    task = pb.Task(id="t1")
    task.spec.CopyFrom(svc.spec.task)
    stack = pb.Stack(id="k", name="app")
    stack.definition.services.add().CopyFrom(svc.spec)
    for obj, field in ((svc, "service"), (task, "task"), (stack, "stack")):
        ev = wpb.WatchEvent(action=wpb.WatchEvent.UPDATE, version=4)
        getattr(ev.object, field).CopyFrom(obj)
        getattr(ev.old_object, field).CopyFrom(obj)
        out = outgoing(ev, include_old=True)
        wire = out.SerializeToString()
        assert PASSWORD.encode() not in wire and auth.encode() not in wire, field
        assert auth.encode() in ev.SerializeToString()          # the store's copy untouched
    assert redact.service(_service_with("")) is not None
    plain = _service_with("")
    assert redact.service(plain) is plain and redact.task(pb.Task()) is not None


# ------------------------------------------------------------------ worker --

def test_the_pull_header_is_sent_only_with_credentials() -> None:
    auth = registry_auth(Login("a", PASSWORD), REGISTRY)
    assert pull_auth_header(auth, IMAGE) == {"X-Registry-Auth": auth}
    token = registry_auth(Login("<token>", "tok"), REGISTRY)
    assert pull_auth_header(token, IMAGE) == {"X-Registry-Auth": token}
    assert pull_auth_header(registry_auth(None, REGISTRY), IMAGE) is None
    assert pull_auth_header("", IMAGE) is None and pull_auth_header("%%%", IMAGE) is None


def test_the_pull_header_goes_only_to_the_registry_it_names() -> None:
    auth = registry_auth(Login("a", PASSWORD), REGISTRY)
    assert pull_auth_header(auth, f"{REGISTRY}/team/app:2@{DIGEST}") == {"X-Registry-Auth": auth}
    assert pull_auth_header(auth, "otherreg:5000/x:1") is None     # A's password never to B
    assert pull_auth_header(auth, "busybox") is None
    hub = registry_auth(Login("h", "hubpw"), "https://index.docker.io/v1/")
    for image in ("redis:7", "docker.io/library/redis", "registry-1.docker.io/user/app:1",
                  "index.docker.io/user/app"):
        assert pull_auth_header(hub, image) == {"X-Registry-Auth": hub}, image
    assert pull_auth_header(hub, IMAGE) is None
    nameless = base64.urlsafe_b64encode(json.dumps({"username": "a", "password": "p"})
                                        .encode()).decode()
    assert pull_auth_header(nameless, IMAGE) is None                # no serveraddress


def test_an_update_to_another_registry_drops_the_kept_auth() -> None:
    current = _service_with(registry_auth(Login("a", PASSWORD), REGISTRY)).spec
    for image, keeps in ((f"{REGISTRY}/team/app:2", True), ("otherreg:5000/x:1", False),
                         ("busybox", False), (f"https://{REGISTRY}/x", False)):
        sent = pb.ServiceSpec()
        sent.CopyFrom(current)
        sent.task.container.ClearField("pull_options")
        sent.task.container.image = image
        new = pb.ServiceSpec()
        new.CopyFrom(sent)
        pullauth.kept(new, sent, current)
        assert new.task.container.HasField("pull_options") is keeps, image


def test_service_update_image_to_another_registry_keeps_no_auth(
        cluster: InProcessClient, capsys: pytest.CaptureFixture[str]) -> None:
    swarm(capsys, "service", "create", "-d", "--with-registry-auth", "--name", "priv", IMAGE)
    swarm(capsys, "service", "update", "-d", "--image", f"{REGISTRY}/team/app:2", "priv")
    assert auth_of(stored(cluster, "priv"))["password"] == PASSWORD          # same registry
    swarm(capsys, "service", "update", "-d", "--image", "otherreg.example:5000/x:1", "priv")
    assert not stored(cluster, "priv").spec.task.container.HasField("pull_options")


def test_a_stack_moving_to_another_registry_keeps_no_auth() -> None:
    store = Store()
    spec = svc_spec("web", image=IMAGE)
    spec.task.container.pull_options.registry_auth = registry_auth(Login("a", PASSWORD),
                                                                   REGISTRY)
    store.deploy(definition(spec))
    store.deploy(definition(svc_spec("web", image="otherreg.example/x:1")))
    assert not store.service("app_web").spec.task.container.HasField("pull_options")


def test_stack_deploy_with_registry_auth(cluster: InProcessClient, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         resolved: list[tuple[str, object]]) -> None:
    compose = tmp_path / "priv.yml"
    compose.write_text(f"services:\n  api:\n    image: {IMAGE}\n  hub:\n    image: redis\n")
    swarm(capsys, "stack", "deploy", "-d", "--with-registry-auth", "-c", str(compose), "priv")
    assert sorted(resolved, key=lambda r: r[0]) == [
        (IMAGE, registry.Credentials("alice", PASSWORD)), ("redis", None)]
    assert auth_of(stored(cluster, "priv_api"))["password"] == PASSWORD
    assert auth_of(stored(cluster, "priv_hub")) == {"serveraddress":
                                                    "https://index.docker.io/v1/"}
    record = next(s for s in cluster.control.store.list("stack") if s.name == "priv")
    assert PASSWORD.encode() not in record.SerializeToString()
    compose.write_text(f"services:\n  api:\n    image: {IMAGE}\n    environment: [A=1]\n"
                       "  hub:\n    image: redis\n")
    swarm(capsys, "stack", "deploy", "-d", "-c", str(compose), "priv")   # no flag: kept
    api = stored(cluster, "priv_api")
    assert auth_of(api)["password"] == PASSWORD and list(api.spec.task.container.env) == ["A=1"]
    shown = swarm(capsys, "stack", "services", "priv") + swarm(capsys, "stack", "ls")
    assert PASSWORD not in shown


def test_credentials_for_a_digest_look_up(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    DockerConfig().store(REGISTRY, Login("alice", PASSWORD))
    assert registryauth.credentials_for(IMAGE) == registry.Credentials("alice", PASSWORD)
    assert registryauth.credentials_for("busybox") is None
    with pytest.raises(UsageError, match="^invalid reference format: "):
        registryauth.encoded_auth("UPPER/Case")
