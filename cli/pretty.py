"""Human-readable text for `inspect --pretty` and `swarm info`, as Docker prints them.

Owns the layout of a service's and a node's details (`Name:`, `Service Mode:`,
`UpdateConfig:`, `Manager Status:`, ...) and of the info summary. Pure
functions from protobuf objects to text.
"""
from __future__ import annotations

import datetime
from typing import Optional, Sequence

from cli.format import human_duration, manager_status_text, mode_of, pretty_enum
from cli.parsing import format_duration, format_size
from cli.templates import tabulate
from proto import control_pb2 as cpb
from proto import genericres, model
from proto import objects_pb2 as pb

Line = Sequence[str]


def _aligned(lines: list[Line]) -> str:
    return tabulate([list(line) for line in lines], minwidth=0, padding=1)


def _time(ts) -> str:
    seconds = model.ts_seconds(ts)
    if not seconds:
        return ""
    at = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return at.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _cpus(nanos: int) -> str:
    return f"{nanos / 1e9:g}"


def _update_config(title: str, cfg: pb.UpdateConfig, order_word: str) -> list[Line]:
    return [
        [f"{title}:"],
        [" Parallelism:", str(cfg.parallelism)],
        *([[" Delay:", format_duration(cfg.delay.nanos)]] if cfg.delay.nanos else []),
        [" On failure:", pb.UpdateConfig.FailureAction.Name(cfg.failure_action).lower()],
        [" Monitoring Period:", format_duration(cfg.monitor.nanos)],
        [" Max failure ratio:", f"{cfg.max_failure_ratio:g}"],
        [f" {order_word} order:", pb.UpdateConfig.Order.Name(cfg.order).lower().replace("_", "-")],
    ]


def _resources(res: pb.ResourceRequirements) -> list[Line]:
    lines: list[Line] = [["Resources:"]]
    for title, r in (("Reservations", res.reservations), ("Limits", res.limits)):
        if r.nano_cpus or r.memory_bytes or r.pids or r.generic_resources:
            lines.append([f" {title}:"])
            if r.nano_cpus:
                lines.append(["  CPU:", _cpus(r.nano_cpus)])
            if r.memory_bytes:
                lines.append(["  Memory:", format_size(r.memory_bytes)])
            if r.pids:
                lines.append(["  PIDs:", str(r.pids)])
            lines += _generic(r.generic_resources, "  ")
    return lines


def _generic(resources: Sequence[pb.GenericResource], indent: str) -> list[Line]:
    """A "Generic Resources:" block, one line per kind (`gpu: GPU-1, GPU-2`, `ssd: 3`).
    Docker's text leaves them out; Shoal shows them where CPU and memory are."""
    if not resources:
        return []
    lines: list[Line] = [[f"{indent}Generic Resources:"]]
    for item in genericres.summary(resources):
        kind, _, values = item.partition("=")
        lines.append([f"{indent} {kind}:", values.replace(",", ", ")])
    return lines


def _log_driver(task: pb.TaskSpec) -> list[Line]:
    """Docker's "Log Driver:" section: the driver's name and its options."""
    if not task.log_driver and not task.log_driver_options:
        return []
    lines: list[Line] = [["Log Driver:"]]
    if task.log_driver:
        lines.append([" Name:", task.log_driver])
    if task.log_driver_options:
        lines.append([" LogOpts:"])
        lines += [[f"  {k}:", v] for k, v in sorted(task.log_driver_options.items())]
    return lines


def _mount(m: pb.Mount) -> list[Line]:
    kind = pb.Mount.Type.Name(m.type).lower()
    lines: list[Line] = [[" Target:", m.target], ["  Source:", m.source],
                         ["  ReadOnly:", "true" if m.read_only else "false"], ["  Type:", kind]]
    if m.type == pb.Mount.BIND and m.bind_options.propagation:
        lines.append(["  Propagation:", m.bind_options.propagation])
    v = m.volume_options
    if m.type == pb.Mount.VOLUME:
        if v.driver:
            lines.append(["  Volume driver:", v.driver])
        if v.driver_options:
            lines.append(["  Volume options:",
                          ", ".join(f"{k}={x}" for k, x in sorted(v.driver_options.items()))])
        if v.labels:
            lines.append(["  Volume labels:",
                          ", ".join(f"{k}={x}" for k, x in sorted(v.labels.items()))])
        if v.no_copy:
            lines.append(["  Volume nocopy:", "true"])
    t = m.tmpfs_options
    if m.type == pb.Mount.TMPFS and t.size_bytes:
        lines.append(["  Size:", format_size(t.size_bytes)])
    if m.type == pb.Mount.TMPFS and t.mode:
        lines.append(["  Mode:", f"{t.mode:04o}"])
    return lines


def _container_extras(c: pb.ContainerSpec) -> list[Line]:
    """Docker's sections after ContainerSpec: Capabilities, SysCtls, Ulimits, Mounts."""
    lines: list[Line] = []
    if c.cap_add or c.cap_drop:
        lines.append(["Capabilities:"])
        if c.cap_add:
            lines.append([" Add:", ", ".join(c.cap_add)])
        if c.cap_drop:
            lines.append([" Drop:", ", ".join(c.cap_drop)])
    if c.sysctls:
        lines.append(["SysCtls:"])
        lines += [[f" {k}:", v] for k, v in sorted(c.sysctls.items())]
    if c.ulimits:
        lines.append(["Ulimits:"])
        lines += [[f" {u.name}:", f"{u.soft}:{u.hard}"] for u in c.ulimits]
    if c.mounts:
        lines.append(["Mounts:"])
        for m in c.mounts:
            lines += _mount(m)
    return lines


def service_text(service: pb.Service) -> str:
    """`service inspect --pretty`."""
    spec = service.spec
    c = spec.task.container
    lines: list[Line] = [["ID:", service.id], ["Name:", spec.annotations.name]]
    if spec.annotations.labels:
        lines.append(["Labels:"])
        lines += [[f" {k}={v}"] for k, v in sorted(spec.annotations.labels.items())]
    if mode_of(spec) == "global":
        lines.append(["Service Mode:", "Global"])
    elif mode_of(spec) == "global job":
        lines.append(["Service Mode:", "Global job"])
    elif mode_of(spec) == "replicated job":
        job = spec.replicated_job
        lines += [["Service Mode:", "Replicated job"],
                  [" Max Concurrent:", str(job.max_concurrent or job.total_completions)],
                  [" Total Completions:", str(job.total_completions)]]
    else:
        lines += [["Service Mode:", "Replicated"], [" Replicas:", str(spec.replicated.replicas)]]
    status = service.update_status
    if status.state != pb.UpdateStatus.UNKNOWN:
        lines += [["UpdateStatus:"],
                  [" State:", pb.UpdateStatus.State.Name(status.state).lower()],
                  [" Started:", _time(status.started_at)]]
        if model.ts_seconds(status.completed_at):
            lines.append([" Completed:", _time(status.completed_at)])
        lines.append([" Message:", status.message])
    p = spec.task.placement
    lines.append(["Placement:"])
    if p.constraints:
        lines.append([" Constraints:", "[" + " ".join(p.constraints) + "]"])
    if p.preferences:
        lines.append([" Preferences:", ", ".join(f"spread={x.spread}" for x in p.preferences)])
    if p.max_replicas:
        lines.append([" Max Replicas Per Node:", str(p.max_replicas)])
    lines += _update_config("UpdateConfig", spec.update, "Update")
    lines += _update_config("RollbackConfig", spec.rollback, "Rollback")
    lines += [["ContainerSpec:"], [" Image:", c.image]]
    for title, values in ((" Command:", c.command), (" Args:", c.args)):
        if values:
            lines.append([title, " ".join(values)])
    if c.env:
        lines.append([" Env:", " ".join(c.env)])
    for title, value in ((" Dir:", c.dir), (" User:", c.user), (" Hostname:", c.hostname),
                         (" StopSignal:", c.stop_signal)):
        if value:
            lines.append([title, value])
    if c.stop_grace_period.nanos:
        lines.append([" StopGracePeriod:", format_duration(c.stop_grace_period.nanos)])
    lines.append([" Init:", "true" if c.init else "false"])
    if c.tty:
        lines.append([" TTY:", "true"])
    if c.read_only:
        lines.append([" Read Only:", "true"])
    if c.healthcheck.test:
        lines.append([" Healthcheck:", " ".join(c.healthcheck.test)])
    lines += _container_extras(c)
    if c.secrets:
        lines.append(["Secrets:"])
        lines += [[f" Target: {s.target}", f"Source: {s.secret_name}"] for s in c.secrets]
    if c.configs:
        lines.append(["Configs:"])
        lines += [[f" Target: {s.target}", f"Source: {s.config_name}"] for s in c.configs]
    lines += _log_driver(spec.task)
    lines += _resources(spec.task.resources)
    r = spec.task.restart
    lines += [["Restart Policy:"],
              [" Condition:", pretty_enum(pb.RestartPolicy.Condition.Name(r.condition)).lower()]]
    if r.has_delay:
        lines.append([" Delay:", format_duration(r.delay.nanos)])
    if r.max_attempts:
        lines.append([" Max attempts:", str(r.max_attempts)])
    if r.window.nanos:
        lines.append([" Window:", format_duration(r.window.nanos)])
    if spec.task.networks:
        lines.append(["Networks:", " ".join(n.target for n in spec.task.networks)])
    lines.append(["Endpoint Mode:", pb.EndpointSpec.ResolutionMode.Name(spec.endpoint.mode).lower()])
    ports = service.endpoint.ports or spec.endpoint.ports
    if ports:
        lines.append(["Ports:"])
        for port in ports:
            lines += [[f" PublishedPort = {port.published_port}"],
                      [f"  Protocol = {pb.PortConfig.Protocol.Name(port.protocol).lower()}"],
                      [f"  TargetPort = {port.target_port}"],
                      [f"  PublishMode = {pb.PortConfig.PublishMode.Name(port.publish_mode).lower()}"]]
    return _aligned(lines)


def node_text(node: pb.Node) -> str:
    """`node inspect --pretty`."""
    d = node.description
    lines: list[Line] = [["ID:", node.id]]
    if node.spec.annotations.labels:
        lines.append(["Labels:"])
        lines += [[f" - {k} = {v}"] for k, v in sorted(node.spec.annotations.labels.items())]
    lines += [["Hostname:", d.hostname],
              ["Joined at:", _time(node.meta.created_at)],
              ["Status:"],
              [" State:", pretty_enum(pb.NodeStatus.State.Name(node.status.state))],
              [" Availability:", pretty_enum(pb.NodeSpec.Availability.Name(node.spec.availability))],
              [" Address:", node.status.addr]]
    if node.status.message:
        lines.append([" Message:", node.status.message])
    if manager_status_text(node):
        lines += [["Manager Status:"],
                  [" Address:", node.manager_status.addr or node.manager_status.raft_addr],
                  [" Raft Status:", pretty_enum(pb.ManagerStatus.Reachability.Name(
                      node.manager_status.reachability))],
                  [" Leader:", "Yes" if node.manager_status.leader else "No"]]
    lines += [["Platform:"],
              [" Operating System:", d.platform.os],
              [" Architecture:", d.platform.architecture],
              ["Resources:"],
              [" CPUs:", _cpus(d.resources.nano_cpus)],
              [" Memory:", format_size(d.resources.memory_bytes)],
              *_generic(d.resources.generic_resources, " "),
              ["Engine Version:", d.engine_version]]
    if d.engine_labels:
        lines.append(["Engine Labels:"])
        lines += [[f" - {k} = {v}"] for k, v in sorted(d.engine_labels.items())]
    return _aligned(lines)


INFO_FIELDS = ("NodeID", "NodeAddr", "IsManager", "ClusterID", "Managers", "Nodes", "Version",
               "RaftLeaderID", "DataDir", "Services", "TasksRunning", "Host",
               "AutoLockManagers", "NodeCertExpiry", "RootRotationInProgress")


def info_fields(info: cpb.InfoResponse, host: str) -> dict:
    """InfoResponse under Docker-style field names, for `info --format`."""
    return {"NodeID": info.node_id, "NodeAddr": info.node_addr, "IsManager": info.is_manager,
            "ClusterID": info.cluster_id, "Managers": info.managers, "Nodes": info.nodes,
            "Version": info.version, "RaftLeaderID": info.raft_leader_id,
            "DataDir": info.data_dir, "Services": info.services,
            "TasksRunning": info.tasks_running, "Host": host,
            "AutoLockManagers": info.autolock_managers,
            "NodeCertExpiry": info.cert_expiry.nanos,   # nanoseconds, as Docker's API
            "RootRotationInProgress": info.root_rotation_in_progress}


def _bool(value: bool) -> str:
    return "true" if value else "false"


def raft_settings(cluster: pb.Cluster) -> tuple[int, int]:
    """(snapshot interval, old snapshots kept) as the managers apply them (an interval
    of 0, in clusters made before it was set, means the default)."""
    raft = cluster.spec.raft
    return raft.snapshot_interval or model.DEFAULT_SNAPSHOT_INTERVAL, raft.keep_old_snapshots


def info_text(info: cpb.InfoResponse, host: str, client_version: str,
              cluster: Optional[pb.Cluster] = None) -> str:
    """`swarm info` (`cluster`: the cluster object, read on a manager)."""
    lines: list[Line] = [["Client:"], [" Version:", client_version], [" Host:", host], [""],
                         ["Server:"], [" Server Version:", info.version],
                         [" Swarm:", "active" if info.cluster_id else "inactive"],
                         ["  NodeID:", info.node_id],
                         ["  Is Manager:", "true" if info.is_manager else "false"]]
    if info.cluster_id:
        lines.append(["  ClusterID:", info.cluster_id])
    if info.is_manager:
        lines += [["  Managers:", str(info.managers)], ["  Nodes:", str(info.nodes)]]
        if cluster is not None:
            interval, kept = raft_settings(cluster)
            lines += [["  Data Path Port:", str(model.data_path_port(cluster))],
                      ["  Raft:"], ["   Snapshot Interval:", str(interval)],
                      ["   Number of Old Snapshots to Retain:", str(kept)]]
        lines += [["  Raft Leader:", info.raft_leader_id],
                  ["  CA Configuration:"],
                  ["   Expiry Duration:", human_duration(info.cert_expiry.nanos / 1e9)]]
        if cluster is not None and cluster.spec.ca_config.external_cas:   # as Docker lists them
            lines += [["   External CAs:"]] + [[f"     {ca.protocol}: {ca.url}"]
                                               for ca in cluster.spec.ca_config.external_cas]
        lines += [["  Autolock Managers:", _bool(info.autolock_managers)],
                  ["  Root Rotation In Progress:", _bool(info.root_rotation_in_progress)]]
    lines += [["  Node Address:", info.node_addr]]
    if info.is_manager:
        lines += [[" Services:", str(info.services)], [" Tasks Running:", str(info.tasks_running)]]
    lines.append([" Data Dir:", info.data_dir])
    # Docker's layout: one space after each key, no column alignment
    return "\n".join(" ".join(part for part in line if part) if len(line) > 1 else line[0]
                     for line in lines)
