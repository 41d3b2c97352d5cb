"""Helpers that belong to the object model itself: IDs, kinds, states, durations.

Every package may use these; they import nothing of ours but the generated
modules.
"""
from __future__ import annotations

import os
import time
from typing import Iterable, Optional, Union

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from proto import objects_pb2 as pb

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25  # 36**25 > 2**128, as Swarm's IDs
# The UDP port of VXLAN traffic unless `swarm init --data-path-port` chose another (Docker's)
DEFAULT_DATA_PATH_PORT = 4789
DATA_PATH_PORT_RANGE = (1024, 49151)  # the ports `--data-path-port` accepts, as Docker
DEFAULT_SNAPSHOT_INTERVAL = 10000  # raft log entries between two snapshots (Docker's default)

# Kind name -> StoreObject field name and message class.
KINDS: dict[str, type[Message]] = {
    "node": pb.Node,
    "service": pb.Service,
    "task": pb.Task,
    "network": pb.Network,
    "secret": pb.Secret,
    "config": pb.Config,
    "cluster": pb.Cluster,
    "stack": pb.Stack,
}
_KIND_OF_CLASS = {cls: kind for kind, cls in KINDS.items()}

StoredObject = Union[pb.Node, pb.Service, pb.Task, pb.Network, pb.Secret, pb.Config, pb.Cluster,
                     pb.Stack]

TERMINAL_STATES = frozenset(
    {pb.COMPLETE, pb.SHUTDOWN, pb.FAILED, pb.REJECTED, pb.REMOVE, pb.ORPHANED}
)


# every three base36 digits, most significant first (index: their value): an ID takes 9
# divisions instead of 25 (a reconcile pass of 30,000 new tasks makes 30,000 IDs)
_TRIPLES = [a + b + c for a in _ALPHABET for b in _ALPHABET for c in _ALPHABET]
_TRIPLE = len(_TRIPLES)  # 36**3


def new_id() -> str:
    """Returns a new object ID: 128 random bits as 25 lowercase base36 characters."""
    n = int.from_bytes(os.urandom(16), "big")
    parts = []
    for _ in range((ID_LENGTH - 1) // 3):
        n, r = divmod(n, _TRIPLE)
        parts.append(_TRIPLES[r])
    parts.append(_ALPHABET[n])  # below 36: 2**128 < 36**25
    return "".join(reversed(parts))


def kind_of(obj: Message) -> str:
    """Returns the kind name ("service", "task", ...) of a stored object."""
    return kind_of_class(type(obj))


def kind_of_class(cls: type[Message]) -> str:
    """Returns the kind name of a stored object's class (pb.Node -> "node", ...)."""
    return _KIND_OF_CLASS[cls]


def wrap(obj: Message) -> pb.StoreObject:
    """Wraps a stored object in a StoreObject (the store's and watch's envelope)."""
    wrapped = pb.StoreObject()
    getattr(wrapped, kind_of(obj)).CopyFrom(obj)
    return wrapped


def unwrap(wrapped: pb.StoreObject) -> StoredObject:
    """Returns the object inside a StoreObject."""
    field = wrapped.WhichOneof("object")
    if field is None:
        raise ValueError("empty StoreObject")
    return getattr(wrapped, field)


def object_name(obj: Message) -> str:
    """Returns the user-visible name of an object ("" when it has none)."""
    if isinstance(obj, pb.Node):
        return obj.description.hostname
    if isinstance(obj, pb.Task):
        return obj.annotations.name
    if isinstance(obj, pb.Stack):
        return obj.name
    return obj.spec.annotations.name


def is_terminal(state: int) -> bool:
    """True for task states a task never leaves (COMPLETE and after)."""
    return state >= pb.COMPLETE


def state_name(state: int) -> str:
    """Docker's spelling of a task state: "Running", "Failed", ..."""
    return pb.TaskState.Name(state).capitalize()


def duration(seconds: float) -> pb.Duration:
    return pb.Duration(nanos=int(round(seconds * 1e9)))


def seconds(d: pb.Duration) -> float:
    return d.nanos / 1e9


def timestamp(at: float | None = None) -> timestamp_pb2.Timestamp:
    """A Timestamp for unix time `at` (now by default)."""
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int((time.time() if at is None else at) * 1e9))
    return ts


def ts_seconds(ts: timestamp_pb2.Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def merged_status(stored: pb.TaskStatus, reported: pb.TaskStatus) -> pb.TaskStatus:
    """The status to store when an agent reports `reported` for a task whose stored
    status is `stored`: the report, with `running_since` kept from the stored status,
    or set to the report's time when this is the first RUNNING seen."""
    merged = pb.TaskStatus()
    merged.CopyFrom(reported)
    if stored.HasField("running_since"):
        merged.running_since.CopyFrom(stored.running_since)
    elif reported.state == pb.RUNNING:
        merged.running_since.CopyFrom(reported.timestamp)
    return merged


def node_addr(node: pb.Node) -> str:
    """The IPv4 address other nodes reach `node` at (its overlay tunnel end).

    The data path address the node reports (`swarm init|join --data-path-addr`);
    else a manager's advertised address; otherwise the address its dispatcher
    session comes from (status.addr, as gRPC names a peer: "ipv4:10.1.0.3:40112")."""
    if node.description.data_path_addr:
        return node.description.data_path_addr
    if node.manager_status.addr:
        return node.manager_status.addr.rsplit(":", 1)[0]
    addr = node.status.addr
    if addr.startswith("ipv4:"):
        addr = addr[len("ipv4:"):]
    return addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr


def data_path_port(cluster: Optional[pb.Cluster]) -> int:
    """The UDP port of the cluster's VXLAN traffic (`swarm init --data-path-port`)."""
    port = cluster.spec.data_path_port if cluster is not None else 0
    return port or DEFAULT_DATA_PATH_PORT


def mac_for(addr: str) -> str:
    """Docker's MAC for an IPv4 address ("10.0.1.3" or "10.0.1.3/24"): 02:42 + its bytes."""
    octets = addr.split("/", 1)[0].split(".")
    return "02:42:" + ":".join(f"{int(o):02x}" for o in octets)


# the tasks `service ls` counts: wanted running, or a job's completed ones
LISTED_DESIRED_STATES = (pb.RUNNING, pb.COMPLETE)


def replica_status(service: pb.Service, tasks: Iterable[pb.Task],
                   down_nodes: Iterable[str] = ()) -> tuple[int, int, int, int]:
    """(running, desired, completed, total) of `service ls`'s REPLICAS column, from the
    service's tasks (others are ignored) and the nodes that are down.

    Only tasks the orchestrator wants running count, and a task on a node that is down
    is not running. A replicated service desires its replica count, a global one a task
    per node it runs on. A job counts its current iteration only: `completed` slots (a
    global job: nodes) of `total` completions; a replicated job desires max-concurrent
    tasks, fewer once fewer completions remain; a global job one per node it runs on that
    has not completed. `completed` and `total` are 0 for services that are not jobs.
    `service ls` passes the tasks wanted RUNNING or COMPLETE (LISTED_DESIRED_STATES).
    The manager counts them for ListServices(status); the CLI from the listed tasks
    otherwise."""
    down = set(down_nodes)
    mode = service.spec.WhichOneof("mode")
    if mode in ("replicated_job", "global_job"):
        current = [t for t in tasks
                   if t.service_id == service.id and t.spec_version == service.spec_version]
        running = sum(1 for t in current if t.desired_state == pb.RUNNING
                      and t.status.state == pb.RUNNING and t.node_id not in down)
        completed = len({t.slot if t.slot else t.node_id for t in current
                         if t.status.state == pb.COMPLETE})
        if mode == "replicated_job":
            job = service.spec.replicated_job
            total = job.total_completions
            desired = min(job.max_concurrent or total, max(0, total - completed))
        else:
            total = len({t.node_id for t in current
                         if t.desired_state == pb.RUNNING or t.status.state == pb.COMPLETE})
            desired = total - completed
        return running, desired, completed, total
    running = desired = 0
    for task in tasks:
        if task.service_id != service.id or task.desired_state != pb.RUNNING:
            continue
        desired += 1
        if task.status.state == pb.RUNNING and task.node_id not in down:
            running += 1
    if mode in ("replicated", None):
        desired = service.spec.replicated.replicas
    return running, desired, 0, 0
