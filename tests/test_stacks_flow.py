"""Stacks through the real Control API and a real single-node store, in one process:
a deploy is one store transaction, a redeploy of the same definition writes nothing,
a dry run writes nothing, a refused deploy leaves the store as it was, and `stack rm`
removes the networks only once the stack's tasks are gone."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator, Sequence

import grpc
import pytest

from manager.controlapi.server import ControlServicer
from manager.controlapi.stacks import NAMESPACE
from manager.logbroker import LogBroker
from manager.objects import copy
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions
from raft.store import Store
from tests.test_stack_rules import definition, sec_spec, svc_spec
from tests.test_worker_fakes import until

CREATE, UPDATE, REMOVE = cpb.StackChange.CREATE, cpb.StackChange.UPDATE, cpb.StackChange.REMOVE


class Flow:
    """A store and the control API of one manager, served on a unix socket."""

    def __init__(self, store: Store, tmp_path: Path) -> None:
        self.store = store
        self.socket = f"unix://{tmp_path}/m.sock"
        self.control = ControlServicer(store, "m1", str(tmp_path), LogBroker("m1"), lambda: "")
        self.server = grpc.aio.server()
        control_pb2_grpc.add_ControlServicer_to_server(self.control, self.server)
        self.channel = grpc.aio.insecure_channel(self.socket)
        self.stub = control_pb2_grpc.ControlStub(self.channel)

    async def start(self) -> None:
        self.server.add_insecure_port(self.socket)
        await self.server.start()

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop(0)

    async def deploy(self, d: pb.StackDefinition, prune: bool = False,
                     dry_run: bool = False) -> list[tuple[int, str, str, list[str]]]:
        out = await self.stub.DeployStack(
            cpb.DeployStackRequest(stack=d, prune=prune, dry_run=dry_run), timeout=10)
        return [(c.action, c.kind, c.name, list(c.fields)) for c in out.changes]

    async def refused(self, method: str, request: object) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await getattr(self.stub, method)(request, timeout=10)
        return info.value

    def names(self, kind: str) -> list[str]:
        return sorted(o.spec.annotations.name for o in self.store.list(kind))

    def service(self, name: str) -> pb.Service:
        found = self.store.by_name("service", name)
        assert isinstance(found, pb.Service)
        return found


@pytest.fixture
async def flow(store: Store, tmp_path: Path) -> AsyncIterator[Flow]:
    f = Flow(store, tmp_path)
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


def three() -> pb.StackDefinition:
    db = svc_spec("db", image="db:1")
    db.task.container.secrets.add(secret_name="app_pw", target="pw")
    return definition(svc_spec("web"), db, svc_spec("cache", image="cache:1"),
                      secrets=(sec_spec("app_pw"),))


async def test_deploy_is_one_transaction_and_a_redeploy_writes_nothing(flow: Flow) -> None:
    before = flow.store.version
    changes = await flow.deploy(three())
    assert flow.store.version == before + 1      # every object in one commit
    assert [(a, k, n) for a, k, n, _ in changes] == [
        (CREATE, "network", "app_default"), (CREATE, "secret", "app_pw"),
        (CREATE, "service", "app_web"), (CREATE, "service", "app_db"),
        (CREATE, "service", "app_cache")]
    assert flow.names("service") == ["app_cache", "app_db", "app_web"]
    stack = flow.store.by_name("stack", "app")
    assert isinstance(stack, pb.Stack) and not stack.HasField("previous_definition")

    versions = {s.id: s.meta.version for s in flow.store.list("service")}
    at = flow.store.version
    assert await flow.deploy(three()) == []
    assert flow.store.version == at
    assert {s.id: s.meta.version for s in flow.store.list("service")} == versions


async def test_only_the_changed_services_are_updated(flow: Flow) -> None:
    await flow.deploy(three())
    web, db, cache = (flow.service(n) for n in ("app_web", "app_db", "app_cache"))
    changed = three()
    changed.services[0].task.container.image = "web:2"
    changed.services[1].replicated.replicas = 3
    at = flow.store.version
    assert await flow.deploy(changed) == [
        (UPDATE, "service", "app_web", ["task.container.image"]),
        (UPDATE, "service", "app_db", ["replicated.replicas"])]
    assert flow.store.version == at + 1
    new_web = flow.service("app_web")
    assert new_web.spec_version == web.spec_version + 1
    assert new_web.previous_spec.task.container.image == "web:1"
    assert new_web.update_status.state == pb.UpdateStatus.UPDATING
    assert flow.service("app_db").spec.replicated.replicas == 3
    assert flow.service("app_db").spec_version == db.spec_version
    assert flow.service("app_cache").meta.version == cache.meta.version
    stack = flow.store.by_name("stack", "app")
    assert isinstance(stack, pb.Stack)
    assert stack.previous_definition.services[0].task.container.image == "web:1"


async def test_prune_removes_the_services_left_out(flow: Flow) -> None:
    await flow.deploy(three())
    smaller = three()
    del smaller.services[2]
    assert await flow.deploy(smaller) == []
    assert "app_cache" in flow.names("service")
    assert await flow.deploy(smaller, prune=True) == [(REMOVE, "service", "app_cache", [])]
    assert flow.names("service") == ["app_db", "app_web"]


async def test_a_dry_run_lists_the_changes_and_writes_nothing(flow: Flow) -> None:
    at = flow.store.version
    out = await flow.stub.DeployStack(cpb.DeployStackRequest(stack=three(), dry_run=True),
                                      timeout=10)
    assert [(c.action, c.name, c.id) for c in out.changes][:2] == [
        (CREATE, "app_default", ""), (CREATE, "app_pw", "")]
    assert len(out.changes) == 5 and flow.store.version == at
    assert flow.names("service") == [] and flow.store.list("stack") == []
    await flow.deploy(three())
    changed = three()
    changed.services[2].task.container.image = "cache:2"
    at = flow.store.version
    assert await flow.deploy(changed, dry_run=True) == [
        (UPDATE, "service", "app_cache", ["task.container.image"])]
    assert await flow.deploy(three(), dry_run=True) == []
    assert flow.store.version == at
    assert flow.service("app_cache").spec.task.container.image == "cache:1"


async def test_a_bad_definition_is_refused_whole_and_creates_nothing(flow: Flow) -> None:
    bad = three()
    bad.services[1].task.container.image = ""
    bad.external_networks.append("outside")
    at = flow.store.version
    err = await flow.refused("DeployStack", cpb.DeployStackRequest(stack=bad))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.details() or "").splitlines() == [
        "stack app can't be deployed (2 problems, nothing was changed):",
        '- network "outside" is declared as external, but could not be found. You need to '
        "create a swarm-scoped network before the stack is deployed",
        "- service app_db: no image given: a service needs an image reference, e.g. "
        "busybox:latest"]
    assert flow.store.version == at
    for kind in ("service", "network", "secret", "stack"):
        assert flow.store.list(kind) == [], kind


async def test_a_name_held_outside_the_stack_is_refused(flow: Flow) -> None:
    await flow.stub.CreateNetwork(cpb.CreateNetworkRequest(
        spec=pb.NetworkSpec(annotations=pb.Annotations(name="app_default"))), timeout=10)
    err = await flow.refused("DeployStack", cpb.DeployStackRequest(stack=three()))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details() == ("name conflicts with an existing object: network app_default "
                             "already exists and is not part of any stack; remove it or give "
                             "stack app's network another name")
    assert flow.names("service") == []


async def test_stacks_are_listed_with_their_service_counts(flow: Flow) -> None:
    await flow.deploy(three())
    other = pb.StackDefinition(name="other", services=[svc_spec("x", stack="other",
                                                                networks=())])
    await flow.deploy(other)
    out = await flow.stub.ListStacks(cpb.ListStacksRequest(), timeout=10)
    assert [(s.name, s.services) for s in out.stacks] == [("app", 3), ("other", 1)]


def a_task(svc: pb.Service, n: int) -> pb.Task:
    task = pb.Task(id=f"{svc.id}-t{n}", service_id=svc.id, desired_state=pb.RUNNING)
    task.status.state = pb.RUNNING
    return task


async def test_remove_takes_the_networks_only_once_the_tasks_are_gone(flow: Flow) -> None:
    await flow.deploy(three())
    outside = pb.NetworkSpec(annotations=pb.Annotations(name="shared"))
    await flow.stub.CreateNetwork(cpb.CreateNetworkRequest(spec=outside), timeout=10)
    tasks = [a_task(flow.service(n), 1) for n in ("app_web", "app_db")]
    await flow.store.acommit([actions.create(t) for t in tasks])
    removal = asyncio.ensure_future(flow.stub.RemoveStack(cpb.RemoveStackRequest(name="app"),
                                                          timeout=30))
    await until(lambda: flow.names("service") == [], what="the stack's services to go")
    assert flow.names("secret") == [] and flow.store.list("stack") == []
    assert flow.names("network") == ["app_default", "shared"]   # the tasks still hold it
    assert not removal.done()
    # the reaper's part: the tasks of the removed services are deleted
    await flow.store.acommit([actions.remove(t) for t in tasks])
    out = await asyncio.wait_for(removal, 10)
    assert [(c.kind, c.name) for c in out.changes] == [
        ("service", "app_cache"), ("service", "app_db"), ("service", "app_web"),
        ("secret", "app_pw"), ("network", "app_default")]
    assert flow.names("network") == ["shared"]   # not the stack's: it stays
    err = await flow.refused("RemoveStack", cpb.RemoveStackRequest(name="app"))
    assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND,
                                           "Nothing found in stack: app")


async def test_remove_keeps_the_networks_when_tasks_outlive_the_deadline(flow: Flow) -> None:
    await flow.deploy(three())
    task = a_task(flow.service("app_web"), 1)
    await flow.store.acommit([actions.create(task)])
    flow.control.stacks.remove_wait = 0.3
    err = await flow.refused("RemoveStack", cpb.RemoveStackRequest(name="app"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == (
        "stack app: services, secrets and configs removed, but its tasks were still "
        "stopping after 0.3s; network(s) app_default kept: run 'swarm stack rm app' again "
        "to remove them")
    assert flow.names("network") == ["app_default"]
    await flow.store.acommit([actions.remove(task)])
    out = await flow.stub.RemoveStack(cpb.RemoveStackRequest(name="app"), timeout=10)
    assert [(c.kind, c.name) for c in out.changes] == [("network", "app_default")]
    assert flow.names("network") == []


async def test_labels_and_namespace(flow: Flow) -> None:
    await flow.deploy(three())
    for kind in ("service", "network", "secret"):
        for obj in flow.store.list(kind):
            assert obj.spec.annotations.labels[NAMESPACE] == "app"


async def test_a_deploy_that_meets_a_conflict_plans_again(flow: Flow,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    await flow.deploy(three())
    real = flow.store.acommit
    tried: list[int] = []

    async def racing(acts: Sequence[store_pb2.StoreAction], timeout: float = 5.0) -> int:
        tried.append(len(acts))
        if len(tried) == 1:   # someone changes app_web between the deploy's read and commit
            web = copy(flow.service("app_web"))
            web.spec.task.container.env.append("BY_HAND=1")
            await real([actions.update(web)])
        return await real(acts, timeout)

    monkeypatch.setattr(flow.store, "acommit", racing)
    changed = three()
    changed.services[0].task.container.image = "web:2"
    assert await flow.deploy(changed) == [
        (UPDATE, "service", "app_web", ["task.container.image", "task.container.env"])]
    assert len(tried) == 2
    web = flow.service("app_web")
    assert web.spec.task.container.image == "web:2" and list(web.spec.task.container.env) == []
