"""The stack rules without a store: a deploy's plan and refusals, removal, `stack ls`,
and the spec diff a deploy reports (manager/controlapi/stacks.py, specdiff.py)."""
from __future__ import annotations

import pytest

from manager import fileversions
from manager.controlapi import stacks
from manager.controlapi.common import Code, Refusal
from manager.controlapi.specdiff import changed_fields
from manager.objects import copy
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from proto import store_pb2
from raft import actions
from raft.errors import Conflict
from raft.state import StoreState
from tests.test_controlapi_rules import refused

NS = stacks.NAMESPACE
CREATE, UPDATE, REMOVE = cpb.StackChange.CREATE, cpb.StackChange.UPDATE, cpb.StackChange.REMOVE


# ---------------------------------------------------------------- the diff --

def test_equal_messages_differ_nowhere() -> None:
    a = pb.ServiceSpec()
    a.task.container.image = "web:1"
    assert changed_fields(a, copy(a)) == []


def test_the_diff_names_nested_fields_by_dotted_path() -> None:
    a = pb.ServiceSpec()
    a.annotations.name = "web"
    a.task.container.image = "web:1"
    a.task.container.env.append("A=1")
    a.replicated.replicas = 2
    b = copy(a)
    b.task.container.image = "web:2"
    b.task.container.env.append("B=2")
    b.replicated.replicas = 3
    b.annotations.labels["x"] = "y"
    assert changed_fields(a, b) == ["annotations.labels", "task.container.image",
                                    "task.container.env", "replicated.replicas"]


def test_a_switched_oneof_names_both_members() -> None:
    a = pb.ServiceSpec()
    a.replicated.replicas = 1
    b = pb.ServiceSpec()
    getattr(b, "global").SetInParent()   # "global" is a Python keyword
    assert changed_fields(a, b) == ["replicated", "global"]


def test_a_sub_message_set_on_one_side_only_is_a_change() -> None:
    a = pb.ServiceSpec()
    b = copy(a)
    b.update.SetInParent()
    assert changed_fields(a, b) == ["update"]


def test_messages_of_different_types_are_not_compared() -> None:
    with pytest.raises(TypeError):
        changed_fields(pb.ServiceSpec(), pb.NetworkSpec())


# ---------------------------------------------------------------- objects --

def labelled(spec: pb.ServiceSpec | pb.NetworkSpec | pb.SecretSpec | pb.ConfigSpec,
             stack: str = "app") -> None:
    spec.annotations.labels[NS] = stack


def svc_spec(key: str, image: str = "web:1", replicas: int = 1, stack: str = "app",
             networks: tuple[str, ...] = ("app_default",)) -> pb.ServiceSpec:
    s = pb.ServiceSpec()
    s.annotations.name = f"{stack}_{key}"
    labelled(s, stack)
    s.task.container.image = image
    s.replicated.replicas = replicas
    for n in networks:
        s.task.networks.add(target=n)
    return s


def net_spec(name: str, stack: str = "app") -> pb.NetworkSpec:
    s = pb.NetworkSpec(driver="overlay")
    s.annotations.name = name
    labelled(s, stack)
    return s


def sec_spec(name: str, data: bytes = b"pw", stack: str = "app") -> pb.SecretSpec:
    s = pb.SecretSpec(data=data)
    s.annotations.name = name
    labelled(s, stack)
    return s


def definition(*services: pb.ServiceSpec, nets: tuple[str, ...] = ("app_default",),
               secrets: tuple[pb.SecretSpec, ...] = ()) -> pb.StackDefinition:
    d = pb.StackDefinition(name="app")
    d.services.extend(services)
    d.networks.extend(net_spec(n) for n in nets)
    d.secrets.extend(secrets)
    return d


class Store:
    """The real state machine, to apply a plan and read the result back."""

    def __init__(self) -> None:
        self.state = StoreState()

    def apply(self, plan: stacks.Plan) -> None:
        self.state.apply(store_pb2.StoreTransaction(actions=plan.actions))

    def current(self) -> stacks.Current:
        view = self.state.snapshot()
        return stacks.Current(services=list(view.services.values()),
                              networks=list(view.networks.values()),
                              secrets=list(view.secrets.values()),
                              configs=list(view.configs.values()),
                              tasks=list(view.tasks.values()),
                              stacks=list(view.stacks.values()))

    def deploy(self, d: pb.StackDefinition, prune: bool = False) -> list[tuple[int, str, str]]:
        plan = stacks.deploy_plan(d, prune, self.current())
        if plan.actions:
            self.apply(plan)
        return [(c.action, c.kind, c.name) for c in plan.changes]

    def service(self, name: str) -> pb.Service:
        found = self.state.by_name("service", name)
        assert isinstance(found, pb.Service)
        return found


def deployed(*services: pb.ServiceSpec, **kw: object) -> Store:
    store = Store()
    store.deploy(definition(*services, **kw))  # type: ignore[arg-type]
    return store


# ------------------------------------------------------------------ deploy --

def test_a_first_deploy_creates_everything_and_records_the_stack() -> None:
    store = Store()
    d = definition(svc_spec("web"), svc_spec("db", image="db:1"),
                   secrets=(sec_spec("app_pw"),))
    d.services[1].task.container.secrets.add(secret_name="app_pw", target="pw")
    assert store.deploy(d) == [(CREATE, "network", "app_default"), (CREATE, "secret", "app_pw"),
                               (CREATE, "service", "app_web"), (CREATE, "service", "app_db")]
    assert store.state.version == 1
    db = store.service("app_db")
    net = store.state.by_name("network", "app_default")
    assert net is not None and db.spec.task.networks[0].target == net.id
    pw = store.state.by_name("secret", "app_pw")
    assert pw is not None and db.spec.task.container.secrets[0].secret_id == pw.id
    record = store.state.by_name("stack", "app")
    assert isinstance(record, pb.Stack)
    assert record.definition.secrets[0].data == b""   # secret data stays in the secret
    assert record.definition.services[0].annotations.name == "app_web"


def test_redeploying_the_same_definition_changes_nothing() -> None:
    d = definition(svc_spec("web"), svc_spec("db"))
    store = deployed(svc_spec("web"), svc_spec("db"))
    plan = stacks.deploy_plan(d, True, store.current())
    assert plan.changes == [] and plan.actions == []


def test_only_the_changed_services_are_updated_with_their_fields() -> None:
    store = deployed(svc_spec("web"), svc_spec("db"), svc_spec("cache"))
    before = {n: store.service(n) for n in ("app_web", "app_db", "app_cache")}
    plan = stacks.deploy_plan(definition(svc_spec("web", image="web:2"),
                                         svc_spec("db", replicas=3), svc_spec("cache")),
                              False, store.current())
    assert [(c.action, c.name, list(c.fields)) for c in plan.changes] == [
        (UPDATE, "app_web", ["task.container.image"]),
        (UPDATE, "app_db", ["replicated.replicas"])]
    store.apply(plan)
    web, db = store.service("app_web"), store.service("app_db")
    # UpdateService's path: previous spec kept, a task change bumps the spec version
    assert web.spec_version == before["app_web"].spec_version + 1
    assert web.previous_spec.task.container.image == "web:1"
    assert web.update_status.state == pb.UpdateStatus.UPDATING
    assert db.spec_version == before["app_db"].spec_version   # replicas: no new tasks
    assert store.service("app_cache").meta.version == before["app_cache"].meta.version
    record = store.state.by_name("stack", "app")
    assert isinstance(record, pb.Stack)
    assert record.previous_definition.services[0].task.container.image == "web:1"
    assert record.definition.services[0].task.container.image == "web:2"


def test_prune_removes_the_stack_services_left_out_and_only_with_prune() -> None:
    store = deployed(svc_spec("web"), svc_spec("old"))
    assert store.deploy(definition(svc_spec("web"))) == []
    assert store.deploy(definition(svc_spec("web")), prune=True) == [
        (REMOVE, "service", "app_old")]
    assert store.state.by_name("service", "app_old") is None


def test_a_job_that_did_not_change_is_not_run_again() -> None:
    job = svc_spec("migrate")
    job.replicated_job.max_concurrent = 1
    store = deployed(job)
    assert store.deploy(definition(job)) == []


def test_every_object_must_carry_the_namespace_label() -> None:
    s = svc_spec("web")
    del s.annotations.labels[NS]
    refused(Code.INVALID_ARGUMENT,
            f"service app_web of stack app must carry the label {NS}=app",
            lambda: stacks.deploy_plan(definition(s), False, stacks.Current()))


def test_a_name_held_outside_the_stack_is_a_conflict() -> None:
    store = deployed()
    store.deploy(pb.StackDefinition(name="other", services=[svc_spec("x", stack="other",
                                                                     networks=())]))
    s = svc_spec("web", networks=())
    s.annotations.name = "other_x"
    refused(Code.ALREADY_EXISTS,
            "name conflicts with an existing object: service other_x already exists and "
            "belongs to stack other; remove it or give stack app's service another name",
            lambda: stacks.deploy_plan(definition(s), False, store.current()))


def test_a_missing_external_network_is_refused_with_dockers_words() -> None:
    d = definition(svc_spec("web", networks=("outside",)), nets=())
    d.external_networks.append("outside")
    with pytest.raises(Refusal) as info:
        stacks.deploy_plan(d, False, stacks.Current())
    assert info.value.message.startswith("stack app can't be deployed (2 problems")
    assert ('- network "outside" is declared as external, but could not be found. You need '
            'to create a swarm-scoped network before the stack is deployed') in info.value.message
    assert info.value.message.endswith("\n- service app_web: No such network: outside")
    assert info.value.code == Code.NOT_FOUND


def test_every_problem_is_named_and_nothing_is_planned() -> None:
    bad = svc_spec("bad")
    bad.task.container.image = ""
    d = definition(svc_spec("web"), bad, secrets=(sec_spec("app_pw"),))
    d.external_secrets.append("nope")
    with pytest.raises(Refusal) as info:
        stacks.deploy_plan(d, False, stacks.Current())
    lines = info.value.message.splitlines()
    assert lines[0] == "stack app can't be deployed (2 problems, nothing was changed):"
    assert lines[1:] == [
        '- secret "nope" is declared as external, but could not be found. Create it with '
        "'swarm secret create' first",
        "- service app_bad: no image given: a service needs an image reference, e.g. "
        "busybox:latest"]
    assert info.value.code == Code.INVALID_ARGUMENT


def test_a_changed_network_is_refused_but_new_labels_are_applied() -> None:
    store = deployed(svc_spec("web"))
    d = definition(svc_spec("web"))
    d.networks[0].internal = True
    refused(Code.FAILED_PRECONDITION,
            "network app_default of stack app can't be changed (internal differ): a network "
            "can only get new labels; remove the stack first (swarm stack rm app) or give the "
            "network another name",
            lambda: stacks.deploy_plan(d, False, store.current()))
    d = definition(svc_spec("web"))
    d.networks[0].annotations.labels["tier"] = "front"
    plan = stacks.deploy_plan(d, False, store.current())
    assert [(c.action, c.kind, list(c.fields)) for c in plan.changes] == [
        (UPDATE, "network", ["annotations.labels"])]


def using(spec: pb.ServiceSpec, secret: str) -> pb.ServiceSpec:
    spec.task.container.secrets.add(secret_name=secret)   # target: the definition's name
    return spec


def secret(store: Store, name: str) -> pb.Secret:
    found = store.state.by_name("secret", name)
    assert isinstance(found, pb.Secret), name
    return found


def test_new_secret_content_is_a_new_version_the_services_move_to() -> None:
    store = deployed(using(svc_spec("web"), "app_pw"), secrets=(sec_spec("app_pw"),))
    first = secret(store, "app_pw")
    (ref,) = store.service("app_web").spec.task.container.secrets
    assert (ref.secret_id, ref.target) == (first.id, "app_pw")

    changed = definition(using(svc_spec("web"), "app_pw"),
                         secrets=(sec_spec("app_pw", b"new"),))
    assert store.deploy(changed) == [(CREATE, "secret", "app_pw.v2"),
                                     (UPDATE, "secret", "app_pw"),
                                     (UPDATE, "service", "app_web")]
    second = secret(store, "app_pw.v2")
    assert second.spec.data == b"new"
    assert second.spec.annotations.labels[fileversions.VERSION_OF] == "app_pw"
    assert secret(store, "app_pw").spec.annotations.labels[fileversions.SUPERSEDED] == \
        second.id
    (ref,) = store.service("app_web").spec.task.container.secrets
    assert (ref.secret_id, ref.secret_name, ref.target) == (second.id, "app_pw.v2", "app_pw")

    assert store.deploy(changed) == [], "the same content again changes nothing"
    third = definition(using(svc_spec("web"), "app_pw"),
                       secrets=(sec_spec("app_pw", b"newer"),))
    assert store.deploy(third)[0] == (CREATE, "secret", "app_pw.v3")


def test_content_a_superseded_version_still_holds_takes_it_back() -> None:
    store = deployed(using(svc_spec("web"), "app_pw"), secrets=(sec_spec("app_pw"),))
    store.deploy(definition(using(svc_spec("web"), "app_pw"),
                            secrets=(sec_spec("app_pw", b"new"),)))
    back = definition(using(svc_spec("web"), "app_pw"), secrets=(sec_spec("app_pw"),))
    assert store.deploy(back) == [(UPDATE, "secret", "app_pw"),
                                  (UPDATE, "secret", "app_pw.v2"),
                                  (UPDATE, "service", "app_web")]
    assert fileversions.SUPERSEDED not in secret(store, "app_pw").spec.annotations.labels
    assert fileversions.SUPERSEDED in secret(store, "app_pw.v2").spec.annotations.labels
    (ref,) = store.service("app_web").spec.task.container.secrets
    assert (ref.secret_name, ref.target) == ("app_pw", "app_pw")


def test_labels_of_a_secret_may_change_in_place() -> None:
    store = deployed(svc_spec("web"), secrets=(sec_spec("app_pw"),))
    relabelled = sec_spec("app_pw")
    relabelled.annotations.labels["rotated"] = "no"
    assert store.deploy(definition(svc_spec("web"), secrets=(relabelled,))) == [
        (UPDATE, "secret", "app_pw")]


def test_a_version_name_nobody_else_has_is_taken() -> None:
    store = deployed(svc_spec("web"), secrets=(sec_spec("app_pw"),))
    other = sec_spec("app_pw.v2", stack="other")
    store.apply(stacks.Plan(actions=[actions.create(pb.Secret(id="x1", spec=other))]))
    changes = store.deploy(definition(svc_spec("web"), secrets=(sec_spec("app_pw", b"n"),)))
    assert changes[0] == (CREATE, "secret", "app_pw.v3")


def test_ports_are_checked_among_the_stacks_own_services() -> None:
    a, b = svc_spec("a"), svc_spec("b")
    for s in (a, b):
        s.endpoint.ports.add(target_port=80, published_port=8080,
                             protocol=pb.PortConfig.TCP, publish_mode=pb.PortConfig.INGRESS)
    with pytest.raises(Refusal) as info:
        stacks.deploy_plan(definition(a, b), False, stacks.Current())
    assert info.value.message.startswith("service app_b: ")
    assert "8080" in info.value.message


def test_duplicate_names_in_a_definition_are_refused() -> None:
    with pytest.raises(Refusal) as info:
        stacks.deploy_plan(definition(svc_spec("web"), svc_spec("web")), False,
                           stacks.Current())
    assert "the stack defines service app_web more than once" in info.value.message


# ------------------------------------------------------------------ remove --

def test_removal_takes_services_secrets_and_the_record_then_networks() -> None:
    store = deployed(svc_spec("web"), secrets=(sec_spec("app_pw"),))
    out = stacks.removal("app", store.current())
    assert [(c.kind, c.name) for c in out.changes] == [("service", "app_web"),
                                                       ("secret", "app_pw")]
    assert [n.spec.annotations.name for n in out.networks] == ["app_default"]
    assert out.service_ids == {store.service("app_web").id}
    store.state.apply(store_pb2.StoreTransaction(actions=out.actions))
    assert store.state.by_name("stack", "app") is None
    second = stacks.network_removal(out.networks, store.current())
    assert [(c.kind, c.name) for c in second.changes] == [("network", "app_default")]


def test_removing_an_unknown_stack_is_not_found() -> None:
    refused(Code.NOT_FOUND, "Nothing found in stack: nope",
            lambda: stacks.removal("nope", stacks.Current()))


def test_removing_the_empty_stack_name_is_refused() -> None:
    """Objects outside every stack have the empty namespace: `stack rm ""` once
    planned to remove all of them (found by tests/test_fuzz_controlapi.py)."""
    store = deployed(svc_spec("web"))
    outside = svc_spec("db", stack="")
    del outside.annotations.labels[stacks.NAMESPACE]
    store.state.apply(store_pb2.StoreTransaction(actions=[actions.create(
        pb.Service(id="db1", spec=outside))]))
    refused(Code.INVALID_ARGUMENT, "stack name must not be empty: name the stack to remove, "
            "as 'swarm stack ls' lists it", lambda: stacks.removal("", store.current()))


def test_stacks_are_listed_with_their_service_counts() -> None:
    store = deployed(svc_spec("web"), svc_spec("db"))
    assert [(s.name, s.services) for s in stacks.summaries(store.current())] == [("app", 2)]


# ------------------------------------------------------------ the store kind --

def test_the_store_holds_stacks_unique_by_name_and_in_its_dumps() -> None:
    state = StoreState()
    state.apply(store_pb2.StoreTransaction(actions=[actions.create(pb.Stack(id="s1", name="app"))]))
    with pytest.raises(Conflict, match='stack name "app" is already in use'):
        state.apply(store_pb2.StoreTransaction(
            actions=[actions.create(pb.Stack(id="s2", name="app"))]))
    again = StoreState.load(state.dump())
    assert again.by_name("stack", "app") == state.get("stack", "s1")
    assert state.snapshot().stacks["s1"].name == "app"
