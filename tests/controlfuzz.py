"""The Control API served in-process over an in-memory store, for the fuzz tests.

`seeded()` builds once, through the servicer itself, a small cluster whose
objects the fuzzed requests refer to by name (tests/protofuzz.py `STRINGS`):
nodes m1 (this manager, the leader), w1 (ready) and w2 (down), networks
front, back and ingress, secret pw, config conf, services web, db and job,
stack app (service app_web, network app_default, secret app_pw) and a running
task of web. `Control` serves calls on a fresh copy of that store and answers
each with what a client would see: the response, or the status and message of
a refusal.
"""
from __future__ import annotations

import asyncio
import atexit
import random
import shutil
import string
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Optional
from unittest import mock

import grpc
from google.protobuf.message import Message

from manager.allocator.networks import ingress_network
from manager.controlapi.server import ControlServicer
from manager.logbroker import LogBroker
from pki import node as pkinode
from pki import tokens
from pki.ca import RootCA
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb
from raft import actions
from tests.memstore import MemoryStore
from tests.test_stack_rules import definition, sec_spec, svc_spec

SELF = "m1"
ID_CHARS = string.digits + string.ascii_lowercase
# what a refusal may answer: everything the servicer's STATUS maps a Refusal to
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.UNAVAILABLE}


class Aborted(Exception):
    """What `context.abort` raises in process (grpc.aio raises its own AbortError)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class Context:
    """The part of a grpc.aio servicer context the Control API uses."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)

    def invocation_metadata(self) -> tuple:
        return ()

    async def send_initial_metadata(self, metadata: tuple) -> None:
        pass


@dataclass
class Answer:
    """A call's outcome: `response`, or `code` and `message` of its refusal."""
    response: Optional[Message] = None
    code: Optional[grpc.StatusCode] = None
    message: str = ""

    @property
    def refused(self) -> bool:
        return self.code is not None


class Control:
    """A ControlServicer of manager m1 over `store`; its data dir holds the root CA."""

    def __init__(self, store: MemoryStore, data_dir: str) -> None:
        self.store = store
        self.servicer = ControlServicer(store, SELF, data_dir, LogBroker(SELF), lambda: "")
        self.servicer.stacks.remove_wait = 0.05  # `stack rm` of running tasks gives up at once

    def call(self, method: str, request: Message) -> Answer:
        """Serves one unary call as gRPC would: the response goes through the wire format."""
        async def serve() -> Message:
            handler = getattr(self.servicer, method)
            response: Message = await handler(request, Context())
            return response
        try:
            response = asyncio.run(serve())
        except Aborted as refusal:
            return Answer(code=refusal.code, message=refusal.details)
        return Answer(response=type(response).FromString(response.SerializeToString()))

    def ok(self, method: str, request: Message) -> Any:
        answer = self.call(method, request)
        assert not answer.refused, f"{method}: {answer.code}: {answer.message}"
        return answer.response


def _cluster(root: RootCA) -> pb.Cluster:
    cluster = pb.Cluster(id=model.new_id())
    cluster.spec.annotations.name = "default"
    cluster.spec.orchestration.task_history_retention_limit = 5
    cluster.spec.dispatcher.heartbeat_period.nanos = 5 * 10**9
    cluster.root_ca_cert = root.cert_pem
    cluster.join_tokens.CopyFrom(tokens.new_join_tokens(root.cert_pem))
    return cluster


def _node(node_id: str, role: int, state: int) -> pb.Node:
    node = pb.Node(id=node_id, role=role)  # type: ignore[arg-type]
    node.spec.desired_role = role  # type: ignore[assignment]
    node.description.hostname = node_id
    node.status.state = state  # type: ignore[assignment]
    if role == pb.MANAGER:
        node.manager_status.leader = True
        node.manager_status.raft_addr = "127.0.0.1:1"
        node.manager_status.reachability = pb.ManagerStatus.REACHABLE
    return node


def rich_spec(name: str, port: int = 9090) -> pb.ServiceSpec:
    """A service spec that uses most of what a spec can say, all of it valid; it
    publishes `port` (tcp, ingress) and `port` + 1 (udp, host)."""
    s = pb.ServiceSpec()
    s.annotations.name = name
    s.annotations.labels["tier"] = "front"
    s.replicated.replicas = 2
    c = s.task.container
    c.image = "nginx:1"
    c.env.extend(["A=1", "B"])
    c.command.extend(["nginx", "-g"])
    c.labels["x"] = "y"
    c.user, c.dir, c.hostname, c.stop_signal = "root", "/srv", "h", "SIGTERM"
    c.stop_grace_period.nanos = 10**9
    c.healthcheck.test.extend(["CMD", "true"])
    c.healthcheck.interval.nanos = 10**9
    c.healthcheck.retries = 3
    c.groups.append("wheel")
    c.secrets.add(secret_name="pw", target="pw", mode=0o400)
    c.configs.add(config_name="conf", target="/etc/conf", mode=0o444)
    c.dns_nameservers.append("10.0.0.5")
    c.mounts.add(type=pb.Mount.VOLUME, source="data", target="/data")
    c.mounts.add(type=pb.Mount.TMPFS, target="/tmp", tmpfs_options={"size_bytes": 1 << 20})
    c.cap_add.append("NET_ADMIN")
    c.cap_drop.append("CHOWN")
    c.sysctls["net.core.somaxconn"] = "1024"
    c.ulimits.add(name="nofile", soft=1024, hard=2048)
    c.hosts.append("10.0.0.5 db")
    s.task.resources.limits.nano_cpus = 10**9
    s.task.resources.limits.memory_bytes = 1 << 28
    s.task.resources.reservations.memory_bytes = 1 << 20
    s.task.restart.condition = pb.RestartPolicy.ON_FAILURE
    s.task.restart.delay.nanos = 10**9
    s.task.restart.has_delay = True
    s.task.restart.max_attempts = 3
    s.task.placement.constraints.append("node.role==worker")
    s.task.placement.preferences.add(spread="node.labels.zone")
    s.task.placement.max_replicas = 2
    s.task.networks.add(target="front", aliases=["w"])
    s.task.log_driver_options["max-size"] = "10m"
    s.update.parallelism = 1
    s.update.delay.nanos = 10**9
    s.update.failure_action = pb.UpdateConfig.ROLLBACK
    s.update.max_failure_ratio = 0.5
    s.update.order = pb.UpdateConfig.START_FIRST
    s.rollback.parallelism = 1
    s.endpoint.ports.add(target_port=80, published_port=port)
    s.endpoint.ports.add(target_port=53, published_port=port + 1, protocol=pb.PortConfig.UDP,
                         publish_mode=pb.PortConfig.HOST)
    return s


def stack_definition() -> pb.StackDefinition:
    return definition(svc_spec("web"), secrets=(sec_spec("app_pw"),))


def _ids(rng: random.Random) -> Callable[[], str]:
    """Object IDs as model.new_id makes them, drawn from `rng` (repeatable)."""
    def new_id() -> str:
        return "".join(rng.choice(ID_CHARS) for _ in range(model.ID_LENGTH))
    return new_id


def seeded() -> tuple[bytes, str]:
    """The seeded store's dump and the data directory holding the cluster's root CA.
    Its object IDs are the same in every run (ID prefixes the fuzzed requests may
    name match the same objects)."""
    with mock.patch.object(model, "new_id", _ids(random.Random(16))):
        return _seeded()


def _seeded() -> tuple[bytes, str]:
    data_dir = tempfile.mkdtemp(prefix="fuzzapi-")
    atexit.register(shutil.rmtree, data_dir, True)  # the tests use it until they end
    root = RootCA.create()
    root.save(pkinode.cert_dir(data_dir))
    store = MemoryStore()
    cluster = _cluster(root)
    ingress = ingress_network(cluster)
    ingress.id = model.new_id()
    store.commit([actions.create(cluster), actions.create(ingress),
                  actions.create(_node(SELF, pb.MANAGER, pb.NodeStatus.READY)),
                  actions.create(_node("w1", pb.WORKER, pb.NodeStatus.READY)),
                  actions.create(_node("w2", pb.WORKER, pb.NodeStatus.DOWN))])
    control = Control(store, data_dir)
    for name in ("front", "back", "spare"):
        control.ok("CreateNetwork", cpb.CreateNetworkRequest(
            spec=pb.NetworkSpec(annotations=pb.Annotations(name=name), driver="overlay")))
    control.ok("CreateSecret", cpb.CreateSecretRequest(
        spec=pb.SecretSpec(annotations=pb.Annotations(name="pw"), data=b"s3cret")))
    control.ok("CreateConfig", cpb.CreateConfigRequest(
        spec=pb.ConfigSpec(annotations=pb.Annotations(name="conf"), data=b"k=v")))
    web = control.ok("CreateService", cpb.CreateServiceRequest(spec=rich_spec("web"))).service
    db = pb.ServiceSpec(annotations=pb.Annotations(name="db"))
    db.task.container.image = "db:1"
    db.task.networks.add(target="back")
    db.replicated.replicas = 1
    control.ok("CreateService", cpb.CreateServiceRequest(spec=db))
    job = pb.ServiceSpec(annotations=pb.Annotations(name="job"))
    job.task.container.image = "busybox:latest"
    job.replicated_job.total_completions = 2
    control.ok("CreateService", cpb.CreateServiceRequest(spec=job))
    # an update, so that web has a previous spec to roll back to
    updated = rich_spec("web")
    updated.task.container.image = "nginx:2"
    control.ok("UpdateService", cpb.UpdateServiceRequest(service_id="web", spec=updated))
    first = stack_definition()
    first.services[0].task.container.image = "web:0"
    control.ok("DeployStack", cpb.DeployStackRequest(stack=first))  # app has a previous one
    control.ok("DeployStack", cpb.DeployStackRequest(stack=stack_definition()))
    task = pb.Task(id=model.new_id(), service_id=web.id, node_id="w1", slot=1,
                   desired_state=pb.RUNNING)
    task.spec.CopyFrom(updated.task)
    task.status.state = pb.RUNNING
    front = store.by_name("network", "front")
    assert isinstance(front, pb.Network)
    task.networks.add(network_id=front.id, addresses=["10.0.1.5/24"])
    store.commit([actions.create(task)])
    return store.dump(), data_dir
