"""The Control API's refusing rules, without gRPC: one test per rule, message included.

Each rule of manager/controlapi is a pure function from the objects the store
holds and the request to the objects to write, or a `Refusal` that carries a
gRPC-agnostic code and the exact message the person sees. The demotion order
(manager/roles.demotion_steps) is tested here too.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable

import grpc
import pytest

from manager import roles
from manager.controlapi import cluster as clusterrules
from manager.controlapi import common, networks, nodes, secrets, services
from manager.controlapi.common import Code, Refusal
from manager.controlapi.server import STATUS
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from raft import actions


def refused(code: Code, message: str, rule: Callable[[], object]) -> None:
    """Asserts that `rule()` is refused with exactly this code and message."""
    with pytest.raises(Refusal) as info:
        rule()
    assert (info.value.code, info.value.message) == (code, message)


# ------------------------------------------------------------------ objects --

def manager(node_id: str, *, leader: bool = False, reachable: bool = True,
            raft_addr: str = "", demoting: bool = False) -> pb.Node:
    node = pb.Node(id=node_id, role=pb.MANAGER)
    node.spec.desired_role = pb.WORKER if demoting else pb.MANAGER
    node.description.hostname = node_id
    node.manager_status.leader = leader
    node.manager_status.raft_addr = raft_addr or f"{node_id}:2378"
    node.manager_status.reachability = (pb.ManagerStatus.REACHABLE if reachable
                                        else pb.ManagerStatus.UNREACHABLE)
    node.status.state = pb.NodeStatus.READY
    return node


def worker(node_id: str, state: int = pb.NodeStatus.READY) -> pb.Node:
    node = pb.Node(id=node_id, role=pb.WORKER)
    node.spec.desired_role = pb.WORKER
    node.description.hostname = node_id
    node.status.state = state  # type: ignore[assignment]
    return node


def spec(name: str = "web", image: str = "busybox:latest") -> pb.ServiceSpec:
    s = pb.ServiceSpec()
    s.annotations.name = name
    s.task.container.image = image
    s.replicated.replicas = 1
    return s


def service(name: str, svc_id: str = "") -> pb.Service:
    s = spec(name)
    svc = pb.Service(id=svc_id or f"id-{name}", spec=s, spec_version=1)
    svc.meta.version = 3
    return svc


def network(name: str, net_id: str = "", ingress: bool = False) -> pb.Network:
    net = pb.Network(id=net_id or f"id-{name}")
    net.spec.annotations.name = name
    net.spec.ingress = ingress
    return net


def attached(svc: pb.Service, net_id: str) -> pb.Service:
    svc.spec.task.networks.add(target=net_id)
    return svc


def secret(name: str, sec_id: str = "") -> pb.Secret:
    sec = pb.Secret(id=sec_id or f"id-{name}")
    sec.spec.annotations.name = name
    sec.spec.data = b"s3cret"
    sec.meta.version = 2
    return sec


def config(name: str) -> pb.Config:
    cfg = pb.Config(id=f"id-{name}")
    cfg.spec.annotations.name = name
    cfg.spec.data = b"conf"
    return cfg


def a_cluster() -> pb.Cluster:
    cluster = pb.Cluster(id="c1")
    cluster.spec.annotations.name = "default"
    cluster.meta.version = 7
    return cluster


# ------------------------------------------------------------------- common --

def test_every_refusal_code_has_a_grpc_status() -> None:
    assert set(STATUS) == set(Code)
    assert STATUS[Code.FAILED_PRECONDITION] == grpc.StatusCode.FAILED_PRECONDITION


def test_an_unknown_reference_is_not_found() -> None:
    refused(Code.NOT_FOUND, "No such service: nope",
            lambda: common.find([service("web")], "service", "nope"))


def test_an_ambiguous_id_prefix_is_refused() -> None:
    objs = [service("a", "abc1"), service("b", "abc2")]
    refused(Code.INVALID_ARGUMENT, "service abc is ambiguous (2 matches): use the full ID",
            lambda: common.find(objs, "service", "abc"))


def test_a_refusal_message_is_cut_to_what_a_grpc_status_carries() -> None:
    """A message quoting a 3.5 MiB name made the client drop the answer (its headers
    passed 16 KiB) and report RESOURCE_EXHAUSTED (found by tests/test_e2e_grpc_fuzz.py)."""
    assert common.fitted("No such node: w1") == "No such node: w1"
    for char in ("x", "é"):
        cut = common.fitted("No such node: " + char * 3_500_000)
        assert cut.startswith("No such node: " + char * 100)
        assert cut.endswith(" more characters cut)")
        assert len(cut.encode()) * (3 if char == "é" else 1) <= common.MAX_MESSAGE_BYTES


def test_an_update_of_an_old_version_is_out_of_sequence() -> None:
    refused(Code.FAILED_PRECONDITION,
            "update out of sequence: service web is at version 3, the request read version 2; "
            "read it again and retry",
            lambda: common.check_version("service", service("web"), 2))


# -------------------------------------------------------------------- nodes --

def node_update(node: pb.Node, role: int, labels: dict[str, str] | None = None
                ) -> cpb.UpdateNodeRequest:
    req = cpb.UpdateNodeRequest(node_id=node.id)
    req.spec.CopyFrom(node.spec)
    req.spec.desired_role = role  # type: ignore[assignment]
    req.spec.annotations.labels.update(labels or {})
    return req


def test_node_label_keys_must_not_be_empty() -> None:
    w = worker("w1")
    refused(Code.INVALID_ARGUMENT, "node label keys must not be empty",
            lambda: nodes.updated_node(w, node_update(w, pb.WORKER, {"": "x"}), [], "m1"))


def test_an_undefined_node_availability_is_refused() -> None:
    w = worker("w1")
    req = node_update(w, pb.WORKER)
    req.spec.availability = 7  # type: ignore[assignment]
    refused(Code.INVALID_ARGUMENT, "invalid node spec: availability is 7, which is not a "
            "known value: expected one of ACTIVE, PAUSE, DRAIN",
            lambda: nodes.updated_node(w, req, [], "m1"))


def test_the_last_manager_cannot_be_demoted() -> None:
    m = manager("m2")
    refused(Code.FAILED_PRECONDITION, "can't demote node m2: it is the last manager of the swarm",
            lambda: nodes.updated_node(m, node_update(m, pb.WORKER), [m], "m1"))


def test_a_demotion_that_costs_the_quorum_is_refused() -> None:
    group = [manager("m1", leader=True), manager("m2"), manager("m3", reachable=False)]
    refused(Code.FAILED_PRECONDITION,
            "can't demote node m2: only 1 of the 2 remaining managers are reachable and 2 are "
            "needed for a quorum",
            lambda: nodes.updated_node(group[1], node_update(group[1], pb.WORKER), group, "m1"))


def test_the_leader_cannot_be_demoted() -> None:
    group = [manager("m1", leader=True), manager("m2"), manager("m3")]
    refused(Code.FAILED_PRECONDITION,
            "can't demote node m1: it is the leader; demote it from another manager once "
            "another leader is elected (e.g. after 'swarm leave --force' or a restart)",
            lambda: nodes.updated_node(group[0], node_update(group[0], pb.WORKER), group, "m2"))


def test_a_demotion_is_recorded_as_the_desired_role_only() -> None:
    group = [manager("m1", leader=True), manager("m2"), manager("m3")]
    new = nodes.updated_node(group[1], node_update(group[1], pb.WORKER), group, "m1")
    assert new.spec.desired_role == pb.WORKER
    assert new.role == pb.MANAGER and new.manager_status.raft_addr == "m2:2378"


def test_a_node_being_demoted_cannot_be_promoted_again_yet() -> None:
    m = manager("m2", demoting=True)
    refused(Code.FAILED_PRECONDITION,
            "can't promote node m2: its demotion is still in progress; promote it again once "
            "it is a worker",
            lambda: nodes.updated_node(m, node_update(m, pb.MANAGER), [m], "m1"))


def test_a_node_cannot_remove_itself() -> None:
    refused(Code.FAILED_PRECONDITION,
            "a node cannot remove itself: use 'swarm leave' on it instead",
            lambda: nodes.removal(worker("m1"), [], True, "m1"))


def test_a_manager_cannot_be_removed() -> None:
    refused(Code.FAILED_PRECONDITION,
            "node m2 is a cluster manager and is a member of the raft cluster. It must be "
            "demoted to worker before removal",
            lambda: nodes.removal(manager("m2"), [], True, "m1"))


def test_a_node_that_is_not_down_needs_force() -> None:
    refused(Code.FAILED_PRECONDITION,
            "node w1 is not down and can't be removed: stop it first or use --force",
            lambda: nodes.removal(worker("w1"), [], False, "m1"))


def test_removing_a_down_node_orphans_its_live_tasks() -> None:
    live = pb.Task(id="t1", node_id="w1")
    live.status.state = pb.RUNNING
    done = pb.Task(id="t2", node_id="w1")
    done.status.state = pb.COMPLETE
    acts = nodes.removal(worker("w1", pb.NodeStatus.DOWN), [live, done], False, "m1")
    assert [a.kind for a in acts] == [actions.remove(worker("w1")).kind,
                                      actions.update(live).kind]
    assert acts[1].object.task.status.state == pb.ORPHANED


# ----------------------------------------------------------------- services --

def create(s: pb.ServiceSpec) -> cpb.CreateServiceRequest:
    return cpb.CreateServiceRequest(spec=s)


def test_a_host_network_service_has_no_other_network() -> None:
    s = spec()
    s.task.networks.add(target="host")
    s.task.networks.add(target="id-front")
    refused(Code.INVALID_ARGUMENT,
            "a service on the host network can't be attached to other networks",
            lambda: services.new_service(create(s), services.Refs(networks=[network("front")])))


def test_a_host_network_service_publishes_no_ingress_port() -> None:
    s = spec()
    s.task.networks.add(target="host")
    s.endpoint.ports.add(target_port=80, published_port=8080,
                         publish_mode=pb.PortConfig.INGRESS)
    refused(Code.INVALID_ARGUMENT,
            "ingress-published ports need an overlay network; with --network host publish "
            "mode=host",
            lambda: services.new_service(create(s), services.Refs()))


def test_a_service_is_not_attached_to_the_ingress_network_by_hand() -> None:
    s = spec()
    s.task.networks.add(target="ingress")
    refused(Code.INVALID_ARGUMENT,
            "service cannot be explicitly attached to the ingress network \"ingress\": publish "
            "a port (-p) to use the routing mesh",
            lambda: services.new_service(
                create(s), services.Refs(networks=[network("ingress", ingress=True)])))


def test_a_service_network_must_exist() -> None:
    s = spec()
    s.task.networks.add(target="nowhere")
    refused(Code.NOT_FOUND, "No such network: nowhere",
            lambda: services.new_service(create(s), services.Refs()))


def test_an_invalid_service_spec_is_refused() -> None:
    refused(Code.INVALID_ARGUMENT,
            "no image given: a service needs an image reference, e.g. busybox:latest",
            lambda: services.new_service(create(spec(image=" ")), services.Refs()))


@pytest.mark.parametrize("field,message", [
    ("interval", "health interval must not be negative"),
    ("timeout", "health timeout must not be negative"),
    ("start_period", "health start period must not be negative"),
    ("retries", "health retries must not be negative"),
    ("start_interval", "health start interval must not be negative"),
])
def test_a_negative_healthcheck_value_is_refused(field: str, message: str) -> None:
    s = spec()
    s.task.container.healthcheck.test.extend(["CMD", "true"])
    if field == "retries":
        s.task.container.healthcheck.retries = -1
    else:
        getattr(s.task.container.healthcheck, field).nanos = -10**9
    refused(Code.INVALID_ARGUMENT, message,
            lambda: services.new_service(create(s), services.Refs()))


def test_an_undefined_enum_value_in_a_service_spec_is_refused() -> None:
    s = spec()
    s.endpoint.ports.add(target_port=80, protocol=9)
    refused(Code.INVALID_ARGUMENT, "invalid service spec: endpoint.ports.protocol is 9, which "
            "is not a known value: expected one of TCP, UDP, SCTP",
            lambda: services.new_service(create(s), services.Refs()))
    s = spec()
    s.task.restart.condition = -1  # type: ignore[assignment]
    refused(Code.INVALID_ARGUMENT, "invalid service spec: task.restart.condition is -1, which "
            "is not a known value: expected one of ANY, NONE, ON_FAILURE",
            lambda: services.new_service(create(s), services.Refs()))


def test_a_service_secret_must_exist() -> None:
    s = spec()
    s.task.container.secrets.add(secret_name="db")
    refused(Code.INVALID_ARGUMENT, "secret not found: db",
            lambda: services.new_service(create(s), services.Refs()))


def test_an_ingress_port_held_by_another_service_is_refused() -> None:
    holder = service("old", "id-old")
    holder.spec.endpoint.ports.add(target_port=80, published_port=8080,
                                   publish_mode=pb.PortConfig.INGRESS)
    s = spec()
    s.endpoint.ports.add(target_port=80, published_port=8080, publish_mode=pb.PortConfig.INGRESS)
    refused(Code.INVALID_ARGUMENT,
            "port '8080/tcp' is already in use by service 'old' (id-old) as an ingress port",
            lambda: services.new_service(create(s), services.Refs(services=[holder])))


def test_a_service_name_is_taken_once() -> None:
    refused(Code.ALREADY_EXISTS,
            "name conflicts with an existing object: service web already exists",
            lambda: services.new_service(create(spec()),
                                         services.Refs(services=[service("web")])))


def test_a_rollback_needs_a_previous_spec() -> None:
    refused(Code.FAILED_PRECONDITION, "service web does not have a previous spec",
            lambda: services.updated_service(
                service("web"), cpb.UpdateServiceRequest(rollback=True), services.Refs()))


def test_rollbacks_swap_the_spec_and_the_previous_spec() -> None:
    svc = service("web")
    forward = services.updated_service(
        svc, cpb.UpdateServiceRequest(service_version=3, spec=spec("web", "busybox:2")),
        services.Refs())
    assert forward is not None and forward.update_status.state == pb.UpdateStatus.UPDATING
    back = services.updated_service(forward, cpb.UpdateServiceRequest(
        service_version=forward.meta.version, rollback=True), services.Refs())
    assert back is not None
    assert back.spec.task.container.image == "busybox:latest"
    assert back.previous_spec.task.container.image == "busybox:2"
    assert back.update_status.state == pb.UpdateStatus.ROLLBACK_STARTED
    assert back.update_status.message == "manually requested rollback"
    assert back.spec_version == forward.spec_version + 1
    again = services.updated_service(back, cpb.UpdateServiceRequest(
        service_version=back.meta.version, rollback=True), services.Refs())
    assert again is not None
    assert again.spec.task.container.image == "busybox:2"
    assert again.previous_spec.task.container.image == "busybox:latest"


def test_a_service_cannot_be_renamed() -> None:
    refused(Code.INVALID_ARGUMENT, "renaming a service is not supported",
            lambda: services.updated_service(
                service("web"), cpb.UpdateServiceRequest(spec=spec("www")), services.Refs()))


def test_a_service_mode_cannot_change() -> None:
    s = spec()
    s.ClearField("replicated")
    getattr(s, "global").SetInParent()  # `global` is a Python keyword
    refused(Code.INVALID_ARGUMENT, "service mode change is not allowed",
            lambda: services.updated_service(
                service("web"), cpb.UpdateServiceRequest(spec=s), services.Refs()))


def test_a_task_change_bumps_the_spec_version_and_starts_an_update() -> None:
    svc = service("web")
    new = services.updated_service(svc, cpb.UpdateServiceRequest(spec=spec(image="nginx")),
                                   services.Refs())
    assert new is not None and new.spec_version == 2
    assert new.update_status.state == pb.UpdateStatus.UPDATING
    assert new.previous_spec.task.container.image == "busybox:latest"


# ----------------------------------------------------------------- networks --

def net_request(name: str) -> cpb.CreateNetworkRequest:
    req = cpb.CreateNetworkRequest()
    req.spec.annotations.name = name
    return req


def test_a_network_name_must_be_valid() -> None:
    refused(Code.INVALID_ARGUMENT,
            "invalid network name 'bad name': only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            lambda: networks.new_network(net_request("bad name"), [], a_cluster()))


def test_only_the_network_options_the_overlay_acts_on_are_accepted() -> None:
    req = net_request("front")
    req.spec.driver_options["encrypted"] = ""
    assert networks.new_network(req, [], a_cluster()).spec.driver_options["encrypted"] == ""
    req.spec.driver_options["com.docker.network.driver.mtu"] = "1400"
    refused(Code.INVALID_ARGUMENT,
            "network option(s) com.docker.network.driver.mtu not supported: Shoal's overlay "
            "driver takes only --opt encrypted (remove the others)",
            lambda: networks.new_network(req, [], a_cluster()))


def test_a_network_name_is_taken_once() -> None:
    existing = networks.new_network(net_request("front"), [], a_cluster())
    refused(Code.ALREADY_EXISTS, "network front already exists",
            lambda: networks.new_network(net_request("front"), [existing], a_cluster()))


def test_the_ingress_network_stays_while_services_publish_on_it() -> None:
    pub = service("web")
    pub.spec.endpoint.ports.add(target_port=80, published_port=8080,
                                publish_mode=pb.PortConfig.INGRESS)
    refused(Code.FAILED_PRECONDITION,
            "ingress network 'ingress' cannot be removed because service(s) web publish ports "
            "on it; remove them or their published ports first",
            lambda: networks.check_removable(network("ingress", ingress=True), [pub], []))


def test_a_network_in_use_by_services_stays() -> None:
    users = [attached(service("b"), "id-front"), attached(service("a"), "id-front")]
    refused(Code.FAILED_PRECONDITION,
            "network 'front' is in use by the following services: a, b",
            lambda: networks.check_removable(network("front"), users, []))
    refused(Code.FAILED_PRECONDITION,
            "network 'front' is in use by the following service: b",
            lambda: networks.check_removable(network("front"), users[:1], []))


def test_a_network_held_by_stopping_tasks_stays() -> None:
    task = pb.Task(id="t1", desired_state=pb.SHUTDOWN)
    task.annotations.name = "web.1.t1"
    task.status.state = pb.RUNNING
    task.networks.add(network_id="id-front")
    refused(Code.FAILED_PRECONDITION,
            "network 'front' is still in use by task(s) web.1.t1 that are stopping; retry in "
            "a moment",
            lambda: networks.check_removable(network("front"), [], [task]))


# ------------------------------------------------------- secrets and configs --

def test_secret_data_must_not_be_empty() -> None:
    sec = secret("db")
    sec.spec.data = b""
    refused(Code.INVALID_ARGUMENT, "secret data must not be empty",
            lambda: secrets.new_object("secret", sec, []))


def test_a_secret_name_must_be_valid() -> None:
    sec = secret("db")
    sec.spec.annotations.name = ""
    refused(Code.INVALID_ARGUMENT, "secret name must not be empty",
            lambda: secrets.new_object("secret", sec, []))


def test_a_config_name_is_taken_once() -> None:
    refused(Code.ALREADY_EXISTS, "config app already exists",
            lambda: secrets.new_object("config", config("app"), [config("app")]))


def test_only_the_labels_of_a_secret_change() -> None:
    changed = pb.SecretSpec(data=b"other")
    refused(Code.INVALID_ARGUMENT, "only the labels of a secret can be changed",
            lambda: secrets.relabelled("secret", secret("db"), changed, 0))


def test_only_the_labels_of_a_config_change() -> None:
    changed = pb.ConfigSpec(data=b"other")
    refused(Code.INVALID_ARGUMENT, "only the labels of a config can be changed",
            lambda: secrets.relabelled("config", config("app"), changed, 0))
    renamed = pb.ConfigSpec(annotations=pb.Annotations(name="other"))  # was ignored
    refused(Code.INVALID_ARGUMENT, "only the labels of a config can be changed",
            lambda: secrets.relabelled("config", config("app"), renamed, 0))


def test_a_secret_in_use_stays() -> None:
    user = service("web")
    user.spec.task.container.secrets.add(secret_id="id-db", secret_name="db")
    refused(Code.FAILED_PRECONDITION, "secret 'db' is in use by the following service: web",
            lambda: secrets.check_unused("secret", secret("db"), [user]))


def test_a_config_in_use_stays() -> None:
    users = [service("a"), service("b")]
    for user in users:
        user.spec.task.container.configs.add(config_id="id-app", config_name="app")
    refused(Code.FAILED_PRECONDITION, "config 'app' is in use by the following services: a, b",
            lambda: secrets.check_unused("config", config("app"), users))


# ------------------------------------------------------------------ cluster --

def cluster_update(**kw: object) -> cpb.UpdateClusterRequest:
    req = cpb.UpdateClusterRequest(**kw)  # type: ignore[arg-type]
    return req


def no_rotation(cluster: pb.Cluster) -> pb.RootRotation:
    raise AssertionError("no rotation asked for")


def test_the_heartbeat_period_is_not_negative() -> None:
    req = cluster_update()
    req.spec.dispatcher.heartbeat_period.nanos = -1
    refused(Code.INVALID_ARGUMENT, "dispatcher heartbeat period must not be negative",
            lambda: clusterrules.updated_cluster(a_cluster(), req, no_rotation))


def test_the_heartbeat_period_is_at_least_100ms() -> None:
    req = cluster_update()
    req.spec.dispatcher.heartbeat_period.nanos = 50_000_000
    refused(Code.INVALID_ARGUMENT, "dispatcher heartbeat period must be at least 100ms",
            lambda: clusterrules.updated_cluster(a_cluster(), req, no_rotation))


def test_the_certificate_expiry_has_a_minimum() -> None:
    req = cluster_update()
    req.spec.ca_config.node_cert_expiry.nanos = 1_000_000_000
    refused(Code.INVALID_ARGUMENT,
            "node certificate expiry must be at least 1:00:00 (--cert-expiry)",
            lambda: clusterrules.updated_cluster(a_cluster(), req, no_rotation))
    refused(Code.INVALID_ARGUMENT,
            "node certificate expiry must be at least 0:00:10 (--cert-expiry)",
            lambda: clusterrules.updated_cluster(a_cluster(), req, no_rotation,
                                                 dt.timedelta(seconds=10)))


def test_the_unlock_key_rotates_only_with_autolock() -> None:
    refused(Code.FAILED_PRECONDITION, "cannot rotate because autolock is not turned on",
            lambda: clusterrules.updated_cluster(
                a_cluster(), cluster_update(rotate_manager_unlock_key=True), no_rotation))


def test_the_cluster_keeps_its_name() -> None:
    req = cluster_update()
    req.spec.annotations.name = "other"
    new = clusterrules.updated_cluster(a_cluster(), req, no_rotation)
    assert new.spec.annotations.name == "default" and not new.unlock_key


# ---------------------------------------------------------- demotion order --

def test_a_pending_demotion_first_leaves_raft() -> None:
    group = [manager("m1", leader=True), manager("m2", demoting=True), manager("m3")]
    steps = roles.demotion_steps(group, ["m1:2378", "m2:2378", "m3:2378"], "m1")
    assert [(d.node.id, d.step) for d in steps] == [("m2", roles.Step.REMOVE_MEMBER)]


def test_a_demotion_out_of_raft_is_recorded_as_a_worker() -> None:
    """What a new leader sees when the old one died between the two steps."""
    group = [manager("m1", reachable=False), manager("m2", demoting=True),
             manager("m3", leader=True)]
    steps = roles.demotion_steps(group, ["m1:2378", "m3:2378"], "m3")
    assert [(d.node.id, d.step) for d in steps] == [("m2", roles.Step.RECORD_WORKER)]
    done = roles.as_worker(steps[0].node)
    assert done.role == pb.WORKER and not done.HasField("manager_status")
    assert done.spec.desired_role == pb.WORKER


def test_a_demotion_waits_while_it_would_cost_the_quorum() -> None:
    group = [manager("m1", leader=True), manager("m2", demoting=True),
             manager("m3", reachable=False)]
    steps = roles.demotion_steps(group, ["m1:2378", "m2:2378", "m3:2378"], "m1")
    assert [(d.node.id, d.step) for d in steps] == [("m2", roles.Step.WAIT)]
    assert "quorum" in steps[0].reason


def test_the_leader_never_removes_itself() -> None:
    group = [manager("m1", leader=True, demoting=True), manager("m2"), manager("m3")]
    steps = roles.demotion_steps(group, ["m1:2378", "m2:2378", "m3:2378"], "m1")
    assert [(d.step, d.reason) for d in steps] == [(roles.Step.WAIT, "it is the leader")]


def test_nothing_to_do_without_a_pending_demotion() -> None:
    group = [manager("m1", leader=True), manager("m2"), worker("w1")]
    assert roles.demotion_steps(group, ["m1:2378", "m2:2378"], "m1") == []
