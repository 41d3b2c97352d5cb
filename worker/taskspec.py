"""Turning a Task into the container that runs it.

This module owns the naming and labelling of task containers and the mapping
of a task's ContainerSpec onto the runtime's `ContainerConfig`. It is pure
(no I/O but the one read of the node's capability bounding set, `caps.grantable`),
so the agent, the tests and the adoption logic all agree on names and labels.
"""
from __future__ import annotations

from typing import Sequence

from proto import genericres, logrules, model
from proto import objects_pb2 as pb
from worker import caps, mounts, templates
from worker.runtime import HOST_NETWORK, ContainerConfig, Ulimit

LABEL_CLUSTER_ID = "com.shoal.cluster.id"
LABEL_NODE_ID = "com.shoal.node.id"
LABEL_SERVICE_ID = "com.shoal.service.id"
LABEL_SERVICE_NAME = "com.shoal.service.name"
LABEL_TASK_ID = "com.shoal.task.id"
LABEL_TASK_NAME = "com.shoal.task.name"
LABEL_TASK_SLOT = "com.shoal.task.slot"

# Docker's labels on task containers, for the tools people run beside Swarm.
DOCKER_SERVICE_ID = "com.docker.swarm.service.id"
DOCKER_SERVICE_NAME = "com.docker.swarm.service.name"
DOCKER_TASK = "com.docker.swarm.task"
DOCKER_TASK_ID = "com.docker.swarm.task.id"
DOCKER_TASK_NAME = "com.docker.swarm.task.name"
DOCKER_NODE_ID = "com.docker.swarm.node.id"
STACK_NAMESPACE = "com.docker.stack.namespace"

DEFAULT_STOP_GRACE = 10.0  # seconds, as Docker's


def container_name(task: pb.Task, node_id: str) -> str:
    """`<service>.<slot>.<task id>`; global tasks (slot 0) use the node ID instead of the slot."""
    service = task.service_name or task.service_id
    middle = str(task.slot) if task.slot else (task.node_id or node_id)
    return f"{service}.{middle}.{task.id}"


def container_labels(task: pb.Task, node_id: str, cluster_id: str = "") -> dict[str, str]:
    """The user's container labels, then the task's own labels (the orchestrator copies a
    stack's namespace there), then Docker's and ours; ours win, adoption relies on them."""
    labels = dict(task.spec.container.labels)
    labels.update(task.annotations.labels)
    labels.update({
        DOCKER_SERVICE_ID: task.service_id,
        DOCKER_SERVICE_NAME: task.service_name,
        DOCKER_TASK: "",
        DOCKER_TASK_ID: task.id,
        DOCKER_TASK_NAME: container_name(task, node_id),
        DOCKER_NODE_ID: node_id,
    })
    ours = {
        LABEL_NODE_ID: node_id,
        LABEL_SERVICE_ID: task.service_id,
        LABEL_SERVICE_NAME: task.service_name,
        LABEL_TASK_ID: task.id,
        LABEL_TASK_NAME: task.annotations.name,
        LABEL_TASK_SLOT: str(task.slot),
    }
    if cluster_id:
        ours[LABEL_CLUSTER_ID] = cluster_id
    labels.update(ours)
    return labels


def stop_grace_period(task: pb.Task) -> float:
    """The task's stop grace period in seconds; 10 s unless the spec sets one (0 included)."""
    spec = task.spec.container
    if spec.HasField("stop_grace_period"):
        return max(0.0, model.seconds(spec.stop_grace_period))
    return DEFAULT_STOP_GRACE


def check_oom_score_adj(value: int, grantable: Sequence[str]) -> None:
    """Raises caps.CapabilityError for a negative OOM score adjustment on a node whose
    engine lacks CAP_SYS_RESOURCE: the kernel refuses to lower it without that
    capability, and the runtime would only say "write child: broken pipe"."""
    if value < 0 and "CAP_SYS_RESOURCE" not in grantable:
        raise caps.CapabilityError(
            f"--oom-score-adj {value} needs CAP_SYS_RESOURCE to lower the OOM score, and "
            "this node's engine runs without it (e.g. inside a container that drops it): "
            "use a value of 0 or more, or place the service on nodes that have it")


def container_config(task: pb.Task, node_id: str, cluster_id: str = "",
                     node_hostname: str = "",
                     grantable_caps: Sequence[str] | None = None) -> ContainerConfig:
    """Everything the runtime needs to create the container of `task`.

    Docker-style templates (`{{.Task.Slot}}`, `{{.Node.Hostname}}`, ...) in the
    environment, hostname and container labels are expanded here. The container
    gets Docker's capabilities, changed by the spec's cap_add/cap_drop (ALL means
    `grantable_caps`, by default what this node can grant). The task's log driver and
    options become podman's (proto/logrules.py). Raises caps.CapabilityError
    for a capability name nobody knows or a negative OOM score adjustment the node
    cannot grant, logrules.LogOptionError for a log option the
    engine cannot honour (the manager refuses both; a spec from elsewhere may not).
    """
    spec = task.spec.container
    limits = task.spec.resources.limits
    values = templates.context(task, node_id, node_hostname)
    log = logrules.podman_log(task.spec.log_driver, task.spec.log_driver_options)
    grantable = caps.grantable() if grantable_caps is None else grantable_caps
    check_oom_score_adj(spec.oom_score_adj, grantable)

    def x(text: str) -> str:
        return templates.expand(text, values)
    return ContainerConfig(
        name=container_name(task, node_id),
        image=spec.image,
        command=list(spec.command),
        args=list(spec.args),
        # after the spec's, as Docker: DOCKER_RESOURCE_GPU=GPU-1,GPU-2 (proto/genericres.py)
        env=[x(e) for e in spec.env] + genericres.env(task.assigned_generic_resources),
        labels={k: x(v) for k, v in container_labels(task, node_id, cluster_id).items()},
        user=spec.user,
        workdir=spec.dir,
        hostname=x(spec.hostname),
        network_ns=HOST_NETWORK if any(n.target == HOST_NETWORK
                                       for n in task.spec.networks) else "",
        stop_signal=spec.stop_signal,
        stop_grace_period=stop_grace_period(task),
        nano_cpus=limits.nano_cpus,
        memory_bytes=limits.memory_bytes,
        pids_limit=limits.pids,
        oom_score_adj=spec.oom_score_adj,
        dns_servers=list(spec.dns_nameservers),
        dns_search=list(spec.dns_search),
        dns_options=list(spec.dns_options),
        tty=spec.tty,
        read_only=spec.read_only,
        init=spec.init,
        groups=list(spec.groups),
        mounts=mounts.container_mounts(spec),
        capabilities=caps.effective(spec.cap_add, spec.cap_drop, grantable),
        capabilities_requested=[caps.normalize(c) for c in spec.cap_add],
        sysctls=dict(spec.sysctls),
        ulimits=[Ulimit(u.name, u.soft, u.hard) for u in spec.ulimits],
        hosts=list(spec.hosts),
        log_max_size=log.size,
        log_driver=log.driver,
        log_tag=log.tag,
    )
