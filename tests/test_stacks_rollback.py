"""Whole-stack rollback through the real Control API and a real single-node store:
RollbackStack returns every service (and the secrets and configs) of a stack to its
previous definition in one store commit, swaps the two definitions so that a second
rollback goes forward again, and refuses clearly when it can't (no previous
definition, a secret it needs is gone), changing nothing."""
from __future__ import annotations

import base64
import json

import grpc

from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.test_stack_rules import definition, sec_spec, svc_spec
from tests.test_stacks_flow import Flow, flow, three  # noqa: F401  (fixtures)

CREATE, UPDATE, REMOVE = cpb.StackChange.CREATE, cpb.StackChange.UPDATE, cpb.StackChange.REMOVE


async def rollback(f: Flow, name: str = "app",
                   dry_run: bool = False) -> list[tuple[int, str, str, bool]]:
    out = await f.stub.RollbackStack(cpb.RollbackStackRequest(name=name, dry_run=dry_run),
                                     timeout=10)
    return [(c.action, c.kind, c.name, c.rollback) for c in out.changes]


def cfg_spec(name: str, data: bytes, stack: str = "app") -> pb.ConfigSpec:
    spec = pb.ConfigSpec(data=data)
    spec.annotations.name = name
    spec.annotations.labels["com.docker.stack.namespace"] = stack
    return spec


def v2() -> pb.StackDefinition:
    """three() with web's image changed, cache scaled, and a new service using a new
    secret and a new config."""
    d = three()
    d.services[0].task.container.image = "web:2"
    d.services[2].replicated.replicas = 4
    extra = svc_spec("extra", image="extra:1")
    extra.task.container.secrets.add(secret_name="app_token", target="token")
    extra.task.container.configs.add(config_name="app_conf", target="/conf")
    d.services.append(extra)
    d.secrets.append(sec_spec("app_token", b"t0ken"))
    d.configs.append(cfg_spec("app_conf", b"a=1"))
    return d


def stack_of(f: Flow) -> pb.Stack:
    found = f.store.by_name("stack", "app")
    assert isinstance(found, pb.Stack)
    return found


def specs(f: Flow) -> dict[str, pb.ServiceSpec]:
    return {s.spec.annotations.name: s.spec for s in f.store.list("service")}


async def test_rollback_returns_the_whole_stack_in_one_commit_and_a_second_goes_forward(
        flow: Flow) -> None:
    await flow.deploy(three())
    v1_specs = specs(flow)
    db_version = flow.service("app_db").meta.version
    await flow.deploy(v2())
    v2_specs = specs(flow)
    assert sorted(v2_specs) == ["app_cache", "app_db", "app_extra", "app_web"]

    at = flow.store.version
    changes = await rollback(flow)
    assert flow.store.version == at + 1          # everything in one commit
    assert sorted(changes) == sorted([
        (UPDATE, "service", "app_web", True), (UPDATE, "service", "app_cache", True),
        (REMOVE, "service", "app_extra", False), (REMOVE, "config", "app_conf", False)])
    assert specs(flow) == v1_specs
    assert flow.names("config") == []
    # the secret v2 added stays (the record keeps no secret data; going forward needs it)
    assert flow.names("secret") == ["app_pw", "app_token"]
    assert flow.service("app_db").meta.version == db_version   # untouched
    web = flow.service("app_web")
    # as `service rollback`: the rollback_config applies, the spec before is kept
    assert web.update_status.state == pb.UpdateStatus.ROLLBACK_STARTED
    assert web.previous_spec.task.container.image == "web:2"
    record = stack_of(flow)
    assert [s.annotations.name for s in record.definition.services] == [
        "app_web", "app_db", "app_cache"]
    assert [s.annotations.name for s in record.previous_definition.services] == [
        "app_web", "app_db", "app_cache", "app_extra"]
    assert all(not s.data for s in record.previous_definition.secrets)   # no secret data kept

    # a second rollback goes forward again, to v2 as it was deployed
    at = flow.store.version
    changes = await rollback(flow)
    assert flow.store.version == at + 1
    assert sorted(changes) == sorted([
        (CREATE, "config", "app_conf", False), (UPDATE, "service", "app_web", True),
        (UPDATE, "service", "app_cache", True), (CREATE, "service", "app_extra", False)])
    now = specs(flow)
    assert {n: s for n, s in now.items() if n != "app_extra"} == {
        n: s for n, s in v2_specs.items() if n != "app_extra"}
    extra = now["app_extra"].task.container   # created again (its config too: a new ID)
    assert extra.image == "extra:1"
    assert [c.config_name for c in extra.configs] == ["app_conf"]
    assert [s.secret_name for s in extra.secrets] == ["app_token"]
    assert flow.service("app_db").meta.version == db_version
    assert [s.annotations.name for s in stack_of(flow).definition.services][-1] == "app_extra"


async def test_a_dry_run_lists_the_rollback_and_writes_nothing(flow: Flow) -> None:
    await flow.deploy(three())
    await flow.deploy(v2())
    at = flow.store.version
    changes = await rollback(flow, dry_run=True)
    assert (UPDATE, "service", "app_web", True) in changes
    assert flow.store.version == at
    assert flow.service("app_web").spec.task.container.image == "web:2"


async def test_a_stack_without_a_previous_definition_is_refused(flow: Flow) -> None:
    await flow.deploy(three())
    at = flow.store.version
    err = await flow.refused("RollbackStack", cpb.RollbackStackRequest(name="app"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == "stack app does not have a previous definition"
    err = await flow.refused("RollbackStack", cpb.RollbackStackRequest(name="nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "Nothing found in stack: nope"
    assert flow.store.version == at


async def test_a_rollback_needing_a_removed_secret_is_refused_and_changes_nothing(
        flow: Flow) -> None:
    await flow.deploy(three())
    await flow.deploy(v2())
    await rollback(flow)                      # back to v1; app_token is unused now
    token = flow.store.by_name("secret", "app_token")
    assert isinstance(token, pb.Secret)
    await flow.stub.RemoveSecret(cpb.RemoveSecretRequest(secret_id=token.id), timeout=10)
    at = flow.store.version
    err = await flow.refused("RollbackStack", cpb.RollbackStackRequest(name="app"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs secret(s) app_token, no longer in the store" in err.details()
    assert flow.store.version == at
    assert "app_extra" not in flow.names("service")


async def test_a_rollback_the_rules_refuse_names_the_problem(flow: Flow) -> None:
    # v1 uses an external network; v2 does not, and the network is removed meanwhile
    ext = pb.NetworkSpec(driver="overlay")
    ext.annotations.name = "ext"
    made = await flow.stub.CreateNetwork(cpb.CreateNetworkRequest(spec=ext), timeout=10)
    v1 = definition(svc_spec("web"))
    v1.external_networks.append("ext")
    await flow.deploy(v1)
    await flow.deploy(definition(svc_spec("web", image="web:2")))
    await flow.stub.RemoveNetwork(cpb.RemoveNetworkRequest(network_id=made.network.id),
                                  timeout=10)
    at = flow.store.version
    err = await flow.refused("RollbackStack", cpb.RollbackStackRequest(name="app"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == (
        'stack app can\'t be rolled back (nothing was changed): network "ext" is declared '
        "as external, but could not be found. You need to create a swarm-scoped network "
        "before the stack is deployed")
    assert flow.store.version == at
    assert flow.service("app_web").spec.task.container.image == "web:2"


def _auth(password: str) -> str:
    """Docker's X-Registry-Auth value of a login (base64url JSON)."""
    doc = {"username": "a", "password": password, "serveraddress": "registry.test:5000"}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


async def test_a_rollback_after_the_login_changed_is_still_a_rollback(flow: Flow) -> None:
    """The stack record keeps no credentials and the deploy keeps the current ones, so
    the previous spec (with the credentials of its time) is recognised ignoring them."""
    d1 = three()
    d1.services[0].task.container.pull_options.registry_auth = _auth("old")
    await flow.deploy(d1)
    d2 = v2()
    d2.services[0].task.container.pull_options.registry_auth = _auth("new")
    await flow.deploy(d2)
    assert (UPDATE, "service", "app_web", True) in await rollback(flow)
    web = flow.service("app_web")
    assert web.update_status.state == pb.UpdateStatus.ROLLBACK_STARTED
    assert web.spec.task.container.image == d1.services[0].task.container.image
    # as `service rollback`: the previous spec whole, its credentials too
    assert web.spec.task.container.pull_options.registry_auth == _auth("old")
