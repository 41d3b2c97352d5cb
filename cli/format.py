"""Pure formatting of cluster objects for `swarm` list output.

Owns the rows behind `service ls`, `service ps`/`node ps` and `node ls`
(dicts keyed by Docker's template field names), Docker's wording of times
("Running 5 seconds ago"), the REPLICAS and PORTS columns, ID truncation,
the ordering of tasks with history rows (` \\_ web.1`), and JSON conversion
of protobuf objects with readable enum names. No I/O and no gRPC here.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable, Mapping, Optional, Sequence

from google.protobuf import json_format
from google.protobuf.message import Message

from cli.imagepin import display_image
from cli.parsing import port_text
from cli.templates import header_of, tabulate
from proto import model
from proto import objects_pb2 as pb

SERVICE_FIELDS = ("ID", "Name", "Mode", "Replicas", "Image", "Ports")
TASK_FIELDS = ("ID", "Name", "Image", "Node", "DesiredState", "CurrentState", "Error", "Ports")
TASK_TEMPLATE_FIELDS = TASK_FIELDS + ("Health",)   # Health: only through --format
NODE_FIELDS = ("ID", "Hostname", "Status", "Availability", "ManagerStatus", "EngineVersion",
               "Self")
NODE_COLUMNS = NODE_FIELDS[:-1]
MAX_ERR_LENGTH = 30  # Docker's task error column width


def truncate_id(object_id: str) -> str:
    """Docker's short ID: the first 12 characters."""
    return object_id[:12]


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration: "Less than a second", "5 seconds", "About an hour"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def pretty_enum(name: str) -> str:
    """RUNNING -> "Running", ON_FAILURE -> "On-failure", as Docker's PrettyPrint."""
    return name.lower().replace("_", "-").capitalize()


def state_age(state: int, since: float, now: float) -> str:
    """The CURRENT STATE column: "Running 5 seconds ago"."""
    return f"{model.state_name(state)} {human_duration(max(0.0, now - since)).lower()} ago"


_MODE_NAMES = {"global": "global", "replicated_job": "replicated job",
               "global_job": "global job"}


def mode_of(spec: pb.ServiceSpec) -> str:
    """The MODE column: replicated, global, replicated job or global job."""
    return _MODE_NAMES.get(spec.WhichOneof("mode") or "", "replicated")


def ports_column(ports: Iterable[pb.PortConfig], ingress_only: bool = True) -> str:
    """The PORTS column: "*:8080->80/tcp, *:8081-8082->81-82/tcp"."""
    selected = [p for p in ports
                if not ingress_only or p.publish_mode == pb.PortConfig.INGRESS]
    selected.sort(key=lambda p: (p.protocol, p.target_port, p.published_port))
    out: list[str] = []
    i = 0
    while i < len(selected):
        first = selected[i]
        j = i
        while (j + 1 < len(selected)
               and selected[j + 1].protocol == first.protocol
               and selected[j + 1].target_port == selected[j].target_port + 1
               and first.published_port
               and selected[j + 1].published_port == selected[j].published_port + 1):
            j += 1
        if j == i:
            out.append(port_text(first))
        else:
            last = selected[j]
            proto = pb.PortConfig.Protocol.Name(first.protocol).lower()
            out.append(f"*:{first.published_port}-{last.published_port}->"
                       f"{first.target_port}-{last.target_port}/{proto}")
        i = j + 1
    return ", ".join(out)


def replica_counts(service: pb.Service, tasks: Iterable[pb.Task],
                   down_nodes: Iterable[str] = ()) -> tuple[int, int]:
    """(running, desired) for the REPLICAS column (proto/model.py replica_status)."""
    running, desired, _, _ = model.replica_status(service, tasks, down_nodes)
    return running, desired


def replicas_column(service: pb.Service, running: int, desired: int) -> str:
    text = f"{running}/{desired}"
    max_per_node = service.spec.task.placement.max_replicas
    if mode_of(service.spec) == "replicated" and max_per_node:
        text += f" (max {max_per_node} per node)"
    return text


def job_replicas_column(service: pb.Service, tasks: Iterable[pb.Task],
                        down_nodes: Iterable[str] = ()) -> str:
    """Docker's REPLICAS for a job: "running/desired (completed/total completed)"
    (the counts: proto/model.py replica_status)."""
    return status_replicas_column(service, model.replica_status(service, tasks, down_nodes))


def status_replicas_column(service: pb.Service, status: tuple[int, int, int, int]) -> str:
    """The REPLICAS column from (running, desired, completed, total) counts."""
    running, desired, completed, total = status
    if mode_of(service.spec).endswith(" job"):
        return f"{running}/{desired} ({completed}/{total} completed)"
    return replicas_column(service, running, desired)


def service_row(service: pb.Service, tasks: Sequence[pb.Task],
                down_nodes: Iterable[str] = (),
                status: Optional[tuple[int, int, int, int]] = None) -> dict[str, str]:
    """A `service ls` row; the REPLICAS counts from `status` when the manager counted
    them (ListServices status), else from the service's `tasks`."""
    if status is None:
        status = model.replica_status(service, tasks, down_nodes)
    replicas = status_replicas_column(service, status)
    ports = service.endpoint.ports or service.spec.endpoint.ports
    return {
        "ID": truncate_id(service.id),
        "Name": service.spec.annotations.name,
        "Mode": mode_of(service.spec),
        "Replicas": replicas,
        "Image": display_image(service.spec.task.container.image),
        "Ports": ports_column(ports),
    }


def _image_text(image: str, trunc: bool) -> str:
    """A task's IMAGE column: as `service ls` shows it, or whole with --no-trunc."""
    return display_image(image) if trunc else image


def task_base_name(task: pb.Task) -> str:
    """<service>.<slot> for replicated tasks, <service>.<node id> for global ones."""
    service = task.service_name or task.annotations.name.split(".")[0]
    return f"{service}.{task.slot}" if task.slot else f"{service}.{task.node_id}"


def _task_sort_key(task: pb.Task) -> tuple:
    created = model.ts_seconds(task.meta.created_at)
    return (task.service_name, task.slot, task.node_id if not task.slot else "", -created)


def sort_tasks(tasks: Iterable[pb.Task]) -> list[pb.Task]:
    """Docker's order: by service and slot (or node), newest first within a slot."""
    return sorted(tasks, key=_task_sort_key)


def task_error(task: pb.Task, trunc: bool) -> str:
    """The ERROR column: the task's error (or why it cannot be placed), quoted."""
    err = task.status.err
    if not err and task.status.state == pb.PENDING:
        err = task.scheduling_message
    if trunc and len(err) > MAX_ERR_LENGTH:
        err = err[:MAX_ERR_LENGTH - 1] + "…"
    return f'"{err}"' if err else ""


def _iso(ts: Any) -> str:
    """A protobuf Timestamp as Docker prints times in JSON (RFC 3339, UTC)."""
    return ts.ToJsonString() if ts.seconds or ts.nanos else ""


def task_health(task: pb.Task) -> Optional[dict[str, Any]]:
    """The task container's health as Docker's State.Health (None without a check)."""
    if not task.status.HasField("health"):
        return None
    h = task.status.health
    return {"Status": h.status, "FailingStreak": h.failing_streak,
            "Log": [{"Start": _iso(r.start), "End": _iso(r.end), "ExitCode": r.exit_code,
                     "Output": r.output} for r in h.log]}


def task_rows(tasks: Iterable[pb.Task], node_names: Mapping[str, str], now: Optional[float] = None,
              trunc: bool = True) -> list[dict[str, Any]]:
    """Rows for `service ps`/`node ps`, sorted, with history rows indented as Docker;
    a task with a healthcheck has its health under "Health"."""
    now = time.time() if now is None else now
    rows: list[dict[str, Any]] = []
    previous = None
    for task in sort_tasks(tasks):
        name = task_base_name(task)
        shown = f" \\_ {name}" if name == previous else name
        previous = name
        since = model.ts_seconds(task.status.timestamp) or model.ts_seconds(task.meta.created_at)
        rows.append({
            "ID": truncate_id(task.id) if trunc else task.id,
            "Name": shown,
            "Image": _image_text(task.spec.container.image, trunc),
            "Node": node_names.get(task.node_id, task.node_id),
            "DesiredState": model.state_name(task.desired_state),
            "CurrentState": state_age(task.status.state, since, now),
            "Error": task_error(task, trunc),
            "Ports": ports_column(task.status.ports, ingress_only=False),
        })
        health = task_health(task)
        if health is not None:
            rows[-1]["Health"] = health
    return rows


def manager_status_text(node: pb.Node) -> str:
    if node.role != pb.MANAGER and not node.HasField("manager_status"):
        return ""
    if node.manager_status.leader:
        return "Leader"
    return pretty_enum(pb.ManagerStatus.Reachability.Name(node.manager_status.reachability))


def node_row(node: pb.Node, self_id: str) -> dict:
    return {
        "ID": node.id,
        "Hostname": node.description.hostname,
        "Status": pretty_enum(pb.NodeStatus.State.Name(node.status.state)),
        "Availability": pretty_enum(pb.NodeSpec.Availability.Name(node.spec.availability)),
        "ManagerStatus": manager_status_text(node),
        "EngineVersion": node.description.engine_version,
        "Self": node.id == self_id,
    }


def node_table(rows: Sequence[Mapping]) -> str:
    """`node ls`' default table, with "*" after the ID of the node being asked."""
    body = [[header_of(c) for c in NODE_COLUMNS]]
    for r in rows:
        ident = f"{r['ID']} *" if r.get("Self") else r["ID"]
        body.append([ident] + [str(r[c]) for c in NODE_COLUMNS[1:]])
    return tabulate(body)


def sort_nodes(nodes: Iterable[pb.Node]) -> list[pb.Node]:
    return sorted(nodes, key=lambda n: (n.description.hostname, n.id))


def to_dict(message: Message) -> dict:
    """A protobuf message as JSON-ready data: field names as in the .proto, enums by name.

    Zero values are kept (availability ACTIVE, role WORKER are zeros).
    """
    options: dict[str, Any] = {"preserving_proto_field_name": True,
               "always_print_fields_with_no_presence": True}
    try:
        return json_format.MessageToDict(message, unquote_int64_if_possible=True, **options)
    except TypeError:  # protobuf releases without that option print 64-bit ints as strings
        return json_format.MessageToDict(message, **options)


def inspect_json(messages: Iterable[Message]) -> str:
    """`inspect` output: a JSON list, indented like Docker's."""
    return json.dumps([to_dict(m) for m in messages], indent=4, ensure_ascii=False)
